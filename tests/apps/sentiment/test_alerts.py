"""Trend buckets and alert rules evaluated over them (the service around the pure detector)."""
from datetime import timedelta

import pytest

from apps.sentiment import alerts, services
from apps.sentiment.models import Alert, AlertRule, TrendBucket, WebhookMessage

from .conftest import T0, make_item

pytestmark = pytest.mark.django_db


def test_it_upserts_trend_buckets_per_topic_company_and_size():
    make_item(topic="credit", sentiment="negative", published_at=T0 + timedelta(minutes=1), tickers=["ACME"])
    make_item(topic="credit", sentiment="positive", published_at=T0 + timedelta(minutes=7))
    day = TrendBucket.objects.get(scope="topic", key="credit", size="1d")
    assert (day.count, day.negative_count, day.sentiment_sum) == (2, 1, 0)
    assert TrendBucket.objects.filter(scope="topic", key="credit", size="5m").count() == 2
    assert TrendBucket.objects.get(scope="company", key="ACME", size="1h").negative_count == 1


def test_it_moves_trends_when_staff_correct_a_label(staff):
    item = make_item(topic="credit", sentiment="negative")
    services.correct_label(item, staff, topic="macro", sentiment="neutral")
    assert TrendBucket.objects.get(scope="topic", key="credit", size="1h").count == 0
    macro = TrendBucket.objects.get(scope="topic", key="macro", size="1h")
    assert (macro.count, macro.negative_count) == (1, 0)
    item.refresh_from_db()
    assert (item.gold_topic, item.gold_sentiment) == ("macro", "neutral")
    assert item.classification.corrected_by == staff and item.classification.predicted_topic == "credit"


def burst_rule(**kw):
    return AlertRule.objects.create(**{
        "name": "credit spike", "scope": "topic", "key": "credit", "metric": "negative_count", "window": "1h",
        "history": 24, "warmup": 6, "min_volume": 3, "sensitivity_z": 4, "cooldown_minutes": 120, **kw})


def hourly(counts, topic="credit"):
    for h, n in enumerate(counts):
        for i in range(n):
            make_item(topic=topic, sentiment="negative", published_at=T0 + timedelta(hours=h, minutes=5 * i))


def test_it_fires_once_on_a_burst_links_its_news_and_resolves():
    rule = burst_rule()
    hourly([1, 2, 1, 0, 1, 2] * 5 + [9, 11, 10] + [1, 2, 1, 1, 0, 1, 2])
    counts = alerts.evaluate_rules(now=T0 + timedelta(hours=31, minutes=10))
    assert counts["firing"] == 1
    alert = Alert.objects.get()
    assert alert.state == "firing" and alert.started_at == T0 + timedelta(hours=30)
    assert alert.items.count() == 9 + 11 and alert.baseline == 1  # the closed window and the open one
    alerts.evaluate_rules(now=T0 + timedelta(hours=45))
    alert.refresh_from_db()
    assert alert.state == "resolved" and alert.resolved_at == T0 + timedelta(hours=34)
    assert alert.items.count() == 30 and alert.peak_value == 11
    assert Alert.objects.count() == 1
    assert list(WebhookMessage.objects.values_list("event_type", flat=True)) == ["alert.firing", "alert.resolved"]
    assert alerts.evaluate_rules(now=T0 + timedelta(hours=50))["firing"] == 0  # nothing re-read, nothing doubled
    assert rule.states.get().last_bucket_start == T0 + timedelta(hours=49)


def test_it_stays_quiet_on_a_steady_topic_and_for_other_keys():
    burst_rule(key="")  # every topic
    hourly([1, 2, 1, 0, 1, 2, 3, 1] * 5)
    hourly([0, 1] * 20, topic="macro")
    counts = alerts.evaluate_rules(now=T0 + timedelta(hours=41))
    assert counts["keys"] == 2 and counts["firing"] == 0 and not Alert.objects.exists()


def test_it_cancels_a_pending_alert_that_clears_before_pending_for():
    burst_rule(pending_for=3)
    hourly([1, 2, 1, 0, 1, 2] * 3 + [10, 10] + [1, 1, 1])
    alerts.evaluate_rules(now=T0 + timedelta(hours=24))
    assert list(Alert.objects.values_list("state", flat=True)) == ["cancelled"]
    assert not WebhookMessage.objects.exists()


def test_it_alerts_on_negative_share_with_minimum_volume():
    AlertRule.objects.create(name="share", scope="company", key="ACME", metric="negative_share", window="1d",
                             history=14, warmup=5, min_volume=5, sensitivity_z=3)
    for d in range(10):
        for i in range(6):
            make_item(sentiment="negative" if i == 0 else "positive", tickers=["ACME"],
                      published_at=T0 + timedelta(days=d, hours=i))
    for i in range(6):
        make_item(sentiment="negative" if i < 5 else "neutral", tickers=["ACME"],
                  published_at=T0 + timedelta(days=10, hours=i))
    alerts.evaluate_rules(now=T0 + timedelta(days=11, hours=1))
    alert = Alert.objects.get()
    assert alert.state == "firing" and alert.key == "ACME" and alert.value == pytest.approx(5 / 6)


def test_it_fires_in_the_open_window_and_does_not_count_it_twice_when_it_closes():
    burst_rule(pending_for=2)
    hourly([1, 2, 1, 0, 1, 2] * 5 + [9, 10])  # hour 30 closed, hour 31 still open at 31:50
    now = T0 + timedelta(hours=31, minutes=50)
    assert alerts.evaluate_rules(now=now)["firing"] == 1  # breaches in 30 (closed) and 31 (open)
    alert = Alert.objects.get()
    assert alert.state == "firing" and alert.fired_at == now and alert.items.count() == 19
    # Hour 31 closes quiet-free, hour 32 is quiet: one resolution, the open window was counted once.
    counts = alerts.evaluate_rules(now=T0 + timedelta(hours=33, minutes=1))
    assert counts["resolved"] == 1 and counts["firing"] == 0
    alert.refresh_from_db()
    assert alert.resolved_at == T0 + timedelta(hours=33) and Alert.objects.count() == 1


def test_it_waits_for_an_open_window_that_does_not_breach_yet():
    burst_rule()
    hourly([1, 2, 1, 0, 1, 2] * 5 + [2])
    assert alerts.evaluate_rules(now=T0 + timedelta(hours=30, minutes=5))["firing"] == 0
    for i in range(9):
        make_item(sentiment="negative", published_at=T0 + timedelta(hours=30, minutes=10 + i))
    assert alerts.evaluate_rules(now=T0 + timedelta(hours=30, minutes=30))["firing"] == 1


def test_it_resolves_open_alerts_and_restarts_when_a_rule_is_edited(sentiment_api):
    rule = burst_rule()
    hourly([1, 2, 1, 0, 1, 2] * 5 + [9, 11])
    alerts.evaluate_rules(now=T0 + timedelta(hours=31, minutes=30))
    assert Alert.objects.get().state == "firing"
    r = sentiment_api.patch(f"/sentiment/api/rules/{rule.pk}/", {"name": "renamed"}, format="json")
    assert r.status_code == 200 and Alert.objects.get().state == "firing"  # a new name changes nothing
    r = sentiment_api.patch(f"/sentiment/api/rules/{rule.pk}/", {"sensitivity_z": 6}, format="json")
    assert r.status_code == 200
    assert Alert.objects.get().state == "resolved" and not rule.states.exists()
    assert WebhookMessage.objects.filter(event_type="alert.resolved").count() == 1
