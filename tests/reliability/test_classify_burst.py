"""Single-flight classification under a burst, with two real workers: 100 ingest
calls leave at most one queued classification job at any moment (the database
refuses a second), every item is classified exactly once (no row is claimed by
both workers: the items the jobs claimed add up to the items stored), and the alert
rules are evaluated only by a run that stored something."""
from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from apps.common import engine
from apps.common.models import Job
from apps.sentiment import conf
from apps.sentiment.models import Classification, NewsItem, TrendBucket
from tests.conftest import LiveWorker, wait_for

CALLS = 100
PER_CALL = 2


def _client():
    from rest_framework.test import APIClient

    from apps.common.models import ApiToken

    _, raw = ApiToken.issue(name="burst", app="sentiment")
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return c


@pytest.fixture
def model_dir(settings, tmp_path, tiny_model):
    settings.AIGC_ARTIFACTS_DIR = tmp_path / "artifacts"
    engine.forget()
    engine.registry().save(conf.MODEL_NAME, writer=tiny_model.save)
    yield settings.AIGC_ARTIFACTS_DIR
    engine.forget()


@pytest.mark.worker
def test_a_burst_of_100_ingests_makes_one_queued_job_at_a_time_and_classifies_each_item_once(
        transactional_db, model_dir):
    from config.celery import app

    app.conf.task_always_eager = False
    env = {"AIGC_ARTIFACTS_DIR": str(model_dir)}
    workers = [LiveWorker("burst1", env=env).start(), LiveWorker("burst2", env=env).start()]
    try:
        api = _client()
        token = api._credentials["HTTP_AUTHORIZATION"]
        most_queued = [0]
        stop = threading.Event()

        def watch():  # a sample every 20 ms of how many classification jobs are queued
            while not stop.is_set():
                n = Job.objects.filter(kind="sentiment.classify", state="queued").count()
                most_queued[0] = max(most_queued[0], n)
                time.sleep(0.02)
            connection.close()

        codes: list[int] = []
        lock = threading.Lock()

        def burst(start: int):
            from rest_framework.test import APIClient

            c = APIClient()
            c.credentials(HTTP_AUTHORIZATION=token)
            for n in range(start, CALLS, 4):
                r = c.post("/sentiment/api/news/", {"source": "wire", "items": [
                    {"url": f"https://burst.example.com/{n}/{i}", "headline": f"Acme shares plunge {n}.{i}",
                     "published_at": "2026-10-01T12:00:00Z"} for i in range(PER_CALL)]}, format="json")
                with lock:
                    codes.append(r.status_code)
            connection.close()

        watcher = threading.Thread(target=watch)
        watcher.start()
        senders = [threading.Thread(target=burst, args=(k,)) for k in range(4)]
        for t in senders:
            t.start()
        for t in senders:
            t.join()
        total = CALLS * PER_CALL
        try:
            wait_for(lambda: Classification.objects.count() >= total and not Job.objects.filter(
                kind="sentiment.classify", state__in=["queued", "running"]).exists(), timeout=240,
                what="every item to be classified")
        except AssertionError as e:  # say where it stuck: the jobs and what the workers logged
            jobs = list(Job.objects.values_list("id", "kind", "state", "attempts", "progress", "error"))
            logs = "\n".join(f"--- {w.name}\n{w.log_path.read_text()[-2500:]}" for w in workers)
            raise AssertionError(f"{e}; classified {Classification.objects.count()} of {total}; "
                                 f"jobs {jobs}\n{logs}") from None
        finally:
            stop.set()
            watcher.join()

        assert codes == [201] * CALLS
        assert most_queued[0] <= 1
        assert NewsItem.objects.count() == total
        assert Classification.objects.count() == total  # one-to-one: at most one per item
        jobs = list(Job.objects.filter(kind="sentiment.classify"))
        assert 1 <= len(jobs) < CALLS // 4, len(jobs)  # coalesced: far fewer jobs than calls
        assert {j.state for j in jobs} == {"succeeded"} and {j.attempts for j in jobs} == {1}
        # No row was claimed twice: the rows the runs claimed add up to exactly the items.
        assert sum(j.result.get("classified", 0) for j in jobs) == total
        assert sum(j.result.get("stored", 0) for j in jobs) == total
        hourly = TrendBucket.objects.filter(scope="topic", size="1h")
        assert sum(hourly.values_list("count", flat=True)) == total  # each item counted once in the trends
        # The alert rules ran only in runs that stored something.
        for j in jobs:
            assert ("alerts" in j.result) == bool(j.result.get("stored")), j.result
    finally:
        for w in workers:
            w.stop()


@pytest.mark.django_db
def test_a_run_with_nothing_to_classify_does_not_evaluate_the_alert_rules(model_dir, monkeypatch):
    from apps.sentiment import alerts
    from apps.sentiment.tasks import classify_news

    calls = []
    monkeypatch.setattr(alerts, "evaluate_rules", lambda *a, **k: calls.append(1) or {})
    job = Job.objects.create(kind="sentiment.classify", coalesce_key="pending")
    out = classify_news.run(job_id=job.pk)
    assert out["classified"] == 0 and "alerts" not in out and calls == []


@pytest.mark.django_db
def test_a_long_drain_evaluates_the_alert_rules_while_it_runs_not_only_at_its_end(model_dir, monkeypatch,
                                                                                   settings):
    """A burst that arrives behind a backlog must page before the run ends: with the
    interval at 0 every stored batch is followed by an evaluation."""
    from apps.sentiment import alerts, services
    from apps.sentiment.tasks import classify_news

    settings.AIGC_ALERT_EVAL_INTERVAL_S = 0
    monkeypatch.setattr(conf, "CLASSIFY_BATCH", 2)
    source = services.source_named("drain")
    result = services.ingest_items([{"url": f"https://d.example/{i}", "headline": f"Acme update number {i}",
                                     "published_at": "2026-11-02T10:00:00Z"} for i in range(7)], source)
    assert len(result.created) == 7
    seen_at_call, touched = [], []

    def fake_evaluate(*a, **k):
        seen_at_call.append(Classification.objects.count())
        touched.append(k.get("touched"))
        return {"keys": 1}

    monkeypatch.setattr(alerts, "evaluate_rules", fake_evaluate)
    job = Job.objects.create(kind="sentiment.classify", coalesce_key="pending")
    out = classify_news.run(job_id=job.pk)
    assert out["stored"] == 7 and out["batches"] == 4
    # Evaluated after each batch, each time seeing what that batch had stored (2, 4, 6, 7).
    assert seen_at_call == [2, 4, 6, 7], seen_at_call
    assert out["alerts"] == {"keys": 4}  # the counts of the four evaluations, summed
    # Each evaluation is told the trend keys its batch changed (the topics its items got).
    topics = [{("topic", t) for t in Classification.objects.order_by("id").values_list("topic", flat=True)
               [i:j]} for i, j in ((0, 2), (2, 4), (4, 6), (6, 7))]
    assert touched == topics
