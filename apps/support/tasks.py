"""Thin Celery tasks: each runs one service under its Job record."""
from __future__ import annotations

from celery import shared_task

from apps.common.jobs import run_job


@shared_task(name="apps.support.tasks.ingest_transcripts")
def ingest_transcripts(job_id: int, upload: str, filename: str = "") -> dict:
    from apps.support import ingest, services

    def work(progress):
        result = ingest.ingest_transcripts(services.read_upload(upload), filename, progress=progress).as_dict()
        services.drop_upload(upload)
        return result

    return run_job(job_id, work)


@shared_task(name="apps.support.tasks.ingest_kb")
def ingest_kb(job_id: int, uploads: list[list[str]]) -> dict:
    """``uploads``: [[stored name, original file name], ...]."""
    from apps.support import ingest, services

    def work(progress):
        docs = [ingest.Document(name=original, text=services.read_upload(stored).decode("utf-8", "replace"))
                for stored, original in uploads]
        result = ingest.ingest_kb(docs, progress=progress)
        for stored, _ in uploads:
            services.drop_upload(stored)
        return result

    return run_job(job_id, work)


@shared_task(name="apps.support.tasks.train_support")
def train_support(job_id: int, promote: bool | None = None) -> dict:
    """``promote`` None: the deploy gate decides (apps/support/deploys.py)."""
    from apps.support import services

    return run_job(job_id, lambda progress: services.train_bot(progress, promote=promote))
