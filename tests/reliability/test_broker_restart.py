"""Fault: the broker (Redis) is killed and restarted during a burst of news ingests.

The test starts its OWN ``redis-server`` on a free loopback port (the shared
Redis on 6379 is never touched), points this process's Celery app and a real
worker at it, and kills it without persistence mid-burst, so the messages it
held are gone, as after a real crash. It runs in both CI passes (the
filesystem broker cannot be "down", so the SQLite pass uses this Redis too).

Promises: while the broker is down the ingest API answers 503 with a message
and Retry-After (never 500) and reads keep working; every item the client sent
is stored exactly once; every classification job, including the ones whose
messages died with the broker, runs once.
"""
from __future__ import annotations

import pytest
import redis

from apps.common.jobs import enqueue, resend_unsent_jobs
from apps.common.models import ApiToken, Job
from apps.common.tasks import demo_countdown
from apps.sentiment.models import NewsItem
from tests.conftest import LiveWorker, wait_for

from .services import PrivateRedis

CONF_KEYS = ("broker_url", "broker_write_url", "broker_read_url", "broker_connection_max_retries",
             "broker_transport_options", "task_always_eager")


def _reset_pools(app) -> None:
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def private_broker(transactional_db):
    """This process and its workers on a Redis of their own; everything restored after."""
    from config.celery import app

    broker = PrivateRedis().start()
    saved = {k: app.conf.get(k) for k in CONF_KEYS}
    app.conf.broker_url = app.conf.broker_write_url = app.conf.broker_read_url = broker.url
    app.conf.broker_connection_max_retries = 0  # a publish fails fast instead of blocking the request
    app.conf.broker_transport_options = {"visibility_timeout": 3600}
    app.conf.task_always_eager = False
    _reset_pools(app)
    worker = None
    try:
        worker = LiveWorker("rel-broker", env={"CELERY_BROKER_URL": broker.url}).start()
        yield broker
    finally:
        if worker:
            worker.kill()
            worker.stop()
        for k, v in saved.items():
            app.conf[k] = v
        _reset_pools(app)
        broker.stop()


def _client():
    from rest_framework.test import APIClient

    _, raw = ApiToken.issue(name="rel-broker", app="sentiment")
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return c


def _batch(n: int) -> dict:
    return {"source": "wire", "items": [
        {"url": f"https://news.example.com/rel/{n}/{i}", "headline": f"Burst {n}.{i}: credit desk moves",
         "published_at": "2026-10-01T12:00:00Z"} for i in range(2)]}


@pytest.mark.worker
def test_it_answers_503_while_the_broker_is_down_and_loses_nothing_across_a_restart(private_broker):
    api = _client()
    # Keep the single worker busy so classification messages wait in Redis when it dies.
    busy = enqueue(demo_countdown, "common.demo", steps=40, delay_s=0.1)
    wait_for(lambda: Job.objects.filter(pk=busy.pk, state="running").exists(), timeout=60,
             what="the worker to be busy")
    codes: dict[int, list[int]] = {}

    def post(n: int):
        r = api.post("/sentiment/api/news/", _batch(n), format="json")
        codes.setdefault(n, []).append(r.status_code)
        return r

    for n in range(0, 12):
        assert post(n).status_code == 201
    backlog = redis.Redis.from_url(private_broker.url).llen("default")
    assert backlog > 0, "precondition: messages wait in the broker when it dies"

    private_broker.stop()  # SIGKILL, no persistence: the waiting messages are gone
    down = []
    for n in range(12, 17):
        r = post(n)
        assert r.status_code == 503, r.content
        assert "job queue" in r.json()["detail"] and r["Retry-After"]
        down.append(n)
    assert api.get("/sentiment/api/news/?limit=5").status_code == 200  # reads do not need the broker

    private_broker.start()
    for n in range(17, 30):
        assert post(n).status_code == 201
    for n in down:  # the client retries what was refused: stored already, so nothing doubles
        r = post(n)
        assert r.status_code == 200 and r.json()["duplicates"] == 2, r.content

    assert not [c for cs in codes.values() for c in cs if c >= 500 and c != 503]
    assert NewsItem.objects.count() == 60
    assert set(NewsItem.objects.values_list("url", flat=True)) == {
        f"https://news.example.com/rel/{n}/{i}" for n in range(30) for i in range(2)}

    jobs = Job.objects.filter(kind="sentiment.classify")
    assert jobs.count() == 30  # 12 + 5 + 13 batches made a job each; the retries created nothing
    assert jobs.filter(task_id="", state="queued").count() == len(down)  # never reached the broker
    # Beat's sweeper, once the restarted broker's queue has drained: sends the unsent
    # jobs and re-sends the ones whose messages died with the broker.
    r = redis.Redis.from_url(private_broker.url)
    wait_for(lambda: r.llen("default") == 0 and not Job.objects.filter(state="running").exists(), timeout=90,
             what="the worker to drain the restarted broker")
    lost = jobs.filter(state="queued").exclude(task_id="").count()
    assert lost > 0  # the fault really dropped messages
    assert resend_unsent_jobs(older_than_s=0, lost_after_s=0) == len(down) + lost
    wait_for(lambda: not jobs.exclude(state="succeeded").exists(), timeout=120,
             what="every classification job to run")
    assert set(jobs.values_list("attempts", flat=True)) == {1}  # each ran once
    assert Job.objects.get(pk=busy.pk).state == "succeeded"
