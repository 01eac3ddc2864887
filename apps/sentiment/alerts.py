"""Alert rules evaluated over the trend buckets with the pure detector.

For each rule and key (one topic or ticker, or every key of the scope), the
evaluation walks the complete buckets it has not read yet, oldest first:
score the bucket against the ``history`` buckets before it, advance the
stored state machine, and turn its events into Alert rows and webhook
messages in the same transaction. The state row is written with a
compare-and-set on how far it had read, so two evaluations running at once
(beat and after-ingest) cannot both act on the same bucket.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from apps.sentiment.detector import AlertState, DetectorConfig, StateConfig, score_point, step
from apps.sentiment.models import (
    BUCKET_SECONDS,
    Alert,
    AlertRule,
    NewsItem,
    RuleScopeState,
    Scope,
    TrendBucket,
    bucket_start,
)
from apps.sentiment.webhooks import publish

log = logging.getLogger(__name__)

MAX_STEPS = 20_000      # buckets one evaluation may walk (a first run over weeks of 5-minute data)
MAX_ALERT_ITEMS = 100   # news items linked to one alert


class ConcurrentEvaluation(Exception):
    pass


DETECTOR_FIELDS = {"scope", "key", "metric", "window", "history", "warmup", "sensitivity_z", "min_volume",
                   "pending_for", "resolve_after", "cooldown_minutes", "enabled"}


def rule_changed(rule: AlertRule, changed: set[str]) -> int:
    """After an edit that changes what the detector computes: resolve the rule's open
    alerts (subscribers get alert.resolved) and restart its state machines from the
    history. Returns the alerts resolved."""
    if not changed & DETECTOR_FIELDS:
        return 0
    now = timezone.now()
    n = 0
    with transaction.atomic():
        for alert in Alert.objects.select_for_update().filter(
                rule=rule, state__in=[Alert.State.PENDING, Alert.State.FIRING]):
            was_firing = alert.state == Alert.State.FIRING
            alert.state = Alert.State.RESOLVED if was_firing else Alert.State.CANCELLED
            alert.resolved_at = now if was_firing else None
            alert.save(update_fields=["state", "resolved_at"])
            if was_firing:
                payload = {**alert_payload(alert), "reason": "the rule was edited"}
                publish("alert.resolved", payload, scope_key=f"{alert.scope}:{alert.key}", alert=alert)
            n += 1
        RuleScopeState.objects.filter(rule=rule).delete()
    return n


def detector_configs(rule: AlertRule) -> tuple[DetectorConfig, StateConfig]:
    share = rule.metric == AlertRule.Metric.NEGATIVE_SHARE
    return (
        DetectorConfig(history=rule.history, warmup=rule.warmup, z_threshold=rule.sensitivity_z,
                       min_volume=rule.min_volume, min_scale=0.1 if share else 1.0, count_series=not share),
        StateConfig(pending_for=rule.pending_for, resolve_after=rule.resolve_after,
                    cooldown=rule.cooldown_minutes * 60.0),
    )


def rule_keys(rule: AlertRule) -> list[str]:
    if rule.key:
        return [rule.key]
    return sorted(set(TrendBucket.objects.filter(scope=rule.scope, size=rule.window)
                      .values_list("key", flat=True)))


def metric_value(bucket: TrendBucket | None, metric: str) -> tuple[float, float]:
    """(value, volume) of one bucket; an empty bucket is (0, 0)."""
    if bucket is None:
        return 0.0, 0.0
    if metric == AlertRule.Metric.NEGATIVE_SHARE:
        return bucket.negative_share, float(bucket.count)
    return float(bucket.negative_count), float(bucket.count)


def evaluate_rules(now: datetime | None = None, rules=None) -> dict:
    """Evaluate every enabled rule (or the given ones). Returns event counts."""
    now = now or timezone.now()
    counts: dict[str, int] = {"pending": 0, "firing": 0, "resolved": 0, "cancelled": 0, "keys": 0}
    rules = list(rules if rules is not None else AlertRule.objects.filter(enabled=True))
    for rule in rules:
        for key in rule_keys(rule):
            try:
                events = evaluate_rule_key(rule, key, now)
            except ConcurrentEvaluation:
                continue
            counts["keys"] += 1
            for kind in events:
                counts[kind] = counts.get(kind, 0) + 1
    return counts


def evaluate_rule_key(rule: AlertRule, key: str, now: datetime) -> list[str]:
    """Step the rule's state machine over every closed window not read yet, then
    over the open window if it already breaches (so a burst fires before its window
    closes); an open window is stepped once, and not again when it closes."""
    size = rule.window
    step_s = timedelta(seconds=BUCKET_SECONDS[size])
    open_start = bucket_start(now, size)
    last_complete = open_start - step_s
    state_row, _ = RuleScopeState.objects.get_or_create(rule=rule, key=key)
    read_until, revision = state_row.last_bucket_start, state_row.revision
    origin = (TrendBucket.objects.filter(scope=rule.scope, key=key, size=size)
              .order_by("start").values_list("start", flat=True).first())
    if origin is None:
        return []
    first = origin if read_until is None else max(origin, read_until + step_s)
    if first > open_start:
        return []
    n_steps = int((open_start - first) / step_s)  # closed windows to read
    if n_steps > MAX_STEPS:
        first = open_start - MAX_STEPS * step_s
        n_steps = MAX_STEPS
    history_start = first - rule.history * step_s
    buckets = {b.start: b for b in TrendBucket.objects.filter(
        scope=rule.scope, key=key, size=size, start__gte=history_start, start__lte=open_start)}
    # A dense series (windows with no news are zeros) ending with the open window;
    # nothing before the key's first news counts as history.
    starts = [history_start + i * step_s for i in range(rule.history + n_steps + 1)]
    values, volumes = zip(*[metric_value(buckets.get(s), rule.metric) for s in starts], strict=True)
    first_history = int((max(origin, history_start) - history_start) / step_s)
    cfg, state_cfg = detector_configs(rule)
    state = AlertState.from_dict(state_row.state)
    emitted: list[str] = []
    with transaction.atomic():
        open_alert = Alert.objects.select_for_update().filter(
            rule=rule, key=key, state__in=[Alert.State.PENDING, Alert.State.FIRING]).first()
        for i in range(rule.history, len(starts)):
            t0, is_open = starts[i], i == len(starts) - 1
            score = score_point(values[i], values[max(i - rule.history, first_history):i], cfg, volumes[i])
            if state.extra.get("provisional") == t0.timestamp():
                # Stepped as a breach while it was open: refresh the alert, do not count it twice.
                if not is_open:
                    state.extra.pop("provisional")
                open_alert = _apply(rule, key, t0, step_s, score, [], open_alert, now)
                continue
            if is_open and not score.breaching:
                break  # an open window may still grow; it is judged when it closes
            state, events = step(state, score.breaching, t0.timestamp(), state_cfg)
            if is_open:
                state.extra["provisional"] = t0.timestamp()
            emitted.extend(ev.kind for ev in events)
            open_alert = _apply(rule, key, t0, step_s, score, [ev.kind for ev in events], open_alert, now)
        updated = RuleScopeState.objects.filter(pk=state_row.pk, revision=revision).update(
            state=state.to_dict(), last_bucket_start=max(last_complete, read_until or last_complete),
            revision=revision + 1)
        if not updated:
            raise ConcurrentEvaluation(f"{rule} / {key} was evaluated concurrently")
    return emitted


def _apply(rule: AlertRule, key: str, t0: datetime, step_s: timedelta, score, kinds: list[str],
           alert: Alert | None, now: datetime) -> Alert | None:
    """Turn one window's detector events into Alert changes and webhook messages."""
    end = min(t0 + step_s, now)
    if "pending" in kinds and alert is None:
        alert = Alert.objects.create(rule=rule, scope=rule.scope, key=key, state=Alert.State.PENDING,
                                     started_at=t0, value=score.value, peak_value=score.value,
                                     baseline=score.baseline, z=score.z)
    if alert is None:
        return None
    if score.breaching:
        alert.value = score.value
        alert.peak_value = max(alert.peak_value, score.value)
        alert.baseline, alert.z = score.baseline, max(alert.z, score.z)
        alert.save(update_fields=["value", "peak_value", "baseline", "z"])
        _link_items(alert, t0, t0 + step_s)
    if "firing" in kinds:
        alert.state, alert.fired_at = Alert.State.FIRING, end
        alert.save(update_fields=["state", "fired_at"])
        publish("alert.firing", alert_payload(alert), scope_key=f"{alert.scope}:{alert.key}", alert=alert)
    elif "resolved" in kinds:
        alert.state, alert.resolved_at = Alert.State.RESOLVED, end
        alert.save(update_fields=["state", "resolved_at"])
        publish("alert.resolved", alert_payload(alert), scope_key=f"{alert.scope}:{alert.key}", alert=alert)
        return None
    elif "cancelled" in kinds:
        alert.state = Alert.State.CANCELLED
        alert.save(update_fields=["state"])
        return None
    return alert


def _link_items(alert: Alert, start: datetime, end: datetime) -> None:
    have = alert.items.count()
    if have >= MAX_ALERT_ITEMS:
        return
    qs = NewsItem.objects.filter(published_at__gte=start, published_at__lt=end,
                                 classification__isnull=False).select_related("classification")
    if alert.scope == Scope.TOPIC:
        qs = qs.filter(classification__topic=alert.key)
    if alert.rule.metric in (AlertRule.Metric.NEGATIVE_COUNT, AlertRule.Metric.NEGATIVE_SHARE):
        qs = qs.filter(classification__sentiment="negative")
    items = [it for it in qs.order_by("published_at")[:2000]
             if alert.scope == Scope.TOPIC or alert.key in (it.tickers or [])]
    alert.items.add(*items[:MAX_ALERT_ITEMS - have])


def alert_payload(alert: Alert) -> dict:
    items = list(alert.items.order_by("published_at")[:20])
    return {
        "alert_id": alert.pk,
        "rule": {"id": alert.rule_id, "name": alert.rule.name, "metric": alert.rule.metric,
                 "window": alert.rule.window},
        "scope": alert.scope,
        "key": alert.key,
        "state": alert.state,
        "started_at": alert.started_at.isoformat(),
        "fired_at": alert.fired_at.isoformat() if alert.fired_at else None,
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
        "value": alert.value,
        "peak_value": alert.peak_value,
        "baseline": alert.baseline,
        "z": round(alert.z, 3),
        "items": [{"id": it.pk, "headline": it.headline, "url": it.url,
                   "published_at": it.published_at.isoformat()} for it in items],
    }
