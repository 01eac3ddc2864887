"""Fault: a real Celery worker is SIGKILLed in the middle of a task.

The work runs again on another worker, the rows say so, and nothing is done
twice where it matters: the webhook receiver (which de-duplicates on
``webhook-id``, as Standard Webhooks receivers do) acts once; an import that
was cut off leaves nothing half-written and is not doubled on re-run; a
training cut off publishes no half version, and the re-run publishes one.
Both brokers: the recovery paths used here (the delivery sweeper and the
heartbeat-based job recovery) do not depend on the broker redelivering.
"""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from apps.common.jobs import recover_orphaned_jobs
from apps.common.models import Job
from apps.sentiment import webhooks
from apps.sentiment.models import Delivery
from tests.conftest import ROOT, LiveWorker, wait_for

from .services import DedupReceiver


@pytest.fixture
def real_workers(transactional_db, settings):
    """Start workers on demand; every one is stopped at the end, whatever happens."""
    from config.celery import app

    app.conf.task_always_eager = False
    settings.AIGC_ALLOW_PRIVATE_URLS = True
    started: list[LiveWorker] = []

    def start(name: str) -> LiveWorker:
        w = LiveWorker(name)
        started.append(w)
        return w.start()

    yield start
    for w in started:
        w.kill()  # nothing to finish gracefully here; SIGTERM would wait for the warm shutdown
        w.stop()


@pytest.mark.worker
def test_it_redelivers_a_webhook_whose_worker_died_mid_request_without_a_double_effect(real_workers):
    with DedupReceiver(hold_first=True) as rx:
        sub = webhooks.create_subscription(rx.url)
        w1 = real_workers("rel-hook-1")
        with transaction.atomic():
            msg = webhooks.publish("alert.firing", {"alert_id": 7, "key": "credit"}, scope_key="topic:credit")
        assert rx.first_arrived.wait(60), "the first attempt never reached the receiver"
        w1.kill()  # the receiver has the request; the worker dies before it hears back or logs anything
        rx.release()
        d = Delivery.objects.get(message=msg, subscription=sub)
        assert (d.state, d.attempts) == ("pending", 1)  # claimed, outcome unknown
        real_workers("rel-hook-2")
        # The every-minute sweeper, once the claimed attempt's lease has run out:
        later = timezone.now() + timedelta(seconds=webhooks.ATTEMPT_LEASE_S + 5)
        assert webhooks.send_due(now=later) == 1
        wait_for(lambda: Delivery.objects.filter(pk=d.pk, state="succeeded").exists(), timeout=60,
                 what="the re-sent delivery to succeed")
        requests, effects = list(rx.requests), list(rx.effects)
    d.refresh_from_db()
    assert [r["id"] for r in requests] == [msg.event_id, msg.event_id]  # at least once, same id
    assert effects == [msg.event_id]  # the receiver acted once
    assert requests[0]["body"] == requests[1]["body"]
    assert d.attempts == 2
    log = list(d.attempt_log.order_by("attempt_no").values_list("attempt_no", "status", "response_code"))
    assert log == [(1, "failed", None), (2, "succeeded", 200)]
    assert "worker making this attempt stopped" in d.attempt_log.get(attempt_no=1).error


@pytest.mark.worker
def test_it_reruns_a_transcript_import_cut_off_by_a_killed_worker_without_doubling_it(real_workers):
    from apps.support import api as support_api
    from apps.support.models import TranscriptPair

    lines = (ROOT / "fixtures" / "support" / "transcripts.jsonl").read_bytes().splitlines(keepends=True)
    data = b"".join(lines[:600])  # ~200 conversations: a few seconds of work
    w1 = real_workers("rel-ingest-1")
    job = support_api.queue_transcripts(data, "transcripts.jsonl").job
    wait_for(lambda: Job.objects.filter(pk=job.pk, state="running", progress__gte=2).exists(), timeout=90,
             what="the import to start on the first worker")
    w1.kill()
    job.refresh_from_db()
    assert job.state == "running" and job.worker.startswith("rel-ingest-1@")
    assert TranscriptPair.objects.count() == 0  # nothing half-written
    real_workers("rel-ingest-2")
    time.sleep(2.5)
    with override_settings(AIGC_WORKER_STALE_AFTER=2):
        assert recover_orphaned_jobs() == [job.pk]
    done = wait_for(lambda: Job.objects.filter(pk=job.pk, state__in=["succeeded", "failed"]).first(),
                    timeout=120, what="the import to finish on the second worker")
    assert done.state == "succeeded", done.error
    assert done.attempts == 2 and done.worker.startswith("rel-ingest-2@")
    assert "re-queued" not in done.message
    pairs = TranscriptPair.objects.count()
    assert pairs > 50 and done.result.get("pairs", pairs) == pairs


@pytest.mark.worker
def test_it_reruns_a_training_killed_midway_and_publishes_one_whole_version(real_workers, tmp_path, settings):
    from apps.common import engine
    from apps.common.jobs import enqueue
    from apps.support import ingest, services, tasks

    settings.AIGC_ARTIFACTS_DIR = tmp_path / "artifacts"  # the workers get it too (worker_env)
    engine.forget()
    lines = (ROOT / "fixtures" / "support" / "transcripts.jsonl").read_bytes().splitlines(keepends=True)
    ingest.ingest_transcripts(b"".join(lines[:600]), "transcripts.jsonl")
    w1 = real_workers("rel-train-1")
    job = enqueue(tasks.train_support, "support.train")
    wait_for(lambda: Job.objects.filter(pk=job.pk, state="running", progress__gte=5).exists(), timeout=120,
             what="training to be under way on the first worker")
    w1.kill()
    reg = engine.registry()
    assert reg.versions(services.MODEL_NAME) == []  # nothing half-trained is visible
    real_workers("rel-train-2")
    time.sleep(2.5)
    with override_settings(AIGC_WORKER_STALE_AFTER=2):
        assert recover_orphaned_jobs() == [job.pk]
    done = wait_for(lambda: Job.objects.filter(pk=job.pk, state__in=["succeeded", "failed"]).first(),
                    timeout=180, what="training to finish on the second worker")
    assert done.state == "succeeded", done.error
    assert done.attempts == 2 and done.worker.startswith("rel-train-2@")
    (version,) = reg.versions(services.MODEL_NAME)  # one whole version, not two
    reg.verify(version)
    assert reg.current(services.MODEL_NAME).version == version.version == done.result["version"]
