"""Celery tasks: thin wrappers that take primary keys and call the services.
Routing (config/settings.py): train_* → queue "train", deliver_* → queue "deliver"."""
from __future__ import annotations

from celery import shared_task

from apps.common.jobs import enqueue, run_job


@shared_task(name="apps.sentiment.tasks.train_sentiment", acks_late=True)
def train_sentiment(job_id: int, epochs: int | None = None) -> dict:
    """Train the topic + sentiment classifier on gold labels, register it, classify what is pending."""
    from apps.sentiment import alerts, services, training

    def work(progress):
        result = training.train_from_db(lambda p, m: progress(p * 0.8, m), epochs=epochs)
        done = services.classify_pending(lambda p, m: progress(80 + p * 0.2, m))
        result["classified"] = done["classified"]
        result["alerts"] = alerts.evaluate_rules()
        # Items labelled by the previous version are re-labelled in their own job (progress, retry).
        result["relabel_job"] = enqueue(relabel_news, "sentiment.relabel").pk
        return result

    return run_job(job_id, work)


@shared_task(name="apps.sentiment.tasks.relabel_news", acks_late=True)
def relabel_news(job_id: int) -> dict:
    """After a promote: re-label stored items with the new version, recount trends, re-check alerts."""
    from apps.sentiment import alerts, relabel

    def work(progress):
        result = relabel.relabel_items(lambda p, m: progress(p * 0.95, m))
        result["alerts"] = alerts.evaluate_rules()
        return result

    return run_job(job_id, work)


@shared_task(name="apps.sentiment.tasks.classify_news", acks_late=True)
def classify_news(job_id: int) -> dict:
    """Classify unclassified items, then evaluate the alert rules on the new trends."""
    from apps.sentiment import alerts, services

    def work(progress):
        result = services.classify_pending(progress)
        result["alerts"] = alerts.evaluate_rules()
        return result

    return run_job(job_id, work)


@shared_task(name="apps.sentiment.tasks.poll_feed", acks_late=True)
def poll_feed(job_id: int, source_id: int) -> dict:
    from apps.sentiment import services
    from apps.sentiment.models import NewsSource

    def work(progress):
        result = services.poll_source(NewsSource.objects.get(pk=source_id)).as_dict()
        if result["created"]:
            enqueue(classify_news, "sentiment.classify")
        return {k: v for k, v in result.items() if k != "created_ids"}

    return run_job(job_id, work)


@shared_task(name="apps.sentiment.tasks.poll_due_feeds", ignore_result=True)
def poll_due_feeds() -> int:
    """Beat, every minute: start a poll job for each feed whose interval has passed."""
    from django.utils import timezone

    from apps.sentiment.models import NewsSource
    from apps.sentiment.services import due_sources

    n = 0
    for source in due_sources():
        # Mark it polled now so the next tick does not queue it again while this one waits.
        NewsSource.objects.filter(pk=source.pk).update(last_polled_at=timezone.now(), last_status="queued")
        enqueue(poll_feed, "sentiment.poll", source_id=source.pk)
        n += 1
    return n


@shared_task(name="apps.sentiment.tasks.evaluate_alert_rules", ignore_result=True)
def evaluate_alert_rules() -> dict:
    """Beat, every minute: evaluate the rules over the windows that have closed."""
    from apps.sentiment.alerts import evaluate_rules

    return evaluate_rules()


@shared_task(name="apps.sentiment.tasks.send_due_webhooks", ignore_result=True)
def send_due_webhooks() -> int:
    """Beat, every minute: queue retries whose back-off has passed (and sends a broker outage dropped)."""
    from apps.sentiment.webhooks import send_due

    return send_due()


@shared_task(name="apps.sentiment.tasks.deliver_webhook", acks_late=True, ignore_result=True)
def deliver_webhook(delivery_id: int, attempt: int) -> str:
    """One signed attempt; the service schedules the next one if it fails."""
    from apps.sentiment.webhooks import attempt_delivery

    row = attempt_delivery(delivery_id, attempt)
    return "skipped (already made)" if row is None else row.status


@shared_task(name="apps.sentiment.tasks.deliver_in_order", acks_late=True, ignore_result=True)
def deliver_in_order(delivery_ids: list[int]) -> int:
    """A manual re-send: first attempts one after another, in creation order."""
    from apps.sentiment.webhooks import deliver_sequentially

    return deliver_sequentially(delivery_ids)
