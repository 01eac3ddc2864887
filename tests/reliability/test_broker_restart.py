"""Fault: the broker (Redis) is killed and restarted during a burst of news ingests.

The test starts its OWN ``redis-server`` on a free loopback port (the shared
Redis on 6379 is never touched), points this process's Celery app and a real
worker at it, and kills it without persistence mid-burst, so the message it
held is gone, as after a real crash. It runs in both CI passes (the
filesystem broker cannot be "down", so the SQLite pass uses this Redis too).

Promises (classification is single-flight: one queued job at a time, which the
burst's calls join): while the broker is down the ingest API answers 503 with a
message and Retry-After (never 500) and reads keep working; every item the
client sent is stored exactly once; the sweeper leaves a message that is only
waiting alone, re-sends the one that died with the broker, and after the broker
returns every item is classified exactly once.
"""
from __future__ import annotations

import pytest
import redis

from apps.common import engine
from apps.common.jobs import enqueue, resend_unsent_jobs
from apps.common.models import ApiToken, Job
from apps.common.tasks import demo_countdown
from apps.sentiment import conf
from apps.sentiment.models import Classification, NewsItem, TrendBucket
from tests.conftest import LiveWorker, wait_for

from .services import PrivateRedis

CONF_KEYS = ("broker_url", "broker_write_url", "broker_read_url", "broker_connection_max_retries",
             "broker_transport_options", "task_always_eager")


def _reset_pools(app) -> None:
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def private_broker(transactional_db, settings, tmp_path, tiny_model):
    """This process and its workers on a Redis of their own, with a trained model;
    everything restored after."""
    from config.celery import app

    settings.AIGC_ARTIFACTS_DIR = tmp_path / "artifacts"
    engine.forget()
    engine.registry().save(conf.MODEL_NAME, writer=tiny_model.save)
    broker = PrivateRedis().start()
    saved = {k: app.conf.get(k) for k in CONF_KEYS}
    app.conf.broker_url = app.conf.broker_write_url = app.conf.broker_read_url = broker.url
    app.conf.broker_connection_max_retries = 0  # a publish fails fast instead of blocking the request
    app.conf.broker_transport_options = {"visibility_timeout": 3600}
    app.conf.task_always_eager = False
    _reset_pools(app)
    worker = None
    try:
        worker = LiveWorker("rel-broker", env={"CELERY_BROKER_URL": broker.url,
                                               "AIGC_ARTIFACTS_DIR": str(settings.AIGC_ARTIFACTS_DIR)}).start()
        yield broker
    finally:
        if worker:
            worker.kill()
            worker.stop()
        for k, v in saved.items():
            app.conf[k] = v
        _reset_pools(app)
        broker.stop()
        engine.forget()


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
    # Keep the single worker busy so the classification message waits in Redis when it dies.
    busy = enqueue(demo_countdown, "common.demo", steps=60, delay_s=0.1)
    wait_for(lambda: Job.objects.filter(pk=busy.pk, state="running").exists(), timeout=60,
             what="the worker to be busy")
    codes: dict[int, list[int]] = {}
    classify = Job.objects.filter(kind="sentiment.classify")

    def post(n: int):
        r = api.post("/sentiment/api/news/", _batch(n), format="json")
        codes.setdefault(n, []).append(r.status_code)
        assert classify.filter(state="queued").count() <= 1  # single flight, whatever happens
        return r

    for n in range(0, 12):
        assert post(n).status_code == 201
    assert classify.count() == 1  # the burst joined one queued job
    first = classify.get()
    assert first.task_id  # published
    r = redis.Redis.from_url(private_broker.url)
    assert r.llen("default") > 0, "precondition: the message waits in the broker when it dies"
    assert resend_unsent_jobs(older_than_s=0, lost_after_s=0) == 0  # only waiting, not lost: left alone

    private_broker.stop()  # SIGKILL, no persistence: the waiting message is gone
    down = []
    for n in range(12, 17):
        resp = post(n)
        assert resp.status_code == 503, resp.content
        assert "job queue" in resp.json()["detail"] and resp["Retry-After"]
        down.append(n)
    assert api.get("/sentiment/api/news/?limit=5").status_code == 200  # reads do not need the broker

    private_broker.start()
    for n in range(17, 30):
        assert post(n).status_code == 201
    for n in down:  # the client retries what was refused: stored already, so nothing doubles
        resp = post(n)
        assert resp.status_code == 200 and resp.json()["duplicates"] == 2, resp.content

    assert not [c for cs in codes.values() for c in cs if c >= 500 and c != 503]
    assert NewsItem.objects.count() == 60
    assert set(NewsItem.objects.values_list("url", flat=True)) == {
        f"https://news.example.com/rel/{n}/{i}" for n in range(30) for i in range(2)}

    # Beat's sweeper, once the restarted broker's queue has drained: the queued job's message
    # died with the broker (it is in neither the queue nor the unacknowledged set): re-sent, once.
    wait_for(lambda: r.llen("default") == 0 and Job.objects.get(pk=busy.pk).state == "succeeded", timeout=90,
             what="the worker to drain the restarted broker")
    assert classify.filter(state="queued").count() == 1
    assert resend_unsent_jobs(older_than_s=0, lost_after_s=0) == 1
    assert resend_unsent_jobs(older_than_s=0, lost_after_s=0) == 0  # now waiting or taken: not again
    wait_for(lambda: Classification.objects.count() == 60 and not classify.exclude(state="succeeded").exists(),
             timeout=120, what="every item to be classified")
    assert classify.count() <= 3
    assert set(classify.values_list("attempts", flat=True)) == {1}  # each ran once
    hourly = TrendBucket.objects.filter(scope="topic", size="1h")
    assert sum(hourly.values_list("count", flat=True)) == 60  # each item classified and counted once
