from django.apps import AppConfig


class RecommendConfig(AppConfig):
    name = "apps.recommend"
    label = "recommend"
    verbose_name = "Recommend: catalogue, events, two-tower recommender"

    def ready(self) -> None:
        from django.conf import settings

        # Retrain daily on everything seen so far (a Job row records each run).
        settings.CELERY_BEAT_SCHEDULE.update({
            "recommend-daily-train": {"task": "apps.recommend.tasks.schedule_training", "schedule": 24 * 3600.0},
        })
