"""The one way to run a long task: ``enqueue`` creates a Job row and sends the
Celery task after the transaction commits; the task body calls ``run_job``,
which marks the row running, hands the work a ``progress`` callback, and
records success (result JSON) or failure (error text).
"""
from __future__ import annotations

import logging
import re
import socket
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, InterfaceError, OperationalError, transaction
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


def enqueue_coalesced(task, kind: str, key: str = "all", *, user=None, **task_kwargs: Any) -> tuple[Job, bool]:
    """Single-flight work ("classify whatever is pending"): join the queued job of
    (kind, key) if there is one, else create it. Returns (job, created).

    The database holds at most one queued job per (kind, key) (the partial unique
    constraint ``common_job_one_queued_per_key``), so a burst of callers — in any
    number of web processes — makes one job, not one each. A job that a worker has
    claimed (running) no longer blocks a new queued one: work arriving during a run
    is never left without a job to pick it up.

    The broker promise holds for joiners too: a new job's message is published once
    the transaction commits, a joined job that never reached the broker is published
    now, and otherwise the broker is pinged; an unreachable broker raises (the API
    answers 503 with Retry-After) while everything the transaction stored is kept
    and the sweeper sends the job once the broker is back."""
    stored = {"_task": task.name, "_kwargs": task_kwargs}
    owner = user if user and getattr(user, "pk", None) else None
    for _ in range(5):
        try:
            with transaction.atomic():
                job = Job.objects.create(kind=kind, coalesce_key=key, params=stored, created_by=owner)
        except IntegrityError:
            # Locked until our transaction commits: a worker's claim of this job waits for
            # it, so the run that takes the job sees the rows we are joining it for (else a
            # run could drain before they commit, and end with them pending and no job).
            with transaction.atomic():
                job = Job.objects.select_for_update().filter(kind=kind, coalesce_key=key,
                                                             state=Job.State.QUEUED).first()
            if job is None:
                continue  # a worker claimed it between our insert and this read: try to create again
            pk, unsent = job.pk, not job.task_id

            def join(pk=pk, unsent=unsent):
                if not (unsent and send_job(pk, task, task_kwargs, only_if_task_id="")):
                    ensure_broker_reachable()

            transaction.on_commit(join)
            return job, False
        transaction.on_commit(lambda pk=job.pk: send_job(pk, task, task_kwargs))
        return job, True
    raise RuntimeError(f"could not create or join a queued {kind} job")  # pragma: no cover - 5 lost races


def ensure_broker_reachable() -> None:
    """Raise kombu's OperationalError (→ 503 with Retry-After) when the broker cannot
    be reached; a no-op when tasks run eagerly (tests, CELERY_TASK_ALWAYS_EAGER)."""
    from celery import current_app
    from kombu.exceptions import OperationalError as BrokerError

    if current_app.conf.task_always_eager:
        return
    url = current_app.conf.broker_write_url or current_app.conf.broker_url or ""
    try:
        if url.startswith("filesystem"):
            import os

            folder = current_app.conf.broker_transport_options.get("data_folder_in", "")
            if folder and not os.access(folder, os.W_OK):
                raise OSError(f"broker folder {folder} is not writable")
            return
        with current_app.pool.acquire(block=True, timeout=2) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
            client = getattr(conn.default_channel, "client", None)
            if client is not None and hasattr(client, "ping"):
                try:
                    client.ping()
                except Exception:
                    conn.collect()  # drop the dead socket so the next caller reconnects
                    raise
    except BrokerError:
        raise
    except Exception as exc:
        raise BrokerError(f"broker unreachable: {type(exc).__name__}: {exc}") from exc


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
    queued jobs whose message is really lost: sent ``lost_after_s`` ago
    (``AIGC_JOB_REQUEUE_AFTER``), still not taken by a worker, and no longer in the
    broker (neither waiting in its queue nor held unacknowledged by a worker) — a
    broker restarted without persistence drops what it held. A message that is only
    waiting behind a backlog is left alone (re-publishing it would only duplicate it).
    Jobs store the task name in params["_task"] for this."""
    from celery import current_app
    from django.conf import settings

    now = timezone.now()
    lost_after_s = settings.AIGC_JOB_REQUEUE_AFTER if lost_after_s is None else lost_after_s
    unsent = Q(task_id="", created_at__lt=now - timedelta(seconds=older_than_s))
    stale = ~Q(task_id="") & Q(sent_at__lt=now - timedelta(seconds=lost_after_s))
    candidates = list(Job.objects.filter(unsent | stale, state=Job.State.QUEUED).order_by("created_at", "id")[:500])
    waiting = messages_in_broker({j.params.get("_task", "") for j in candidates if j.task_id})
    sent = 0
    for job in candidates:
        name = job.params.get("_task")
        if not name or name not in current_app.tasks:
            continue
        if job.task_id and (waiting is None or job.task_id in waiting):
            continue  # still in the broker (or the transport cannot tell): not lost
        if send_job(job.pk, current_app.tasks[name], job.params.get("_kwargs", {}), only_if_task_id=job.task_id):
            sent += 1
    return sent


# A queue longer than this is not searched message by message: its jobs count as waiting.
_SEARCH_LIMIT = 5000


def messages_in_broker(task_names: set[str]) -> set[str] | None:
    """The task ids of messages the broker holds for the queues these tasks route to:
    waiting in the queue or delivered but not yet acknowledged. None when the
    transport cannot be searched (then nothing counts as lost)."""
    from celery import current_app
    from django.conf import settings

    task_names = {n for n in task_names if n}
    if not task_names:
        return set()
    queues = {_queue_of(current_app, n) for n in task_names}
    url = current_app.conf.broker_url or settings.CELERY_BROKER_URL
    ids: set[str] = set()
    try:
        if url.startswith("filesystem"):
            import os

            folder = current_app.conf.broker_transport_options.get("data_folder_in", "")
            for name in os.listdir(folder):
                try:
                    with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as fh:
                        ids.update(_TASK_ID.findall(fh.read()))
                except OSError:
                    continue  # taken by a worker meanwhile
            return ids
        if not url.startswith(("redis", "rediss")):
            return None
        with current_app.connection_for_write() as conn:
            client = conn.default_channel.client
            for q in queues:
                for key in [q, *(f"{q}\x06\x16{p}" for p in range(1, 10))]:
                    if client.llen(key) > _SEARCH_LIMIT:
                        return None
                    for raw in client.lrange(key, 0, -1):
                        ids.update(_TASK_ID.findall(raw.decode("utf-8", "replace")))
            if client.hlen("unacked") > _SEARCH_LIMIT:
                return None
            for raw in client.hvals("unacked"):
                ids.update(_TASK_ID.findall(raw.decode("utf-8", "replace")))
    except Exception as exc:  # the broker is away: the next sweep will tell
        log.warning("cannot search the broker for lost messages: %s", exc)
        return None
    return ids


_TASK_ID = re.compile(r'"id": ?"([0-9a-f-]{36})"')


def _queue_of(app, task_name: str) -> str:
    route = app.amqp.router.route({}, task_name)
    queue = route.get("queue")
    return getattr(queue, "name", None) or str(queue or app.conf.task_default_queue)


def prune_finished_jobs(older_than_days: int | None = None) -> int:
    """Delete succeeded and failed jobs finished more than ``AIGC_JOB_RETENTION_DAYS`` ago
    (queued and running ones are never pruned). Returns the rows deleted."""
    from django.conf import settings

    days = settings.AIGC_JOB_RETENTION_DAYS if older_than_days is None else older_than_days
    cutoff = timezone.now() - timedelta(days=days)
    total = 0
    while True:  # in slices: a long delete would hold locks the workers need
        ids = list(Job.objects.filter(state__in=[Job.State.SUCCEEDED, Job.State.FAILED], finished_at__lt=cutoff)
                   .values_list("id", flat=True)[:2000])
        if not ids:
            return total
        total += Job.objects.filter(id__in=ids).delete()[0]


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


