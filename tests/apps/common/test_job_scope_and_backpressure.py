"""Every job id an app's API returns is pollable with that app's token (and not with
another app's); above the pending limit, news ingest answers 429 with Retry-After;
the limit and the depth are on /healthz and /jobs/; old finished jobs are pruned."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.common.jobs import prune_finished_jobs
from apps.common.models import Job
from apps.sentiment import services
from apps.sentiment.models import NewsItem, NewsSource

pytestmark = pytest.mark.django_db

TRAIN = {"support": "/support/api/train/", "sentiment": "/sentiment/api/train/", "recommend": "/recommend/api/train/"}


@pytest.fixture(autouse=True)
def _fresh_depth():
    services._depth_cache["at"] = -1e9  # the per-process depth cache must not leak between tests
    yield
    services._depth_cache["at"] = -1e9


def test_a_job_id_from_each_apps_api_is_pollable_with_that_apps_token_only(support_api, sentiment_api,
                                                                          recommend_api, staff_client):
    clients = {"support": support_api, "sentiment": sentiment_api, "recommend": recommend_api}
    ids = {}
    for app, c in clients.items():
        r = c.post(TRAIN[app], {}, format="json")
        assert r.status_code == 202, (app, r.content)
        ids[app] = r.json()["job"]
    r = sentiment_api.post("/sentiment/api/news/", {"items": [
        {"url": "https://s.example.com/1", "headline": "Acme beats estimates"}]}, format="json")
    ids["sentiment-ingest"] = r.json()["classify_job"]
    for name, job_id in ids.items():
        app = name.split("-")[0]
        got = clients[app].get(f"/api/jobs/{job_id}/")
        assert got.status_code == 200 and got.json()["id"] == job_id and got.json()["kind"].startswith(app + ".")
        for other, c in clients.items():
            if other != app:
                refused = c.get(f"/api/jobs/{job_id}/")
                assert refused.status_code == 404 and refused.json()["detail"], (name, other)
        assert staff_client.get(f"/api/jobs/{job_id}/").status_code == 200  # staff see every job
    listed = {j["kind"].split(".")[0] for j in support_api.get("/api/jobs/").json()["results"]}
    assert listed == {"support"}


def test_ingest_answers_429_with_retry_after_above_the_pending_limit(sentiment_api, client, staff_client, settings):
    settings.AIGC_INGEST_PENDING_LIMIT = 3
    src = NewsSource.objects.create(name="wire")
    for i in range(3):
        NewsItem.objects.create(source=src, url=f"https://p.example.com/{i}", headline=f"Pending {i}",
                                published_at="2026-10-01T00:00:00Z", content_hash=f"p{i}")
    r = sentiment_api.post("/sentiment/api/news/", {"items": [
        {"url": "https://p.example.com/new", "headline": "One too many"}]}, format="json")
    assert r.status_code == 429, r.content
    assert int(r["Retry-After"]) > 0 and "waiting for classification" in r.json()["detail"]
    assert not NewsItem.objects.filter(url="https://p.example.com/new").exists()  # nothing half-written
    backlog = client.get("/healthz").json()["backlog"]["sentiment.classify"]
    assert (backlog["depth"], backlog["limit"], backlog["over_limit"]) == (3, 3, True)
    page = staff_client.get("/jobs/").content.decode()
    assert "3 waiting (limit 3)" in page and "429" in page

    settings.AIGC_INGEST_PENDING_LIMIT = 4
    services._depth_cache["at"] = -1e9
    ok = sentiment_api.post("/sentiment/api/news/", {"items": [
        {"url": "https://p.example.com/new", "headline": "Room again"}]}, format="json")
    assert ok.status_code == 201, ok.content


def test_old_finished_jobs_are_pruned_and_waiting_ones_kept(settings):
    settings.AIGC_JOB_RETENTION_DAYS = 7
    old = timezone.now() - timedelta(days=8)
    gone = [Job.objects.create(kind="common.demo", state=s, finished_at=old).pk for s in ("succeeded", "failed")]
    kept = [Job.objects.create(kind="common.demo", state="queued", created_at=old).pk,
            Job.objects.create(kind="common.demo", state="succeeded", finished_at=timezone.now()).pk]
    assert prune_finished_jobs() == 2
    assert not Job.objects.filter(pk__in=gone).exists()
    assert Job.objects.filter(pk__in=kept).count() == 2
