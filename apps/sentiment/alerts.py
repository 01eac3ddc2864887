"""Alert rules evaluated over the trend buckets with the pure detector.

Evaluation is a *replay*: for each rule and key, the detector runs over the
key's stored buckets (oldest first, empty windows as zeros, the open window
as it stands) and the alerts it implies are reconciled with the Alert rows.
So a bucket that changed after it was last read (an item classified late, a
re-labelled item) is simply read again on the next evaluation: an alert it
now implies is created, an alert it no longer supports is withdrawn, a burst
that continues is re-opened. The rule preview (``backtest``) runs the same
replay without writing, so it shows exactly what the live evaluator fires.

Webhooks go out for events whose window lies within ``NOTIFY_LOOKBACK`` of
now (a first replay over months of stored history records those alerts on
the dashboard without paging anyone about last month's bursts), and not
while the rule and key are silenced.

Two evaluations of one rule and key serialise on a row lock of its
``RuleScopeState`` (beat and after-classification can run at once).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from apps.sentiment.detector import DAY, Detector, DetectorConfig, Point, explain
from apps.sentiment.models import (
    BUCKET_SECONDS,
    Alert,
    AlertRule,
    AlertUpdate,
    NewsItem,
    RuleScopeState,
    Scope,
    TrendBucket,
    bucket_start,
)
from apps.sentiment.webhooks import publish

log = logging.getLogger(__name__)

MAX_STEPS = 60_000      # windows one replay may read (about 7 months of 5-minute windows)
MAX_ALERT_ITEMS = 100   # news items linked to one alert
NOTIFY_LOOKBACK = timedelta(hours=24)
SHARE_OFFSET = 0.05     # c in log(share + c): a share moves in 0..1, a count in items

# Fields whose change alters what the detector computes: an edit bumps the rule's revision.
DETECTOR_FIELDS = {"scope", "key", "metric", "direction", "window", "history_days", "quantile", "ratio",
                   "rearm_hours", "growth", "min_volume", "enabled"}


def detector_config(rule: AlertRule) -> DetectorConfig:
    """The rule's settings as the pure detector's config (the one mapping; the bench uses the defaults)."""
    share = rule.metric == AlertRule.Metric.NEGATIVE_SHARE
    # Warm-up: a day, and at least a week of daily windows (a quantile of two points says little).
    warmup_s = max(DAY, 7.0 * BUCKET_SECONDS[rule.window])
    return DetectorConfig(history_s=rule.history_days * DAY, warmup_s=warmup_s, quantile=rule.quantile,
                          rearm_s=rule.rearm_hours * 3600.0, growth=rule.growth,
                          threshold=math.log(max(rule.ratio, 1e-9)), min_volume=float(rule.min_volume),
                          offset=SHARE_OFFSET if share else 1.0, direction=rule.direction)


def rule_changed(rule: AlertRule, changed: set[str]) -> int:
    """After an edit that changes what the detector computes: resolve the rule's open
    alerts (subscribers get alert.resolved) and start a new revision, which the next
    evaluation replays from the stored history. Returns the alerts resolved."""
    if not changed & DETECTOR_FIELDS:
        return 0
    now = timezone.now()
    n = 0
    with transaction.atomic():
        for alert in Alert.objects.select_for_update().filter(
                rule=rule, state__in=[Alert.State.PENDING, Alert.State.FIRING]):
            alert.state, alert.resolved_at = Alert.State.RESOLVED, now
            alert.save(update_fields=["state", "resolved_at"])
            payload = {**alert_payload(alert), "reason": "the rule was edited"}
            publish("alert.resolved", payload, scope_key=f"{alert.scope}:{alert.key}", alert=alert)
            AlertUpdate.objects.create(alert=alert, kind=AlertUpdate.Kind.RESOLVED, note="the rule was edited",
                                       notified=True)
            n += 1
        AlertRule.objects.filter(pk=rule.pk).update(revision=rule.revision + 1)
        rule.revision += 1
        RuleScopeState.objects.filter(rule=rule).delete()
    return n


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
    if metric == AlertRule.Metric.COUNT:
        return float(bucket.count), float(bucket.count)
    return float(bucket.negative_count), float(bucket.count)


# --- the replay: buckets → episodes ------------------------------------------------

@dataclass
class Episode:
    """One alert as the replay sees it."""
    started: datetime
    opened: Point
    notices: list[tuple[datetime, Point]] = field(default_factory=list)  # firing + updates, in order
    peak: Point | None = None      # the window of the highest excess
    max_value: float = 0.0
    resolved: datetime | None = None


@dataclass
class Replay:
    starts: list[datetime]
    points: list[Point]
    episodes: list[Episode]
    truncated: bool


def key_series(rule: AlertRule, key: str, now: datetime) -> tuple[list[datetime], list[float], list[float], bool]:
    """The key's dense series from its first bucket to the open window (included)."""
    size = rule.window
    step = timedelta(seconds=BUCKET_SECONDS[size])
    open_start = bucket_start(now, size)
    qs = TrendBucket.objects.filter(scope=rule.scope, key=key, size=size, start__lte=open_start)
    origin = qs.order_by("start").values_list("start", flat=True).first()
    if origin is None:
        return [], [], [], False
    n = int((open_start - origin) / step) + 1
    truncated = n > MAX_STEPS
    if truncated:
        origin, n = open_start - (MAX_STEPS - 1) * step, MAX_STEPS
    buckets = {b.start: b for b in qs.filter(start__gte=origin)}
    starts = [origin + i * step for i in range(n)]
    values, volumes = [], []
    for s in starts:
        v, vol = metric_value(buckets.get(s), rule.metric)
        values.append(v)
        volumes.append(vol)
    return starts, values, volumes, truncated


def replay(rule: AlertRule, key: str, now: datetime | None = None, config: DetectorConfig | None = None) -> Replay:
    """Run the detector over the stored buckets; no writes. ``config`` overrides the rule's."""
    now = now or timezone.now()
    starts, values, volumes, truncated = key_series(rule, key, now)
    det = Detector(config or detector_config(rule))
    points: list[Point] = []
    episodes: list[Episode] = []
    current: Episode | None = None
    for s, v, vol in zip(starts, values, volumes, strict=True):
        p, events = det.step(s.timestamp(), v, vol)
        points.append(p)
        for ev in events:
            if ev.kind == "firing":
                current = Episode(started=s, opened=p, notices=[(s, p)], peak=p, max_value=p.value)
                episodes.append(current)
            elif ev.kind == "updated" and current is not None:
                current.notices.append((s, p))
            elif ev.kind == "resolved" and current is not None:
                current.resolved = s
                current = None
        if current is not None:
            current.max_value = max(current.max_value, p.value)
            if p.excess > (current.peak.excess if current.peak else -math.inf):
                current.peak = p
    return Replay(starts, points, episodes, truncated)


# --- live evaluation: episodes → Alert rows and webhooks --------------------------

def evaluate_rules(now: datetime | None = None, rules=None, touched: set[tuple[str, str]] | None = None) -> dict:
    """Evaluate every enabled rule (or the given ones); with ``touched``, only the
    (scope, key) pairs in it. Returns event counts."""
    now = now or timezone.now()
    counts: dict[str, int] = {"firing": 0, "updated": 0, "resolved": 0, "reopened": 0, "withdrawn": 0, "keys": 0}
    rules = list(rules if rules is not None else AlertRule.objects.filter(enabled=True))
    for rule in rules:
        keys = rule_keys(rule)
        if touched is not None:
            keys = [k for k in keys if (rule.scope, k) in touched]
        for key in keys:
            counts["keys"] += 1
            for kind in evaluate_rule_key(rule, key, now):
                counts[kind] = counts.get(kind, 0) + 1
    return counts


def evaluate_rule_key(rule: AlertRule, key: str, now: datetime | None = None) -> list[str]:
    """Replay the rule over the key's buckets and make the Alert rows agree with it."""
    now = now or timezone.now()
    with transaction.atomic():
        state_row, _ = RuleScopeState.objects.get_or_create(rule=rule, key=key)
        state_row = RuleScopeState.objects.select_for_update().get(pk=state_row.pk)
        result = replay(rule, key, now)
        step = timedelta(seconds=BUCKET_SECONDS[rule.window])
        # With a truncated series the first warm-up span is not comparable with earlier replays.
        horizon = result.starts[0] + timedelta(days=rule.history_days) if result.truncated else None
        emitted = _reconcile(rule, key, result, step, now, horizon)
        last_closed = bucket_start(now, rule.window) - step
        RuleScopeState.objects.filter(pk=state_row.pk).update(
            state={"episodes": len(result.episodes), "evaluated_at": now.isoformat()},
            last_bucket_start=last_closed, revision=state_row.revision + 1)
    return emitted


def _reconcile(rule: AlertRule, key: str, result: Replay, step: timedelta, now: datetime,
               horizon: datetime | None) -> list[str]:
    cfg = detector_config(rule)
    emitted: list[str] = []
    alerts = {a.started_at: a for a in Alert.objects.select_for_update().filter(
        rule=rule, key=key, rule_revision=rule.revision).exclude(state=Alert.State.CANCELLED)}
    wanted = {ep.started: ep for ep in result.episodes if horizon is None or ep.started >= horizon}
    # Withdraw first (frees the one-open-alert slot), then walk the episodes oldest first.
    for started, alert in sorted(alerts.items()):
        if started in wanted or (horizon is not None and started < horizon):
            continue
        was_open = alert.state == Alert.State.FIRING
        alert.state = Alert.State.CANCELLED
        alert.save(update_fields=["state"])
        notify = was_open and _may_notify(alert, now, now)
        if notify:
            publish("alert.resolved", {**alert_payload(alert), "reason": "withdrawn: late or re-labelled news"},
                    scope_key=f"{alert.scope}:{alert.key}", alert=alert)
        AlertUpdate.objects.create(alert=alert, kind=AlertUpdate.Kind.WITHDRAWN, notified=notify,
                                   note="the re-evaluated windows no longer meet the rule")
        emitted.append("withdrawn")
    for started, ep in sorted(wanted.items()):
        alert = alerts.get(started)
        if alert is None:
            emitted += _close_unseen(rule, key, started, now)
            alert = Alert.objects.create(
                rule=rule, rule_revision=rule.revision, scope=rule.scope, key=key, state=Alert.State.FIRING,
                started_at=started, fired_at=min(started + step, now), value=ep.opened.value,
                peak_value=ep.opened.value, baseline=ep.opened.level, excess=ep.opened.excess,
                peak_ratio=ep.opened.ratio, explanation=explain(ep.opened, cfg)[:300])
            _link_items(alert, started, min(ep.resolved or now, now))
            _notice(alert, AlertUpdate.Kind.FIRING, "alert.firing", started, ep.opened, now)
            emitted.append("firing")
        elif ep.resolved is None and alert.state == Alert.State.RESOLVED:
            alert.state, alert.resolved_at = Alert.State.FIRING, None
            alert.save(update_fields=["state", "resolved_at"])
            _notice(alert, AlertUpdate.Kind.REOPENED, "alert.updated", started, ep.peak or ep.opened, now,
                    note="late or re-labelled news extended the burst", counts=False)
            emitted.append("reopened")
        # Growth notices the row has not sent yet.
        for when, p in ep.notices[max(1, alert.notifications):]:
            alert.value, alert.excess = p.value, p.excess
            alert.explanation = explain(p, cfg)[:300]
            _notice(alert, AlertUpdate.Kind.UPDATED, "alert.updated", when, p, now)
            emitted.append("updated")
        peak = ep.peak or ep.opened
        if ep.max_value > alert.peak_value or peak.ratio > alert.peak_ratio:
            alert.peak_value, alert.peak_ratio = max(alert.peak_value, ep.max_value), max(alert.peak_ratio, peak.ratio)
            alert.save(update_fields=["peak_value", "peak_ratio"])
        if alert.state == Alert.State.FIRING:
            _link_items(alert, started, min(ep.resolved or now, now))
        if ep.resolved is not None and alert.state == Alert.State.FIRING:
            _resolve(alert, ep.resolved, now, "back within the busiest 1%")
            emitted.append("resolved")
    return emitted


def _close_unseen(rule: AlertRule, key: str, started: datetime, now: datetime) -> list[str]:
    """Resolve open alerts of the key that this replay cannot see, before opening a newer one.

    Only one alert per (rule, key) may be open. One opened by an earlier revision of the
    rule, or one that started before a truncated replay's horizon, is neither matched nor
    withdrawn above; left open it would make the new episode's insert fail, and with it
    every classification job that evaluates this key (seen in the 30-minute soak on a
    database with weeks of news). The replay says a new episode began at ``started``, so
    the older one ended by then."""
    emitted = []
    for old in Alert.objects.select_for_update().filter(
            rule=rule, key=key, state__in=[Alert.State.PENDING, Alert.State.FIRING], started_at__lt=started):
        _resolve(old, started, now, "a newer burst began; this one lies outside the replayed history")
        emitted.append("resolved")
    return emitted


def _resolve(alert: Alert, when: datetime, now: datetime, note: str) -> None:
    """Mark the alert resolved at ``when``, publish alert.resolved unless old or silenced."""
    alert.state, alert.resolved_at = Alert.State.RESOLVED, min(when, now)
    alert.save(update_fields=["state", "resolved_at"])
    notify = _may_notify(alert, when, now)
    if notify:
        publish("alert.resolved", alert_payload(alert), scope_key=f"{alert.scope}:{alert.key}", alert=alert)
    AlertUpdate.objects.create(alert=alert, kind=AlertUpdate.Kind.RESOLVED, window_start=when, notified=notify,
                               note=note)


def _may_notify(alert: Alert, when: datetime, now: datetime) -> bool:
    if when < now - NOTIFY_LOOKBACK:
        return False
    latest_silence = (Alert.objects.filter(rule_id=alert.rule_id, key=alert.key, silenced_until__gt=now)
                      .values_list("silenced_until", flat=True).first())
    return latest_silence is None


def _notice(alert: Alert, kind: str, event_type: str, when: datetime, p: Point, now: datetime, note: str = "",
            counts: bool = True) -> None:
    """Record one notice in the alert's history and publish it unless old or silenced.
    ``counts``: a firing or growth notice (matched against the replay's notices)."""
    alert.notifications += 1 if counts else 0
    alert.save()
    notify = _may_notify(alert, when, now)
    if notify:
        publish(event_type, alert_payload(alert), scope_key=f"{alert.scope}:{alert.key}", alert=alert)
    if not note and not notify:
        note = "silenced" if when >= now - NOTIFY_LOOKBACK else "found on replaying stored history; not sent"
    AlertUpdate.objects.create(alert=alert, kind=kind, window_start=when, value=p.value, ratio=round(p.ratio, 4),
                               notified=notify, note=note[:300])


def _link_items(alert: Alert, start: datetime, end: datetime) -> None:
    """The evidence: the news items of the alert's key in its windows (negative ones
    for the negative metrics), up to MAX_ALERT_ITEMS."""
    have = alert.items.count()
    if have >= MAX_ALERT_ITEMS:
        return
    qs = NewsItem.objects.filter(published_at__gte=start, published_at__lt=end, classification__isnull=False)
    if alert.scope == Scope.TOPIC:
        qs = qs.filter(classification__topic=alert.key)
    if alert.rule.metric in (AlertRule.Metric.NEGATIVE_COUNT, AlertRule.Metric.NEGATIVE_SHARE):
        qs = qs.filter(classification__sentiment="negative")
    # Ids and tickers only, and not the ones linked already: this runs on every evaluation
    # of a firing alert, and whole rows (with their probability tables) made it the slow part.
    qs = qs.exclude(pk__in=alert.items.values("pk")).order_by("published_at")
    if alert.scope == Scope.TOPIC:
        ids = list(qs.values_list("pk", flat=True)[:MAX_ALERT_ITEMS - have])
    else:
        ids = [pk for pk, tickers in qs.values_list("pk", "tickers")[:2000] if alert.key in (tickers or [])]
    alert.items.add(*ids[:MAX_ALERT_ITEMS - have])


# --- staff actions -----------------------------------------------------------------

def acknowledge(alert: Alert, user) -> Alert:
    now = timezone.now()
    with transaction.atomic():
        Alert.objects.filter(pk=alert.pk).update(acknowledged_at=now,
                                                 acknowledged_by=user if getattr(user, "pk", None) else None)
        AlertUpdate.objects.create(alert=alert, kind=AlertUpdate.Kind.ACKNOWLEDGED, at=now,
                                   note=f"by {getattr(user, 'username', '') or 'staff'}"[:300])
    alert.refresh_from_db()
    return alert


def silence(alert: Alert, user, hours: float) -> Alert:
    """No webhooks for this rule and key for ``hours`` (the alerts are still recorded)."""
    if not 0 < hours <= 24 * 30:
        raise ValueError("silence for between a few minutes and 30 days (hours in (0, 720])")
    now = timezone.now()
    until = now + timedelta(hours=hours)
    with transaction.atomic():
        Alert.objects.filter(pk=alert.pk).update(silenced_until=until)
        AlertUpdate.objects.create(alert=alert, kind=AlertUpdate.Kind.SILENCED, at=now,
                                   note=f"until {until:%Y-%m-%d %H:%M} UTC by "
                                        f"{getattr(user, 'username', '') or 'staff'}"[:300])
    alert.refresh_from_db()
    return alert


# --- preview / backtest --------------------------------------------------------------

def backtest(rule: AlertRule, now: datetime | None = None, keys: list[str] | None = None) -> dict:
    """What ``rule`` (saved or not) would have fired over the stored buckets: per key the
    series, the level, and the alerts; plus alerts per week. Writes nothing."""
    now = now or timezone.now()
    cfg = detector_config(rule)
    out_keys = []
    total = 0
    span_s = 0.0
    for key in keys or rule_keys(rule):
        r = replay(rule, key, now, cfg)
        if not r.starts:
            continue
        span_s = max(span_s, (r.starts[-1] - r.starts[0]).total_seconds() + BUCKET_SECONDS[rule.window])
        total += len(r.episodes)
        out_keys.append({
            "key": key,
            "starts": [s.isoformat() for s in r.starts],
            "values": [p.value for p in r.points],
            "levels": [p.level if p.warm else None for p in r.points],
            "alerts": [{"started_at": ep.started.isoformat(), "index": r.starts.index(ep.started),
                        "value": ep.opened.value, "ratio": round((ep.peak or ep.opened).ratio, 2),
                        "updates": len(ep.notices) - 1,
                        "resolved_at": ep.resolved.isoformat() if ep.resolved else None,
                        "explanation": explain(ep.opened, cfg)} for ep in r.episodes],
        })
    weeks = span_s / (7 * DAY) if span_s else 0.0
    return {"keys": out_keys, "alerts": total, "weeks": round(weeks, 2),
            "alerts_per_week": round(total / weeks, 2) if weeks else 0.0, "window": rule.window}


# --- payload -------------------------------------------------------------------------

def alert_url(alert: Alert) -> str:
    """Absolute link to the alert's page (``AIGC_PUBLIC_URL`` + path; the path alone without it)."""
    from django.conf import settings
    from django.urls import reverse

    base = (getattr(settings, "AIGC_PUBLIC_URL", "") or "").rstrip("/")
    return base + reverse("sentiment:alert", args=[alert.pk])


def alert_payload(alert: Alert) -> dict:
    items = list(alert.items.order_by("published_at")[:20])
    return {
        "alert_id": alert.pk,
        "url": alert_url(alert),
        "explanation": alert.explanation,
        "rule": {"id": alert.rule_id, "name": alert.rule.name, "metric": alert.rule.metric,
                 "direction": alert.rule.direction, "window": alert.rule.window},
        "scope": alert.scope,
        "key": alert.key,
        "state": alert.state,
        "started_at": alert.started_at.isoformat(),
        "fired_at": alert.fired_at.isoformat() if alert.fired_at else None,
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
        "value": alert.value,
        "peak_value": alert.peak_value,
        "baseline": alert.baseline,
        "ratio": round(alert.peak_ratio, 3),
        "notifications": alert.notifications,
        "items": [{"id": it.pk, "headline": it.headline, "url": it.url,
                   "published_at": it.published_at.isoformat()} for it in items],
    }
