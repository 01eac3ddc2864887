from django.apps import AppConfig


class SentimentConfig(AppConfig):
    name = "apps.sentiment"
    label = "sentiment"
    verbose_name = "Sentiment: news monitor, alerts, webhooks"

    def ready(self) -> None:
        from django.conf import settings

        every_minute = 60.0
        settings.CELERY_BEAT_SCHEDULE.update({
            "sentiment-poll-feeds": {"task": "apps.sentiment.tasks.poll_due_feeds", "schedule": every_minute},
            "sentiment-evaluate-rules": {"task": "apps.sentiment.tasks.evaluate_alert_rules",
                                         "schedule": every_minute},
            "sentiment-send-due-webhooks": {"task": "apps.sentiment.tasks.send_due_webhooks",
                                            "schedule": every_minute},
            "sentiment-prune-delivery-attempts": {"task": "apps.sentiment.tasks.prune_delivery_attempts",
                                                  "schedule": 3600.0},
        })
        from apps.sentiment.services import register_monitoring

        register_monitoring()
