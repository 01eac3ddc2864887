import pytest

from apps.common.jobs import enqueue
from apps.common.models import Job
from apps.common.tasks import demo_countdown
from tests.conftest import wait_for


@pytest.mark.worker
def test_it_runs_a_task_on_a_real_worker(live_worker):
    job = enqueue(demo_countdown, "common.demo", steps=4, delay_s=0.05)
    done = wait_for(lambda: Job.objects.filter(pk=job.pk, state__in=["succeeded", "failed"]).first(),
                    timeout=90, what="job to finish")
    assert done.state == Job.State.SUCCEEDED, done.error
    assert done.progress == 100
    assert done.result == {"steps": 4}
    assert done.attempts == 1
    assert done.worker  # the worker's hostname, not this process
    assert done.started_at and done.finished_at and done.finished_at >= done.started_at


@pytest.mark.worker
def test_it_records_a_failing_task(live_worker):
    job = enqueue(demo_countdown, "common.demo", steps=4, delay_s=0.01, fail_at=2)
    done = wait_for(lambda: Job.objects.filter(pk=job.pk, state__in=["succeeded", "failed"]).first(),
                    timeout=90, what="job to finish")
    assert done.state == Job.State.FAILED
    assert "demo failure requested at step 2" in done.error
    assert done.progress == 50  # two of four steps had reported


@pytest.mark.django_db
def test_it_runs_eagerly_in_unit_tests(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = enqueue(demo_countdown, "common.demo", steps=2, delay_s=0)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED and job.progress == 100


@pytest.mark.django_db
def test_it_shows_jobs_page_with_polling_partial(staff_client):
    Job.objects.create(kind="common.demo", state="running", progress=42, message="halfway")
    page = staff_client.get("/jobs/")
    assert page.status_code == 200
    assert b'hx-get="/jobs/table/"' in page.content
    partial = staff_client.get("/jobs/table/")
    assert b"42%" in partial.content and b"halfway" in partial.content


@pytest.mark.django_db
def test_it_keeps_a_job_accepted_while_the_broker_is_down(django_capture_on_commit_callbacks):
    from kombu.exceptions import OperationalError

    from apps.common.jobs import resend_unsent_jobs
    from config.celery import app

    app.conf.task_always_eager = False
    old = app.conf.broker_write_url, app.conf.broker_connection_max_retries
    app.conf.broker_write_url = "redis://127.0.0.1:1/0"  # nothing listens there
    app.conf.broker_connection_max_retries = 0
    _reset_pools(app)
    try:
        with pytest.raises(OperationalError):
            with django_capture_on_commit_callbacks(execute=True):
                job = enqueue(demo_countdown, "common.demo", steps=1, delay_s=0)
    finally:
        app.conf.broker_write_url, app.conf.broker_connection_max_retries = old
        _reset_pools(app)
        app.conf.task_always_eager = True
    job = Job.objects.get(kind="common.demo")
    assert job.state == Job.State.QUEUED and job.task_id == ""
    assert "broker" in job.message
    # Broker back: the sweeper publishes it (eager here, so it also runs).
    Job.objects.filter(pk=job.pk).update(created_at=job.created_at - __import__("datetime").timedelta(minutes=5))
    assert resend_unsent_jobs() == 1
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED


def _reset_pools(app) -> None:
    """Drop pooled broker connections so the next publish uses the current URL."""
    app._pool = None
    app.amqp._producer_pool = None
