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
    """Single-flight: drain the pending items (with any other worker draining beside
    it, never on the same rows) and evaluate the alert rules when something was stored:
    at the end of the run, and during a long drain every AIGC_ALERT_EVAL_INTERVAL_S, so a
    burst that arrives while a backlog drains pages within seconds, not at the end of the
    run. Queued through ``queue_classification`` (one queued job at a time)."""
    import time

    from django.conf import settings

    from apps.sentiment import alerts, services

    _debounce(job_id, settings.AIGC_CLASSIFY_DEBOUNCE_S)

    def work(progress):
        since = {"stored": 0, "at": time.monotonic()}
        touched: set[tuple[str, str]] = set()
        counts: dict[str, int] | None = None

        def evaluate() -> None:
            # Only the keys whose buckets this run changed: the others' windows are as
            # they were (beat evaluates every rule each minute for windows that close).
            nonlocal counts
            counts = counts or {}
            for k, v in alerts.evaluate_rules(touched=set(touched)).items():
                counts[k] = counts.get(k, 0) + v
            since.update(stored=0, at=time.monotonic())
            touched.clear()

        def after_batch(stored: int, keys: set[tuple[str, str]]) -> None:
            since["stored"] += stored
            touched.update(keys)
            if since["stored"] and time.monotonic() - since["at"] >= settings.AIGC_ALERT_EVAL_INTERVAL_S:
                evaluate()

        result = services.classify_pending(progress, max_run_s=settings.AIGC_CLASSIFY_MAX_RUN_S,
                                           after_batch=after_batch)
        if since["stored"]:
            evaluate()
        if counts is not None:
            result["alerts"] = counts
        if result.pop("more_pending", False):
            # Stopped by the time bound with work left: make sure a job follows (joins one if queued).
            queue_classification()
        return result

    return run_job(job_id, work)


def _debounce(job_id: int, seconds: float) -> None:
    """Wait until the job is ``seconds`` old, before claiming it: while it stays queued,
    the ingest calls of a burst join it instead of each making work of their own."""
    import time

    from celery import current_task
    from django.utils import timezone

    from apps.common.models import Job

    request = getattr(current_task, "request", None)
    if request is None or request.is_eager:
        return  # run in-process: nothing else can join meanwhile
    created = Job.objects.filter(pk=job_id, state=Job.State.QUEUED).values_list("created_at", flat=True).first()
    if created is not None and seconds > 0:
        wait = seconds - (timezone.now() - created).total_seconds()
        if wait > 0:
            time.sleep(min(wait, seconds))


def queue_classification(user=None):
    """The one way to ask for classification: joins the queued job if there is one."""
    from apps.common.jobs import enqueue_coalesced

    job, _ = enqueue_coalesced(classify_news, "sentiment.classify", "pending", user=user)
    return job


@shared_task(name="apps.sentiment.tasks.import_csv", acks_late=True)
def import_csv(job_id: int, upload: str, source: str = "") -> dict:
    """A news CSV upload, stored by the API, ingested on a worker."""
    from apps.sentiment import services

    return run_job(job_id, lambda progress: services.import_csv_upload(upload, source, progress))


@shared_task(name="apps.sentiment.tasks.prune_delivery_attempts", ignore_result=True)
def prune_delivery_attempts() -> int:
    """Beat, hourly: delete webhook attempt rows older than AIGC_DELIVERY_ATTEMPT_RETENTION_DAYS."""
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    from apps.sentiment.models import DeliveryAttempt

    cutoff = timezone.now() - timedelta(days=settings.AIGC_DELIVERY_ATTEMPT_RETENTION_DAYS)
    total = 0
    while True:
        ids = list(DeliveryAttempt.objects.filter(at__lt=cutoff).values_list("id", flat=True)[:2000])
        if not ids:
            return total
        total += DeliveryAttempt.objects.filter(id__in=ids).delete()[0]


@shared_task(name="apps.sentiment.tasks.poll_feed", acks_late=True)
def poll_feed(job_id: int, source_id: int) -> dict:
    from apps.sentiment import services
    from apps.sentiment.models import NewsSource

    def work(progress):
        result = services.poll_source(NewsSource.objects.get(pk=source_id)).as_dict()
        if result["created"]:
            queue_classification()
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
