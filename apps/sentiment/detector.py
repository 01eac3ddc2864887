"""Spike detection as pure functions over a numeric series (no Django, no ORM).

Two pieces, used by the alert service and by the benchmark alike:

1. ``score_point(value, history, config)`` / ``score_series(values, config)``:
   a robust z-score of each point against the points before it,
   ``z = (value - median(history)) / scale`` where ``scale`` is
   ``1.4826 * MAD(history)`` floored by ``config.min_scale`` and, for count
   series, by ``sqrt(median)`` (the Poisson noise of a count), so a series of
   mostly-zero counts does not make every single item look like a spike.
   A point breaches when it has at least ``warmup`` points of history, its
   volume reaches ``min_volume``, and ``z >= z_threshold``.

2. ``step(state, breaching, t, config)``: Prometheus-like alert states
   ``inactive → pending → firing → resolved`` with ``pending_for`` (breaching
   points before firing), ``resolve_after`` (quiet points before resolving) and
   a ``cooldown`` (time after resolving during which a new breach is ignored),
   so one burst gives one alert. The state is a small dict so callers can store
   it as JSON.

``detect(values, ...)`` runs both over a whole series and returns the events;
the benchmark scores these against known bursts.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

INACTIVE, PENDING, FIRING = "inactive", "pending", "firing"


@dataclass
class DetectorConfig:
    history: int = 48          # points before the current one that form the baseline
    warmup: int = 12           # history points needed before a point can breach
    z_threshold: float = 4.0   # robust z at or above which a point breaches
    min_volume: float = 5.0    # a point's volume (item count) must reach this to breach
    min_scale: float = 1.0     # floor on the baseline's spread (1 item for counts; e.g. 0.1 for shares)
    count_series: bool = True  # counts: also floor the spread by sqrt(median), Poisson noise


@dataclass
class StateConfig:
    pending_for: int = 1       # consecutive breaching points before firing (1 = fire at once)
    resolve_after: int = 1     # consecutive quiet points before a firing alert resolves
    cooldown: float = 0.0      # after resolving, breaches before t_resolved + cooldown are ignored


@dataclass
class PointScore:
    value: float
    baseline: float  # median of the history
    scale: float     # robust spread used as the z denominator
    z: float
    breaching: bool
    reason: str = ""  # why a point could not breach (warm-up, low volume)


def _median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    n = len(s)
    if n == 0:
        return 0.0
    mid = n // 2
    return float(s[mid]) if n % 2 else (s[mid - 1] + s[mid]) / 2.0


def score_point(value: float, history: Sequence[float], config: DetectorConfig,
                volume: float | None = None) -> PointScore:
    """Robust z of ``value`` against ``history`` (older points, oldest first)."""
    hist = list(history)[-config.history:] if config.history else list(history)
    baseline = _median(hist)
    mad = _median([abs(x - baseline) for x in hist])
    scale = max(1.4826 * mad, config.min_scale)
    if config.count_series:
        scale = max(scale, math.sqrt(max(baseline, 0.0)))
    z = (value - baseline) / scale
    vol = value if volume is None else volume
    if len(hist) < config.warmup:
        return PointScore(value, baseline, scale, z, False, "warm-up")
    if vol < config.min_volume:
        return PointScore(value, baseline, scale, z, False, "low volume")
    return PointScore(value, baseline, scale, z, z >= config.z_threshold)


def score_series(values: Sequence[float], config: DetectorConfig,
                 volumes: Sequence[float] | None = None) -> list[PointScore]:
    """Score every point against the ``config.history`` points before it."""
    return [
        score_point(v, values[max(0, i - config.history):i], config,
                    None if volumes is None else volumes[i])
        for i, v in enumerate(values)
    ]


@dataclass
class Event:
    kind: str       # "pending" | "firing" | "resolved" | "cancelled"
    t: float        # the point's time (index or epoch seconds)
    started: float  # when the breach began


@dataclass
class AlertState:
    state: str = INACTIVE
    breaches: int = 0                  # consecutive breaching points
    quiet: int = 0                     # consecutive quiet points while firing
    started: float | None = None       # time of the first breaching point of this alert
    cooldown_until: float | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> AlertState:
        return cls(**(d or {}))


def step(state: AlertState, breaching: bool, t: float, config: StateConfig) -> tuple[AlertState, list[Event]]:
    """Advance one point. Returns the new state and the events it caused
    (a point can give "pending" and "firing" together when pending_for is 1)."""
    s = AlertState(**state.to_dict())
    events: list[Event] = []
    if s.state == INACTIVE:
        if breaching and (s.cooldown_until is None or t >= s.cooldown_until):
            s.state, s.breaches, s.started, s.quiet = PENDING, 1, t, 0
            events.append(Event("pending", t, t))
        else:
            return s, events
    elif s.state == PENDING:
        if breaching:
            s.breaches += 1
        else:
            events.append(Event("cancelled", t, s.started))
            s.state, s.breaches, s.started = INACTIVE, 0, None
            return s, events
    elif s.state == FIRING:
        if breaching:
            s.quiet = 0
            s.breaches += 1
        else:
            s.quiet += 1
            if s.quiet >= config.resolve_after:
                events.append(Event("resolved", t, s.started))
                s.state, s.breaches, s.quiet, s.started = INACTIVE, 0, 0, None
                s.cooldown_until = t + config.cooldown
        return s, events
    if s.state == PENDING and s.breaches >= max(1, config.pending_for):
        s.state = FIRING
        events.append(Event("firing", t, s.started))
    return s, events


def detect(values: Sequence[float], config: DetectorConfig | None = None, state_config: StateConfig | None = None,
           volumes: Sequence[float] | None = None, times: Sequence[float] | None = None) -> list[Event]:
    """Score a whole series and run the state machine over it; returns every event.
    ``times`` defaults to the point indices (then ``cooldown`` is in points)."""
    config = config or DetectorConfig()
    state_config = state_config or StateConfig()
    state = AlertState()
    events: list[Event] = []
    for i, score in enumerate(score_series(values, config, volumes)):
        t = float(times[i]) if times is not None else float(i)
        state, evs = step(state, score.breaching, t, state_config)
        events.extend(evs)
    return events


def fired_intervals(events: Sequence[Event]) -> list[tuple[float, float | None]]:
    """(fired_at, resolved_at or None) for each alert that reached firing."""
    out: list[tuple[float, float | None]] = []
    for ev in events:
        if ev.kind == "firing":
            out.append((ev.t, None))
        elif ev.kind == "resolved" and out and out[-1][1] is None:
            out[-1] = (out[-1][0], ev.t)
    return out
