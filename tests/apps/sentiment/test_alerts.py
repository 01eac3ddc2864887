"""Trend buckets and alert rules evaluated over them (the service around the pure detector)."""
from datetime import timedelta

import pytest

from apps.sentiment import alerts, services
from apps.sentiment.models import Alert, AlertRule, AlertUpdate, NewsItem, TrendBucket, WebhookMessage

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
        "history_days": 3, "min_volume": 3, "ratio": 2.0, **kw})


BACKGROUND = [1, 2, 1, 0, 1, 2] * 8  # two days of hourly negative counts
BURST_AT = len(BACKGROUND)           # hour 48


def hourly(counts, topic="credit", offset=0, sentiment="negative"):
    made = []
    for h, n in enumerate(counts):
        for i in range(n):
            made.append(make_item(topic=topic, sentiment=sentiment,
                                  published_at=T0 + timedelta(hours=offset + h, seconds=3600 * i // n)))
    return made


def at(hours, minutes=0):
    return T0 + timedelta(hours=hours, minutes=minutes)


def test_it_fires_once_on_a_burst_links_its_news_explains_itself_and_resolves():
    burst_rule()
    hourly(BACKGROUND + [9, 11, 10] + [1, 2, 1, 1, 0, 1, 2])
    counts = alerts.evaluate_rules(now=at(BURST_AT + 1, 10))
    assert counts["firing"] == 1
    alert = Alert.objects.get()
    assert alert.state == "firing" and alert.started_at == at(BURST_AT)
    assert alert.baseline == 2 and "busiest 1%" in alert.explanation and alert.explanation.startswith("3.3×")
    # Evidence: the news of the closed window and of the open one so far.
    assert alert.items.count() == 9 + NewsItem.objects.filter(published_at__gte=at(BURST_AT + 1),
                                                               published_at__lte=at(BURST_AT + 1, 10)).count()
    alerts.evaluate_rules(now=at(BURST_AT + 12))
    alert.refresh_from_db()
    # Resolved once a window is back under the busiest 1% (which now holds the burst's first hours).
    assert alert.state == "resolved" and alert.resolved_at == at(BURST_AT + 2)
    assert alert.items.count() == 20 and alert.peak_value == 11
    assert Alert.objects.count() == 1
    assert list(WebhookMessage.objects.values_list("event_type", flat=True)) == ["alert.firing", "alert.resolved"]
    payload = WebhookMessage.objects.first().payload["data"]
    assert payload["explanation"] == alert.explanation and payload["url"].endswith(f"/sentiment/alerts/{alert.pk}/")
    again = alerts.evaluate_rules(now=at(BURST_AT + 13))  # nothing new: nothing doubled
    assert (again["firing"], again["resolved"], WebhookMessage.objects.count()) == (0, 0, 2)
    kinds = list(AlertUpdate.objects.filter(alert=alert).values_list("kind", flat=True))
    assert kinds == ["firing", "resolved"]


def test_a_burst_that_grows_past_the_factor_updates_the_same_alert():
    burst_rule(growth=2.0)
    # The burst's own windows join the baseline (its busiest 1%), so growth is judged against them too.
    hourly(BACKGROUND + [8, 100, 110, 1])
    alerts.evaluate_rules(now=at(BURST_AT, 50))
    alerts.evaluate_rules(now=at(BURST_AT + 1, 59))
    alerts.evaluate_rules(now=at(BURST_AT + 2, 59))
    alert = Alert.objects.get()
    assert alert.notifications == 2 and alert.peak_value == 110
    assert list(WebhookMessage.objects.values_list("event_type", flat=True)) == ["alert.firing", "alert.updated"]


@pytest.mark.parametrize("comeback, expected", [(15, 1), (40, 2)])
def test_a_burst_that_dips_and_comes_back_pages_again_only_when_it_has_doubled(comeback, expected):
    # 10 items, three quiet hours (the alert resolves), then the comeback: within the re-arm span of the
    # last notification a new alert must have grown past it by the growth factor, as an update must.
    burst_rule(history_days=5, growth=2.0)
    background = [1, 2, 1, 0, 1, 2] * 20
    hourly(background + [10, 1, 2, 1, comeback, 1, 2, 1, 0])
    alerts.evaluate_rules(now=at(len(background) + 9, 10))
    assert Alert.objects.count() == expected
    assert [a.started_at for a in Alert.objects.order_by("started_at")] == \
        [at(len(background)), at(len(background) + 4)][:expected]
    assert list(WebhookMessage.objects.values_list("event_type", flat=True)) == \
        ["alert.firing", "alert.resolved"] * expected


def test_items_classified_after_their_windows_first_evaluation_still_raise_the_alert():
    burst_rule()
    hourly(BACKGROUND)
    late = hourly([9, 11], offset=BURST_AT)
    # The burst's items were stored but not yet classified when the rule was evaluated.
    from apps.sentiment.models import Classification

    rows = [(it.published_at, it.classification.topic, it.classification.sentiment, []) for it in late]
    services.apply_trends(rows, sign=-1)
    Classification.objects.filter(item__in=late).delete()
    assert alerts.evaluate_rules(now=at(BURST_AT + 2, 5))["firing"] == 0
    # Classification finishes a minute later and adds them to the (already read) windows.
    for it in late:
        Classification.objects.create(item=it, topic="credit", sentiment="negative")
    services.apply_trends(rows)
    assert alerts.evaluate_rules(now=at(BURST_AT + 2, 6))["firing"] == 1
    alert = Alert.objects.get()
    assert alert.started_at == at(BURST_AT) and alert.items.count() == 20


def test_relabelled_items_move_the_trend_and_withdraw_the_alert(staff):
    burst_rule()
    hourly(BACKGROUND)
    burst = hourly([9, 11], offset=BURST_AT)
    alerts.evaluate_rules(now=at(BURST_AT + 1, 30))
    alert = Alert.objects.get()
    assert alert.state == "firing"
    for it in burst[:15]:  # staff find most of them were not credit news
        services.correct_label(it, staff, topic="macro")
    assert TrendBucket.objects.get(scope="topic", key="credit", size="1h", start=at(BURST_AT)).negative_count == 0
    counts = alerts.evaluate_rules(now=at(BURST_AT + 1, 31))
    alert.refresh_from_db()
    assert counts["withdrawn"] == 1 and alert.state == "cancelled"
    assert list(WebhookMessage.objects.values_list("event_type", flat=True)) == ["alert.firing", "alert.resolved"]
    assert AlertUpdate.objects.filter(alert=alert, kind="withdrawn").exists()
    # Labelled back: the same burst raises its alert again.
    for it in burst[:15]:
        services.correct_label(it, staff, topic="credit")
    assert alerts.evaluate_rules(now=at(BURST_AT + 1, 32))["firing"] == 1


def test_a_first_replay_of_old_history_records_alerts_without_paging_anyone():
    burst_rule()
    hourly(BACKGROUND + [9, 11, 10, 1, 1])
    alerts.evaluate_rules(now=at(BURST_AT + 24 * 10))
    assert Alert.objects.get().state == "resolved"
    assert WebhookMessage.objects.count() == 0
    assert AlertUpdate.objects.filter(kind="firing", notified=False).exists()


def test_silence_stops_webhooks_for_the_rule_and_key_until_it_expires(staff):
    burst_rule()
    hourly(BACKGROUND + [9, 11, 1, 1] + [1, 2, 1, 0, 1, 2] * 4 + [30, 35, 1])
    alerts.evaluate_rules(now=at(BURST_AT, 30))
    first = Alert.objects.get()
    alerts.acknowledge(first, staff)
    alerts.silence(first, staff, hours=48)
    with pytest.raises(ValueError):
        alerts.silence(first, staff, hours=0)
    second_at = BURST_AT + 4 + 24
    alerts.evaluate_rules(now=at(second_at, 30))
    assert Alert.objects.count() == 2 and Alert.objects.filter(state="firing", started_at=at(second_at)).exists()
    # Silenced: the second burst and the first one's resolution are recorded, not sent.
    assert list(WebhookMessage.objects.values_list("event_type", flat=True)) == ["alert.firing"]
    first.refresh_from_db()
    assert first.acknowledged_by == staff and first.silenced_until is not None
    assert list(first.updates.values_list("kind", flat=True))[:3] == ["firing", "acknowledged", "silenced"]


def test_the_preview_equals_what_the_live_evaluator_fires_when_the_buckets_are_replayed():
    rule = burst_rule(key="")
    counts = BACKGROUND + [9, 11, 10, 1, 1, 0, 2, 1] + [1, 2, 1, 0, 1, 2] * 3 + [6, 25, 60, 2, 1, 0] + [1] * 10
    hourly(counts)
    hourly([0, 1] * 40, topic="macro")
    hourly([2] * 40 + [0] * 20 + [2] * 20, topic="markets")  # a drop: no spike alert
    end = len(counts)
    preview = alerts.backtest(rule, now=at(end))
    assert preview["alerts"] >= 2
    # The live evaluator, hour by hour as the buckets arrive.
    for h in range(end + 1):
        alerts.evaluate_rules(now=at(h, 59))
    live = sorted((a.key, a.started_at.isoformat(), a.resolved_at.isoformat() if a.resolved_at else None,
                   a.notifications - 1) for a in Alert.objects.exclude(state="cancelled"))
    shown = sorted((k["key"], a["started_at"], a["resolved_at"], a["updates"])
                   for k in preview["keys"] for a in k["alerts"])
    assert live == shown
    assert preview["alerts_per_week"] == pytest.approx(preview["alerts"] / preview["weeks"], rel=0.01)


def test_a_drop_rule_fires_on_a_volume_outage():
    rule = burst_rule(metric="count", direction="low", min_volume=0)
    hourly([5, 6, 4, 5] * 18 + [0] * 6 + [5] * 3)
    alerts.evaluate_rules(now=at(72 + 9))
    alert = Alert.objects.get(rule=rule)
    assert alert.started_at == at(72) and alert.resolved_at == at(78)
    assert "below" in alert.explanation


def test_the_rule_defaults_are_the_detector_defaults_the_benchmark_scores():
    from apps.sentiment.detector import DetectorConfig

    assert alerts.detector_config(AlertRule(window="5m")) == DetectorConfig()
    assert AlertRule().window == "5m"


def test_an_edit_that_changes_detection_resolves_open_alerts_and_starts_a_new_revision():
    rule = burst_rule()
    hourly(BACKGROUND + [9, 11])
    alerts.evaluate_rules(now=at(BURST_AT + 1, 30))
    assert alerts.rule_changed(rule, {"ratio"}) == 1
    assert Alert.objects.get().state == "resolved"
    rule.refresh_from_db()
    assert rule.revision == 2
    assert alerts.rule_changed(rule, {"name"}) == 0
    alerts.evaluate_rules(now=at(BURST_AT + 1, 31))
    assert Alert.objects.filter(rule_revision=2, state="firing").count() == 1


def test_services_never_import_tasks():
    import subprocess
    import sys

    code = ("import django, os, sys; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings'); "
            "django.setup(); import apps.sentiment.alerts, apps.sentiment.webhooks, apps.sentiment.services; "
            "sys.exit(1 if 'apps.sentiment.tasks' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_an_open_alert_the_replay_cannot_see_is_closed_before_a_new_burst_opens():
    # An alert left open by an earlier revision (or before a truncated replay's horizon) used
    # to make the new burst's insert fail, and with it every classify job evaluating the key.
    rule = burst_rule()
    hourly(BACKGROUND + [9, 11, 10])
    unseen = Alert.objects.create(rule=rule, rule_revision=rule.revision + 7, scope="topic", key="credit",
                                  state=Alert.State.FIRING, started_at=at(10), fired_at=at(11))
    counts = alerts.evaluate_rules(now=at(BURST_AT + 1, 10))
    unseen.refresh_from_db()
    assert counts["firing"] == 1 and counts["resolved"] == 1
    assert unseen.state == "resolved" and unseen.resolved_at == at(BURST_AT)
    assert Alert.objects.get(state="firing").started_at == at(BURST_AT)
    again = alerts.evaluate_rules(now=at(BURST_AT + 1, 20))
    assert (again["firing"], again["resolved"], Alert.objects.count()) == (0, 0, 2)
