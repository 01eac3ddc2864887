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


RULE_FORM = {"metric": "negative_count", "direction": "high", "window": "1h", "ratio": 2, "history_days": 10,
             "quantile": 0.99, "rearm_hours": 24, "growth": 2, "min_volume": 3, "enabled": "on"}


def test_it_edits_rules_with_validation(staff_client):
    r = staff_client.post("/sentiment/rules/", {**RULE_FORM, "name": "bad", "scope": "topic", "key": "weather"})
    assert r.status_code == 200 and "topic must be one of" in r.content.decode()
    r = staff_client.post("/sentiment/rules/", {**RULE_FORM, "name": "bad", "scope": "topic", "quantile": 2})
    assert r.status_code == 200 and "must be between" in r.content.decode()
    from apps.sentiment.models import Company

    Company.objects.create(ticker="ACME", name="Acme Corp")  # a company key must name a known company
    r = staff_client.post("/sentiment/rules/", {**RULE_FORM, "name": "ok", "scope": "company", "key": "$acme",
                                                "metric": "negative_share", "window": "1d"})
    assert r.status_code == 302 and AlertRule.objects.get().key == "ACME"


def test_the_rules_editor_previews_an_unsaved_rule_over_the_stored_buckets(staff_client):
    from datetime import timedelta

    from .conftest import T0, make_item

    for h in range(60):
        for i in range(1 + h % 2 + (12 if h == 50 else 0)):
            make_item(topic="credit", sentiment="negative", published_at=T0 + timedelta(hours=h, minutes=4 * i))
    r = staff_client.post("/sentiment/rules/preview/", {**RULE_FORM, "name": "try", "scope": "topic",
                                                        "key": "credit"})
    data = r.json()
    assert r.status_code == 200 and data["alerts"] == 1 and not AlertRule.objects.exists()
    (k,) = data["keys"]
    assert k["alerts"][0]["started_at"].startswith("2026-10-03T02:00") and "busiest 1%" in k["alerts"][0]["explanation"]
    assert data["alerts_per_week"] > 0
    bad = staff_client.post("/sentiment/rules/preview/", {**RULE_FORM, "name": "x", "scope": "topic", "ratio": 0})
    assert bad.status_code == 400 and bad.json()["detail"]


def test_the_alert_page_shows_evidence_history_and_takes_ack_and_silence(staff_client):
    from datetime import timedelta

    from apps.sentiment import alerts

    from .conftest import T0, make_item

    rule = AlertRule.objects.create(name="credit", scope="topic", key="credit", window="1h", history_days=3)
    for h in range(60):
        for i in range(1 + h % 2 + (12 if h == 50 else 0)):
            make_item(topic="credit", sentiment="negative", published_at=T0 + timedelta(hours=h, minutes=4 * i),
                      headline=f"Credit item {h}-{i}")
    alerts.evaluate_rules(now=T0 + timedelta(hours=60))
    alert = rule.alerts.get()
    page = staff_client.get(f"/sentiment/alerts/{alert.pk}/").content.decode()
    from django.utils.html import escape

    assert escape(alert.explanation) in page and "Credit item 50-0" in page and "<td>sent</td>" in page
    staff_client.post(f"/sentiment/alerts/{alert.pk}/acknowledge/")
    staff_client.post(f"/sentiment/alerts/{alert.pk}/silence/", {"hours": "24"})
    alert.refresh_from_db()
    assert alert.acknowledged_at is not None and alert.is_silenced()
    page = staff_client.get(f"/sentiment/alerts/{alert.pk}/").content.decode()
    assert "acknowledged" in page and "silenced" in page.lower()
    assert f"/sentiment/alerts/{alert.pk}/" in staff_client.get("/sentiment/alerts/").content.decode()


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
