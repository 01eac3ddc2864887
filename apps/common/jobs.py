"""The one way to run a long task: ``enqueue`` creates a Job row and sends the
Celery task after the transaction commits; the task body calls ``run_job``,
which marks the row running, hands the work a ``progress`` callback, and
records success (result JSON) or failure (error text).
"""
from __future__ import annotations

import logging
import socket
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db import InterfaceError, OperationalError, transaction
from django.db.models import F, Q
from django.utils import timezone
from kombu.utils.uuid import uuid

from apps.common.models import Job

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]


def enqueue(task, kind: str, *, params: dict | None = None, user=None, **task_kwargs: Any) -> Job:
    """Create a queued Job and send ``task(job_id=..., **task_kwargs)`` once committed."""
    stored = {**(params or task_kwargs), "_task": task.name, "_kwargs": task_kwargs}
    job = Job.objects.create(kind=kind, params=stored, created_by=user if user and user.pk else None)

    transaction.on_commit(lambda: send_job(job.pk, task, task_kwargs))
    return job


BROKER_DOWN_NOTE = "waiting for the job queue (broker unavailable)"


def send_job(job_id: int, task, task_kwargs: dict, *, only_if_task_id: str | None = None) -> bool:
    """Publish the task for a committed Job under a fresh task id, stored on the
    row first: a worker runs a job only for the message the row names (or any
    message while the row is still queued), so a re-send never runs it twice.

    If the broker is down the row stays queued with no task id and the error
    propagates (the API answers 503); ``resend_unsent_jobs`` publishes it once
    the broker is back. ``only_if_task_id`` makes the re-send conditional on the
    row still naming that earlier message (a sweeper racing a worker's claim).
    Returns False when that condition no longer holds and nothing was sent."""
    task_id = uuid()
    rows = Job.objects.filter(pk=job_id, state=Job.State.QUEUED)
    if only_if_task_id is not None:
        rows = rows.filter(task_id=only_if_task_id)
    if not rows.update(task_id=task_id, sent_at=timezone.now()):
        if only_if_task_id is not None:
            return False
        # Not queued any more (eager re-entry, or a worker already claimed it): publish as before.
    try:
        task.apply_async(kwargs={"job_id": job_id, **task_kwargs}, task_id=task_id)
    except Exception:
        Job.objects.filter(pk=job_id, task_id=task_id, state=Job.State.QUEUED).update(
            task_id="", sent_at=None, message=BROKER_DOWN_NOTE)
        raise
    Job.objects.filter(pk=job_id, message=BROKER_DOWN_NOTE).update(message="")
    return True


def resend_unsent_jobs(older_than_s: int = 30, lost_after_s: int | None = None) -> int:
    """Beat: publish queued jobs whose task never reached the broker, and re-publish
    queued jobs whose message was sent ``lost_after_s`` ago (``AIGC_JOB_REQUEUE_AFTER``)
    and never picked up: a broker restarted without persistence drops what it held.
    A message that was only slow is harmless: whichever copy a worker takes first
    runs, the other is skipped. Jobs store the task name in params["_task"] for this."""
    from celery import current_app
    from django.conf import settings

    now = timezone.now()
    lost_after_s = settings.AIGC_JOB_REQUEUE_AFTER if lost_after_s is None else lost_after_s
    unsent = Q(task_id="", created_at__lt=now - timedelta(seconds=older_than_s))
    lost = ~Q(task_id="") & Q(sent_at__lt=now - timedelta(seconds=lost_after_s))
    sent = 0
    for job in Job.objects.filter(unsent | lost, state=Job.State.QUEUED).order_by("created_at", "id")[:500]:
        name = job.params.get("_task")
        if not name or name not in current_app.tasks:
            continue
        if send_job(job.pk, current_app.tasks[name], job.params.get("_kwargs", {}), only_if_task_id=job.task_id):
            sent += 1
    return sent


def report_progress(job_id: int, percent: float, message: str = "") -> None:
    """Store progress (0-100) and a short message on the job row."""
    pct = max(0, min(100, int(percent)))
    Job.objects.filter(pk=job_id).update(progress=pct, message=message[:500])


class _Throttled:
    """Progress callback that writes at most every 0.5 s or on a jump of >= 5 points."""

    def __init__(self, job_id: int):
        self.job_id = job_id
        self.last_t = 0.0
        self.last_pct = -100.0

    def __call__(self, percent: float, message: str = "") -> None:
        now = time.monotonic()
        if percent >= 100 or now - self.last_t > 0.5 or percent - self.last_pct >= 5:
            report_progress(self.job_id, percent, message)
            self.last_t, self.last_pct = now, percent


# A task that loses the database (connection refused, dropped, locked) is retried
# this many times with back-off (2, 4, ... 60 s: about 15 minutes in all).
DB_RETRIES = 20


def run_job(job_id: int, work: Callable[[Progress], dict | None]) -> dict:
    """Run ``work(progress)`` under the Job's record. Re-raises on failure so
    Celery sees it too; the row already says what went wrong.

    A job that already succeeded is not run again: a redelivered message (late
    acknowledgement after a worker died) then has no second side effect. When
    the database itself is away, the row cannot say anything: the task is
    retried under the same message id until the database is back."""
    try:
        return _run_job(job_id, work)
    except (OperationalError, InterfaceError) as exc:
        _retry_while_database_is_away(job_id, exc)
        raise


def _retry_while_database_is_away(job_id: int, exc: Exception) -> None:
    from celery import current_task
    from django.db import connections

    request = getattr(current_task, "request", None)
    if request is None or request.is_eager or not request.id:
        return  # not in a worker: the caller sees the error
    retries = request.retries or 0
    if retries >= DB_RETRIES:
        return
    connections.close_all()  # the next attempt opens fresh connections
    log.warning("job %s: database unavailable (%s); retry %d in %ds", job_id, exc, retries + 1,
                min(60, 2 ** (retries + 1)))
    raise current_task.retry(exc=exc, countdown=min(60, 2 ** (retries + 1)), max_retries=DB_RETRIES)


def _run_job(job_id: int, work: Callable[[Progress], dict | None]) -> dict:
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        raise Job.DoesNotExist(f"job {job_id} does not exist")
    if job.state == Job.State.SUCCEEDED:
        log.info("job %s already succeeded; redelivery ignored", job_id)
        return job.result
    # Claim the row: a queued (or failed) job for any of its messages; a running one
    # only for the message it runs under (a redelivery after its worker died), so a
    # second copy of a re-sent message never runs the job twice at once.
    my_id = _current_task_id()
    claim = Job.objects.filter(pk=job_id).exclude(state=Job.State.SUCCEEDED)
    if my_id:
        claim = claim.filter(Q(state__in=[Job.State.QUEUED, Job.State.FAILED]) | Q(task_id=my_id))
    claimed = claim.update(
        task_id=my_id or F("task_id"),
        state=Job.State.RUNNING,
        started_at=timezone.now(),
        finished_at=None,
        error="",
        worker=_worker_name(),
        attempts=F("attempts") + 1,
    )
    if not claimed:
        log.info("job %s is already taken by another message; duplicate %s skipped", job_id, my_id)
        return job.result or {}
    progress = _Throttled(job_id)
    try:
        result = work(progress) or {}
    except Exception as exc:
        Job.objects.filter(pk=job_id).update(
            state=Job.State.FAILED,
            finished_at=timezone.now(),
            error=f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}"[:20000],
            message=f"failed: {exc}"[:500],
        )
        log.exception("job %s failed", job_id)
        raise
    Job.objects.filter(pk=job_id).update(
        state=Job.State.SUCCEEDED,
        progress=100,
        finished_at=timezone.now(),
        result=result,
        message="done",
    )
    return result


def _current_task_id() -> str:
    from celery import current_task

    request = getattr(current_task, "request", None)
    return str(getattr(request, "id", None) or "")


def _worker_name() -> str:
    """Celery's node name (matches WorkerHeartbeat.hostname), else the host."""
    from celery import current_task

    request = getattr(current_task, "request", None)
    return getattr(request, "hostname", None) or socket.gethostname()


def recover_orphaned_jobs(stale_after_s: int | None = None) -> list[int]:
    """Re-send running jobs whose worker stopped sending heartbeats (killed,
    machine lost). Works on every transport, including the filesystem broker,
    which cannot redeliver an unacknowledged message by itself."""
    from celery import current_app
    from django.conf import settings

    from apps.common.models import WorkerHeartbeat

    stale_after_s = stale_after_s or settings.AIGC_WORKER_STALE_AFTER
    cutoff = timezone.now() - timedelta(seconds=stale_after_s)
    alive = set(WorkerHeartbeat.objects.filter(seen_at__gte=cutoff).values_list("hostname", flat=True))
    recovered = []
    for job in Job.objects.filter(state=Job.State.RUNNING, started_at__lt=cutoff):
        if job.worker in alive or "@" not in job.worker:
            continue  # alive, or run outside a worker (eager): nothing to recover
        name = job.params.get("_task")
        if not name or name not in current_app.tasks:
            continue
        updated = Job.objects.filter(pk=job.pk, state=Job.State.RUNNING, worker=job.worker).update(
            state=Job.State.QUEUED, message=f"re-queued: worker {job.worker} stopped reporting"
        )
        if updated:
            recovered.append(job.pk)
            send_job(job.pk, current_app.tasks[name], job.params.get("_kwargs", {}))
    return recovered


