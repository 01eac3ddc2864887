"""The sentiment REST API: scoped tokens, batch and CSV ingest, labels, trends, rules, alerts, webhooks."""
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from apps.common.models import Job
from apps.sentiment.models import AlertRule, NewsItem, WebhookSubscription

from .conftest import T0, make_item, news

pytestmark = pytest.mark.django_db
NEWS = "/sentiment/api/news/"


def test_it_requires_a_token_scoped_to_sentiment(support_api):
    assert APIClient().get(NEWS).status_code == 401
    r = support_api.post(NEWS, {"items": [news()]}, format="json")
    assert r.status_code == 403 and "sentiment" in r.json()["detail"]


def test_it_ingests_a_batch_reports_bad_items_and_queues_classification(sentiment_api,
                                                                         django_capture_on_commit_callbacks):
    batch = {"source": "wire", "items": [news("Acme wins contract"), {"headline": "no url"}, news("Globex sued")]}
    with django_capture_on_commit_callbacks(execute=True):
        r = sentiment_api.post(NEWS, batch, format="json")
    assert r.status_code == 201, r.content
    body = r.json()
    assert (body["created"], body["rejected"]) == (2, 1)
    assert body["rejected_items"] == [{"index": 1, "reason": "url is required"}]
    job = Job.objects.get(pk=body["classify_job"])
    assert job.kind == "sentiment.classify" and job.state == "succeeded"  # no model yet: nothing classified
    again = sentiment_api.post(NEWS, batch, format="json")
    assert again.status_code == 200 and again.json()["created"] == 0 and again.json()["duplicates"] == 2
    assert NewsItem.objects.count() == 2


@pytest.mark.parametrize("payload, fragment", [
    ({"items": []}, "items"),
    ({"items": "nope"}, "items"),
    ({"items": [news()] * 1001}, "1000"),
])
def test_it_rejects_unusable_batches_with_a_detail(sentiment_api, payload, fragment):
    r = sentiment_api.post(NEWS, payload, format="json")
    assert r.status_code == 400 and fragment in r.json()["detail"]
    assert not NewsItem.objects.exists()


def test_it_ingests_a_csv_upload(sentiment_api, django_capture_on_commit_callbacks):
    csv = b"url,headline,published_at\nhttps://c.example/1,Bank fails,2026-10-01T10:00:00Z\nnot-a-url,x,\n"
    with django_capture_on_commit_callbacks(execute=True):
        r = sentiment_api.post("/sentiment/api/news/csv/", {"file": SimpleUploadedFile("n.csv", csv)},
                               format="multipart")
    assert r.status_code == 202 and r.json()["rows"] == 2, r.content  # the import is a job
    polled = sentiment_api.get(f"/api/jobs/{r.json()['job']}/")  # pollable with the token that made it
    assert polled.status_code == 200, polled.content
    job = polled.json()
    assert job["kind"] == "sentiment.import" and job["state"] == "succeeded"
    assert job["result"]["created"] == 1 and job["result"]["rejected_items"][0]["index"] == 1
    assert NewsItem.objects.count() == 1
    bad = sentiment_api.post("/sentiment/api/news/csv/", {"file": SimpleUploadedFile("n.csv", b"a,b\n1,2\n")},
                             format="multipart")
    assert bad.status_code == 400 and "lacks column" in bad.json()["detail"]


def test_it_corrects_a_label_and_lists_news_with_filters(sentiment_api):
    item = make_item(topic="credit", sentiment="negative", tickers=["ACME"])
    make_item(topic="macro", sentiment="neutral")
    r = sentiment_api.post(f"/sentiment/api/news/{item.pk}/label/", {"sentiment": "positive"}, format="json")
    assert r.status_code == 200 and r.json()["classification"]["sentiment"] == "positive"
    assert sentiment_api.post(f"/sentiment/api/news/{item.pk}/label/", {"topic": "weather"},
                              format="json").status_code == 400
    listed = sentiment_api.get(NEWS, {"ticker": "acme"}).json()
    assert [x["id"] for x in listed["results"]] == [item.pk]
    assert sentiment_api.get(NEWS, {"topic": "macro"}).json()["count"] == 1


def test_it_serves_trends(sentiment_api):
    make_item(topic="credit", sentiment="negative", published_at=T0)
    rows = sentiment_api.get("/sentiment/api/trends/", {"scope": "topic", "key": "credit", "size": "1d"}).json()
    assert rows["results"][0]["negative_share"] == 1.0 and rows["results"][0]["mean_sentiment"] == -1.0
    assert sentiment_api.get("/sentiment/api/trends/", {"size": "7m"}).status_code == 400


def test_it_creates_rules_with_validation(sentiment_api):
    r = sentiment_api.post("/sentiment/api/rules/", {"name": "acme", "scope": "company", "key": "$acme",
                                                     "metric": "negative_share", "window": "1d"}, format="json")
    assert r.status_code == 201 and AlertRule.objects.get().key == "ACME"
    bad = sentiment_api.post("/sentiment/api/rules/", {"name": "x", "scope": "topic", "key": "weather"},
                             format="json")
    assert bad.status_code == 400 and "topic must be one of" in bad.json()["detail"]
    bad = sentiment_api.post("/sentiment/api/rules/", {"name": "x", "quantile": 1.5}, format="json")
    assert bad.status_code == 400 and "quantile" in bad.json()["detail"]
    assert sentiment_api.get("/sentiment/api/alerts/").json()["count"] == 0


def test_it_creates_webhook_subscriptions_and_refuses_private_urls(sentiment_api, settings):
    settings.AIGC_ALLOW_PRIVATE_URLS = False
    r = sentiment_api.post("/sentiment/api/webhooks/", {"url": "http://127.0.0.1:8080/hook"}, format="json")
    assert r.status_code == 400 and "private" in r.json()["detail"]
    settings.AIGC_ALLOW_PRIVATE_URLS = True
    r = sentiment_api.post("/sentiment/api/webhooks/", {"url": "http://127.0.0.1:8080/hook",
                                                        "event_types": ["alert.firing"], "scopes": ["topic:credit"]},
                           format="json")
    assert r.status_code == 201 and r.json()["secret"].startswith("whsec_")
    sub = WebhookSubscription.objects.get()
    assert sentiment_api.get(f"/sentiment/api/webhooks/{sub.pk}/deliveries/").json()["count"] == 0
    assert sentiment_api.post(f"/sentiment/api/webhooks/{sub.pk}/resend/", {}, format="json").json() == {"resent": []}
    bad = sentiment_api.post("/sentiment/api/webhooks/", {"url": "http://127.0.0.1/h", "event_types": ["nope"]},
                             format="json")
    assert bad.status_code == 400 and "unknown event" in bad.json()["detail"]
