"""Recommend tasks: thin wrappers that run a service function under a Job record."""
from __future__ import annotations

from celery import shared_task

from apps.common.jobs import run_job


@shared_task(name="apps.recommend.tasks.train_recommender", acks_late=True)
def train_recommender(job_id: int, epochs: int | None = None) -> dict:
    """Queue "train": fit the two-tower + ranker, evaluate, publish recommend.model."""
    from apps.recommend import services

    return run_job(job_id, lambda progress: services.train_recommender(progress, epochs=epochs))


@shared_task(name="apps.recommend.tasks.import_catalogue", acks_late=True)
def import_catalogue(job_id: int, rows: list[dict]) -> dict:
    """Large catalogue uploads run here so the request returns at once."""
    from apps.recommend import services

    def work(progress):
        progress(5, f"importing {len(rows)} items")
        result = services.upsert_items(rows)
        progress(10, f"embedding {len(result.changed_pks)} new or edited items")
        return {**result.as_dict(), **services.embed_items(result.changed_pks, progress)}

    return run_job(job_id, work)


@shared_task(name="apps.recommend.tasks.schedule_training", ignore_result=True)
def schedule_training() -> int | None:
    """Beat: queue a training job unless one is already queued or running."""
    from apps.common.jobs import enqueue
    from apps.common.models import Job
    from apps.recommend.models import Event

    busy = Job.objects.filter(kind="recommend.train", state__in=[Job.State.QUEUED, Job.State.RUNNING]).exists()
    if busy or not Event.objects.exists():
        return None
    return enqueue(train_recommender, "recommend.train", params={"source": "beat"}).pk


@shared_task(name="apps.recommend.tasks.index_items", acks_late=True)
def index_items(job_id: int, pks: list[int]) -> dict:
    """Queue "default": vectors for new or edited items, written in bulk; serving adds them incrementally."""
    from apps.recommend import catalogue

    return run_job(job_id, lambda progress: catalogue.embed_items(pks, progress))
