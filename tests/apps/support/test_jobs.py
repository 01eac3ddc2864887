import pytest

from apps.common.models import Job
from apps.support.models import AnswerTemplate, TranscriptPair
from tests.apps.support.factories import as_jsonl, transcript_rows
from tests.conftest import wait_for


@pytest.mark.worker
def test_it_imports_transcripts_on_a_real_worker(live_worker, support_api):
    resp = support_api.post("/support/api/ingest/transcripts/", as_jsonl(transcript_rows(1)),
                            content_type="application/x-ndjson")
    assert resp.status_code == 202
    done = wait_for(lambda: Job.objects.filter(pk=resp.json()["job"], state__in=["succeeded", "failed"]).first(),
                    timeout=120, what="ingest job")
    assert done.state == "succeeded", done.error
    assert done.progress == 100 and done.result["pairs"] == 12 and done.worker
    assert TranscriptPair.objects.count() == 12 and AnswerTemplate.objects.count() == 3


@pytest.mark.django_db
def test_it_routes_training_to_the_train_queue():
    from config.celery import app

    route = app.amqp.router.route({}, "apps.support.tasks.train_support")
    assert route["queue"].name == "train"
    assert app.amqp.router.route({}, "apps.support.tasks.ingest_transcripts")["queue"].name == "default"


@pytest.fixture
def fast_build(bot_artifacts, monkeypatch):
    """train_bot's plumbing with the session's already-trained parts copied in (the models
    themselves are trained and tested once per session in conftest)."""
    import shutil

    from aigc_core.registry import Registry
    from apps.support import services

    root, metrics = bot_artifacts
    built = Registry(root).load_path(services.MODEL_NAME)
    calls = []

    def build(out_dir, pairs, templates, chunks, progress=None, **kw):
        calls.append((len(pairs), len(templates), len(chunks)))
        shutil.copytree(built, out_dir, dirs_exist_ok=True, ignore=shutil.ignore_patterns("manifest*"))
        return dict(metrics)

    monkeypatch.setattr(services, "build_bot", build)
    return calls


@pytest.mark.django_db
def test_it_trains_promotes_and_rolls_back_versions(support_api, settings, tmp_path, fast_build,
                                                   django_capture_on_commit_callbacks):
    from apps.support import ingest, services

    settings.AIGC_ARTIFACTS_DIR = tmp_path
    assert support_api.post("/support/api/models/rollback/").status_code == 400
    with pytest.raises(services.SupportError), django_capture_on_commit_callbacks(execute=True):
        support_api.post("/support/api/train/")  # eager tasks re-raise; the Job row records it too
    job = Job.objects.get(kind="support.train")
    assert job.state == "failed" and "Nothing to train on" in job.error

    ingest.ingest_transcripts(as_jsonl(transcript_rows(1)), "t.jsonl")
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            support_api.post("/support/api/train/")
    jobs = Job.objects.filter(kind="support.train", state="succeeded").order_by("id")
    assert [j.result["version"] for j in jobs] == [1, 2]
    assert fast_build == [(12, 3, 0), (12, 3, 0)]
    assert services.compose_reply("How can I reset my password?").intent == "password"

    assert support_api.post("/support/api/models/rollback/").json() == {"current": 1}
    assert support_api.get("/support/api/models/").json()["current"] == 1
    assert support_api.post("/support/api/models/2/promote/").json() == {"current": 2}
    missing = support_api.post("/support/api/models/9/promote/")
    assert missing.status_code == 404 and "no version 9" in missing.json()["detail"]


@pytest.mark.django_db
def test_it_follows_the_suggested_threshold_until_staff_set_one(support_api, staff_client, settings, tmp_path,
                                                                fast_build):
    from apps.support import ingest, services
    from apps.support.models import BotSettings

    settings.AIGC_ARTIFACTS_DIR = tmp_path
    BotSettings.get()  # a row made before any training (e.g. a hand-off) must not pin the default
    ingest.ingest_transcripts(as_jsonl(transcript_rows(1)), "t.jsonl")
    result = services.train_bot()
    cfg = BotSettings.get()
    assert cfg.threshold_source == "suggested" and cfg.threshold == result["suggested_threshold"]
    staff_client.post("/support/threshold/", {"threshold": "0.66"})
    services.train_bot()
    assert BotSettings.get().threshold == pytest.approx(0.66)
