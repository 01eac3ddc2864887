import pytest

from apps.common.jobs import enqueue
from apps.common.models import Job
from apps.recommend import services, tasks
from tests.apps.recommend.factories import catalogue, simulate


def load_small_shop():
    items = catalogue(per_kind=6)
    services.upsert_items([{**it, "external_id": it["id"]} for it in items])
    rows = [{"event_id": e["id"], "user_id": e["user"], "item_id": e["item"], "kind": e["kind"],
             "at": e["at"].isoformat()} for e in simulate(items, n_users=40, per_user=10, seed=5)]
    for start in range(0, len(rows), 1000):
        services.record_events(rows[start:start + 1000])


@pytest.mark.django_db
def test_it_trains_in_a_job_and_publishes_a_version(settings, tmp_path, django_capture_on_commit_callbacks,
                                                     staff_client):
    settings.AIGC_ARTIFACTS_DIR = tmp_path / "artifacts"
    services.reset_serving_cache()
    load_small_shop()
    with django_capture_on_commit_callbacks(execute=True):
        job = enqueue(tasks.train_recommender, "recommend.train", epochs=1)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED, job.error
    assert job.progress == 100 and job.result["version"] == 1
    version = services.model_versions()[0]
    systems = version.metrics["systems"]
    assert {"popularity", "text_only", "two_tower", "model"} <= set(systems)
    assert version.metrics["recall@10"] == systems["model"]["recall@10"]
    assert services.recommend("u1", k=3)["model_version"] == 1
    page = staff_client.get("/recommend/")
    assert page.status_code == 200
    assert b"metrics-chart" in page.content and b"v1" in page.content
    assert b'data-system="popularity"' in page.content
    services.reset_serving_cache()


@pytest.mark.django_db
def test_it_records_a_failed_training_on_an_empty_catalogue(settings, tmp_path, django_capture_on_commit_callbacks):
    settings.AIGC_ARTIFACTS_DIR = tmp_path / "artifacts"
    with pytest.raises(services.RecommendError), django_capture_on_commit_callbacks(execute=True):
        job = enqueue(tasks.train_recommender, "recommend.train")
    job = Job.objects.get(kind="recommend.train")
    assert job.state == Job.State.FAILED and "catalogue is empty" in job.error


@pytest.mark.django_db
def test_it_queues_training_from_the_dashboard_and_the_api(staff_client, recommend_api, monkeypatch):
    sent = []
    monkeypatch.setattr(tasks.train_recommender, "apply_async", lambda **kw: sent.append(kw) or type(
        "R", (), {"id": "x"})())
    res = staff_client.post("/recommend/train/")
    assert res.status_code == 302
    res = recommend_api.post("/recommend/api/train/", {}, format="json")
    assert res.status_code == 202 and res.json()["state"] == "queued"
    assert Job.objects.filter(kind="recommend.train").count() == 2


@pytest.mark.worker
def test_it_trains_on_a_real_worker_through_the_train_queue(live_worker, settings):
    from tests.conftest import wait_for

    items = catalogue(per_kind=4)
    services.upsert_items([{**it, "external_id": it["id"]} for it in items])
    rows = [{"event_id": e["id"], "user_id": e["user"], "item_id": e["item"], "kind": e["kind"],
             "at": e["at"].isoformat()} for e in simulate(items, n_users=24, per_user=8, seed=9)]
    services.record_events(rows[:1000])
    job = enqueue(tasks.train_recommender, "recommend.train", epochs=1)
    done = wait_for(lambda: Job.objects.filter(pk=job.pk, state__in=["succeeded", "failed"]).first(),
                    timeout=240, what="training job to finish")
    assert done.state == Job.State.SUCCEEDED, done.error
    assert done.worker and done.result["version"] >= 1
    services.reset_serving_cache()
    assert services.recommend("u1", k=3)["model_version"] == done.result["version"]
    services.reset_serving_cache()
