"""Staff pages: login required, feed and alerts partials, timeline JSON, label correction, rules, webhooks."""
from datetime import timedelta

import pytest

from apps.sentiment import webhooks
from apps.sentiment.models import Alert, AlertRule, Delivery, DeliveryAttempt, NewsSource, WebhookSubscription

from .conftest import T0, make_item

pytestmark = pytest.mark.django_db
PAGES = ["/sentiment/", "/sentiment/feed/", "/sentiment/alerts/", "/sentiment/timeline.json", "/sentiment/rules/",
         "/sentiment/webhooks/", "/sentiment/sources/"]


@pytest.mark.parametrize("url", PAGES)
def test_it_requires_staff_login(client, outsider, url):
    assert client.get(url).status_code == 302
    client.force_login(outsider)
    assert client.get(url).status_code == 302


@pytest.mark.parametrize("url", PAGES)
def test_it_renders_every_page_empty(staff_client, url):
    assert staff_client.get(url).status_code == 200


def test_it_shows_the_feed_with_labels_confidence_and_a_correct_control(staff_client):
    item = make_item("Acme downgraded to junk", topic="credit", sentiment="negative", tickers=["ACME"])
    page = staff_client.get("/sentiment/feed/").content.decode()
    assert "Acme downgraded to junk" in page and 'badge negative' in page and "0.80" in page
    assert f'hx-post="/sentiment/news/{item.pk}/label/"' in page
    r = staff_client.post(f"/sentiment/news/{item.pk}/label/", {"topic": "credit", "sentiment": "neutral"},
                          HTTP_HX_REQUEST="true")
    assert r.status_code == 200 and "corrected" in r.content.decode()
    item.refresh_from_db()
    assert item.gold_sentiment == "neutral"


def test_it_serves_timeline_json_with_alert_markers(staff_client):
    for h in range(3):
        make_item(topic="credit", sentiment="negative", published_at=T0 + timedelta(hours=h))
    rule = AlertRule.objects.create(name="r", scope="topic", key="credit")
    Alert.objects.create(rule=rule, scope="topic", key="credit", state="firing", started_at=T0 + timedelta(hours=1),
                         peak_value=1)
    data = staff_client.get("/sentiment/timeline.json?size=1h").json()
    credit = next(s for s in data["series"] if s["key"] == "credit")
    assert len(data["labels"]) == 3 and credit["negative_count"] == [1, 1, 1]  # from the first news on
    assert credit["mean_sentiment"] == [-1, -1, -1] and data["series"][0]["mean_sentiment"] == [None] * 3
    assert data["alerts"][0]["index"] == 1 and data["alerts"][0]["state"] == "firing"
    assert staff_client.get("/sentiment/timeline.json?size=2h").status_code == 400


def test_it_edits_rules_with_validation(staff_client):
    r = staff_client.post("/sentiment/rules/", {"name": "bad", "scope": "topic", "key": "weather",
                                                "metric": "negative_count", "window": "1h", "sensitivity_z": 4,
                                                "min_volume": 5, "history": 48, "warmup": 12, "pending_for": 1,
                                                "resolve_after": 1, "cooldown_minutes": 60, "enabled": "on"})
    assert r.status_code == 200 and "topic must be one of" in r.content.decode()
    from apps.sentiment.models import Company

    Company.objects.create(ticker="ACME", name="Acme Corp")  # a company key must name a known company
    r = staff_client.post("/sentiment/rules/", {"name": "ok", "scope": "company", "key": "$acme",
                                                "metric": "negative_share", "window": "1d", "sensitivity_z": 4,
                                                "min_volume": 5, "history": 20, "warmup": 7, "pending_for": 1,
                                                "resolve_after": 1, "cooldown_minutes": 60, "enabled": "on"})
    assert r.status_code == 302 and AlertRule.objects.get().key == "ACME"


def test_it_shows_delivery_logs_and_the_disabled_reason(staff_client, settings):
    settings.AIGC_ALLOW_PRIVATE_URLS = False
    r = staff_client.post("/sentiment/webhooks/", {"url": "http://10.0.0.5/hook"}, follow=True)
    assert "private" in r.content.decode() and not WebhookSubscription.objects.exists()
    sub = WebhookSubscription.objects.create(url="https://hooks.example/x", enabled=False,
                                             disabled_reason="disabled after 5 messages in a row failed")
    msg = webhooks.WebhookMessage.objects.create(event_type="alert.firing", payload={"type": "alert.firing"})
    d = Delivery.objects.create(message=msg, subscription=sub, state="failed", attempts=1)
    DeliveryAttempt.objects.create(delivery=d, attempt_no=1, status="failed", response_code=500, latency_ms=12,
                                   error="HTTP 500: boom")
    page = staff_client.get(f"/sentiment/webhooks/{sub.pk}/").content.decode()
    assert msg.event_id in page and "HTTP 500: boom" in page and "disabled after 5 messages" in page
    assert "Re-send" in page
    assert "disabled after 5 messages" in staff_client.get("/sentiment/").content.decode()  # staff are told


def test_it_adds_a_feed_and_uploads_a_csv(staff_client, settings):
    settings.AIGC_ALLOW_PRIVATE_URLS = True
    staff_client.post("/sentiment/sources/", {"action": "feed", "name": "loop", "url": "http://127.0.0.1/rss",
                                              "poll_interval_s": 120})
    assert NewsSource.objects.get(name="loop").kind == "rss"
    from django.core.files.uploadedfile import SimpleUploadedFile

    csv = b"url,headline\nhttps://x.example/1,Hello\n"
    r = staff_client.post("/sentiment/sources/", {"action": "csv", "file": SimpleUploadedFile("a.csv", csv)},
                          follow=True)
    from apps.common.models import Job

    job = Job.objects.get(kind="sentiment.import")  # an import is a job, not work inside the request
    assert f"Import of 1 rows queued as job #{job.pk}" in r.content.decode()
