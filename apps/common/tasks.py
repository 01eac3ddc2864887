"""Common tasks: a demo job that shows the queue and progress working."""
from __future__ import annotations

import time

from celery import shared_task

from apps.common.jobs import run_job


@shared_task(name="apps.common.tasks.demo_countdown", acks_late=True)
def demo_countdown(job_id: int, steps: int = 10, delay_s: float = 0.2, fail_at: int | None = None) -> dict:
    def work(progress):
        for i in range(steps):
            if fail_at is not None and i == fail_at:
                raise RuntimeError(f"demo failure requested at step {i}")
            time.sleep(delay_s)
            progress(100 * (i + 1) / steps, f"step {i + 1}/{steps}")
        return {"steps": steps}

    return run_job(job_id, work)


@shared_task(name="apps.common.tasks.resend_unsent_jobs", ignore_result=True)
def resend_unsent_jobs() -> int:
    """Beat: publish jobs accepted while the broker was down."""
    from apps.common.jobs import resend_unsent_jobs as resend

    return resend()


@shared_task(name="apps.common.tasks.recover_orphaned_jobs", ignore_result=True)
def recover_orphaned_jobs() -> list[int]:
    """Beat: re-send jobs whose worker died mid-run."""
    from apps.common.jobs import recover_orphaned_jobs as recover

    return recover()


@shared_task(name="apps.common.tasks.prune_finished_jobs", ignore_result=True)
def prune_finished_jobs() -> int:
    """Beat, hourly: delete finished jobs older than AIGC_JOB_RETENTION_DAYS."""
    from apps.common.jobs import prune_finished_jobs as prune

    return prune()
