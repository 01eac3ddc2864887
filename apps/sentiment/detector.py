"""Spike detection as pure functions over a count series (no Django, no ORM).

The score is scale-free and follows each series' own history::

    e_t = log(x_t + c) - q(log(x + c) over the `history_s` before t)

with q the `quantile` (0.99) taken by nearest rank, so ``exp(e)`` reads "this
window is N× the series' busiest 1% of the last two weeks" whatever the
series' volume: a chatty and a quiet topic are judged on the same scale, and
multiplying a series by 100 moves both terms by the same log(100) (exactly
so for c = 0, and nearly so for counts, c = 1).

Alerts, once per burst (``Detector.step``):

- an alert opens when ``e > threshold`` and ``e`` is higher than every point
  of the previous ``rearm_s`` (24 h): a burst that is already being reported,
  or a daily peak that recurs at the same height, cannot open a second one;
- while open, it is *updated* (the same alert, a new notification) only when
  the burst grows past the last notified level by ``growth`` (×2);
- it resolves when ``e < 0`` (the window is back inside the busiest 1%);
- the re-arm span is also the memory of the last notification: within
  ``rearm_s`` of it, a *new* alert must grow past that notification's level by
  ``growth`` too, exactly as an update would have to. A burst that dips back
  under its baseline for an hour and comes back a little higher is the same
  story, so it does not page anyone a second time; a burst twice as big does.

``direction="low"`` mirrors the rule for a drop in volume (a feed outage):
``e = q_low(history) - log(x + c)`` with the quantile taken from the bottom,
and the same open / update / resolve logic.

The alert service replays ``Detector`` over the stored buckets and the
benchmark runs it over NAB's series: both call ``detect()``/``Detector`` with
the same config, so the benchmark scores what ships.
"""
from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass

DAY = 86400.0


@dataclass
class DetectorConfig:
    # The defaults are the shipped rule's (AlertRule's field defaults map onto these; a test checks it).
    history_s: float = 10 * DAY  # the baseline: this much time before each window
    warmup_s: float = 1 * DAY    # history needed before a window can alert
    quantile: float = 0.99       # "busiest 1%": the baseline level (nearest rank)
    rearm_s: float = 1 * DAY     # a new alert must top every point of this span, and grow past a notice in it
    growth: float = 2.0          # an open alert is re-notified when the excess grows by this factor
    threshold: float = math.log(2.0)  # log-excess above which an alert opens: 2× the busiest 1%
    min_volume: float = 3.0      # a window needs at least this many items to open an alert
    offset: float = 1.0          # c in log(x + c): 1 for counts, smaller for shares
    direction: str = "high"      # "high": spikes; "low": drops (volume falls below the quietest 1%)


@dataclass
class Point:
    """One window's score: its value, the baseline level, and the log-excess over it."""
    t: float
    value: float
    level: float     # the history quantile in value units (exp(q) - c)
    excess: float    # e: log-excess over the level (-inf during warm-up)
    ratio: float     # (value + c) / (level + c) = exp(e) for "high"; its inverse for "low"
    warm: bool


@dataclass
class Event:
    kind: str        # "firing" | "updated" | "resolved"
    t: float         # the window's time
    started: float   # when the alert opened
    point: Point


def explain(point: Point, config: DetectorConfig) -> str:
    days = config.history_s / DAY
    span = {7: "week", 14: "two weeks"}.get(days, f"{days:g} days")
    pct = f"{100 * (1 - config.quantile):g}%"
    if config.direction == "low":
        return (f"volume {point.value:g} is {point.ratio:.1f}× below this series' quietest {pct} "
                f"of the last {span} ({point.level:g})")
    return f"{point.ratio:.1f}× this series' busiest {pct} of the last {span} ({point.value:g} vs {point.level:g})"


class RollingQuantile:
    """The nearest-rank quantile of the values in a sliding time window, kept sorted."""

    def __init__(self, span_s: float):
        self.span_s = span_s
        self.items: deque[tuple[float, float]] = deque()
        self.sorted: list[float] = []

    def add(self, t: float, v: float) -> None:
        self.items.append((t, v))
        insort(self.sorted, v)
        while self.items and self.items[0][0] <= t - self.span_s:
            _, old = self.items.popleft()
            del self.sorted[bisect_left(self.sorted, old)]

    def quantile(self, q: float) -> float:
        n = len(self.sorted)
        k = min(n - 1, max(0, math.ceil(q * n) - 1))
        return self.sorted[k]

    def oldest(self) -> float | None:
        return self.items[0][0] if self.items else None


class RollingMax:
    """Max of the values in the previous ``span_s`` (monotone deque)."""

    def __init__(self, span_s: float):
        self.span_s = span_s
        self.dq: deque[tuple[float, float]] = deque()

    def max_before(self, t: float) -> float:
        while self.dq and self.dq[0][0] <= t - self.span_s:
            self.dq.popleft()
        return self.dq[0][1] if self.dq else -math.inf

    def add(self, t: float, v: float) -> None:
        while self.dq and self.dq[-1][1] <= v:
            self.dq.pop()
        self.dq.append((t, v))


@dataclass
class AlertState:
    open: bool = False
    started: float | None = None
    notified_excess: float = 0.0   # excess at the last notification (firing or update)
    peak_excess: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


class Detector:
    """Feed windows oldest first with ``step(t, value, volume)``; it returns the
    window's score and the events it caused. Windows must be evenly spaced with
    empty windows fed as zeros (a quiet hour is information)."""

    def __init__(self, config: DetectorConfig | None = None):
        self.config = config or DetectorConfig()
        self.history = RollingQuantile(self.config.history_s)
        self.recent = RollingMax(self.config.rearm_s)
        self.state = AlertState()
        self.first_t: float | None = None
        # (time, excess) of the last notification (firing or update), kept across alerts.
        self.last_notice: tuple[float, float] | None = None

    def score(self, t: float, value: float) -> Point:
        cfg = self.config
        if self.first_t is None:
            self.first_t = t
        lv = math.log(max(value, 0.0) + cfg.offset)
        warm = bool(self.history.sorted) and t - self.first_t >= cfg.warmup_s
        if not self.history.sorted:
            return Point(t, value, 0.0, -math.inf, 1.0, False)
        q = cfg.quantile if cfg.direction == "high" else 1.0 - cfg.quantile
        lq = self.history.quantile(q)
        e = lv - lq if cfg.direction == "high" else lq - lv
        level = math.exp(lq) - cfg.offset
        return Point(t, value, round(level, 6), e if warm else -math.inf, math.exp(e), warm)

    def recently_notified(self, t: float, e: float) -> bool:
        """True when a notification went out within the re-arm span before ``t`` and
        ``e`` has not grown past its level by the growth factor (the update rule, applied
        across a resolution: the same burst, not a new one)."""
        if self.last_notice is None:
            return False
        t0, e0 = self.last_notice
        return t - t0 < self.config.rearm_s and e <= e0 + math.log(self.config.growth)

    def step(self, t: float, value: float, volume: float | None = None) -> tuple[Point, list[Event]]:
        cfg, s = self.config, self.state
        p = self.score(t, value)
        e = p.excess
        events: list[Event] = []
        if s.open:
            if e < 0:
                events.append(Event("resolved", t, s.started, p))
                self.state = AlertState()
            elif e > s.notified_excess + math.log(cfg.growth):
                s.notified_excess = e
                s.peak_excess = max(s.peak_excess, e)
                self.last_notice = (t, e)
                events.append(Event("updated", t, s.started, p))
            else:
                s.peak_excess = max(s.peak_excess, e)
        else:
            vol = value if volume is None else volume
            ok_volume = cfg.direction == "low" or vol >= cfg.min_volume
            if p.warm and e > cfg.threshold and e > self.recent.max_before(t) and ok_volume \
                    and not self.recently_notified(t, e):
                self.state = AlertState(True, t, e, e)
                self.last_notice = (t, e)
                events.append(Event("firing", t, t, p))
        self.recent.max_before(t)
        if p.warm:
            self.recent.add(t, e)
        self.history.add(t, math.log(max(value, 0.0) + cfg.offset))
        return p, events


def detect(values: Sequence[float], config: DetectorConfig | None = None, step_s: float = 300.0,
           times: Sequence[float] | None = None, volumes: Sequence[float] | None = None) -> list[Event]:
    """Run the detector over a whole evenly spaced series; returns every event.
    ``times`` default to ``i * step_s``."""
    det = Detector(config)
    out: list[Event] = []
    for i, v in enumerate(values):
        t = float(times[i]) if times is not None else i * step_s
        _, evs = det.step(t, float(v), None if volumes is None else float(volumes[i]))
        out.extend(evs)
    return out


def excess_series(values: Sequence[float], config: DetectorConfig | None = None, step_s: float = 300.0) -> list[Point]:
    """Every window's score (the continuous score the benchmark thresholds)."""
    det = Detector(config)
    return [det.step(i * step_s, float(v))[0] for i, v in enumerate(values)]


def fired_intervals(events: Sequence[Event]) -> list[tuple[float, float | None]]:
    """(fired_at, resolved_at or None) for each alert."""
    out: list[tuple[float, float | None]] = []
    for ev in events:
        if ev.kind == "firing":
            out.append((ev.t, None))
        elif ev.kind == "resolved" and out and out[-1][1] is None:
            out[-1] = (out[-1][0], ev.t)
    return out
