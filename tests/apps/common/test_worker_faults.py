"""A real worker is SIGKILLed mid-task; the job runs again on another worker."""
import time

import pytest
from django.test import override_settings

from apps.common.jobs import enqueue, recover_orphaned_jobs
from apps.common.models import Job
from apps.common.tasks import demo_countdown
from tests.conftest import LiveWorker, wait_for


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_it_reruns_a_task_whose_worker_was_killed():
    from config.celery import app

    app.conf.task_always_eager = False
    first = LiveWorker("w1").start()
    second = None
    try:
        job = enqueue(demo_countdown, "common.demo", steps=40, delay_s=0.1)
        wait_for(lambda: Job.objects.filter(pk=job.pk, progress__gte=10).exists(), timeout=60,
                 what="the job to make progress on w1")
        first.kill()  # SIGKILL the whole worker: no chance to ack, clean up or report
        job.refresh_from_db()
        assert job.state == Job.State.RUNNING and job.worker.startswith("w1@")
        second = LiveWorker("w2").start()
        time.sleep(2.5)  # let w1's last heartbeat age past the threshold below
        with override_settings(AIGC_WORKER_STALE_AFTER=2):
            assert recover_orphaned_jobs() == [job.pk]
            assert recover_orphaned_jobs() == []  # requeued once, not twice
        done = wait_for(lambda: Job.objects.filter(pk=job.pk, state="succeeded").first(), timeout=90,
                        what="the job to finish on w2")
        assert done.attempts == 2
        assert done.worker.startswith("w2@")
        assert done.result == {"steps": 40}
    finally:
        first.stop()
        if second:
            second.stop()


@pytest.mark.django_db
def test_it_ignores_redelivery_of_a_finished_job():
    job = Job.objects.create(kind="common.demo", state="succeeded", progress=100, result={"steps": 1},
                             attempts=1)
    assert demo_countdown.apply(kwargs={"job_id": job.pk, "steps": 3, "delay_s": 0}).get() == {"steps": 1}
    job.refresh_from_db()
    assert job.attempts == 1
