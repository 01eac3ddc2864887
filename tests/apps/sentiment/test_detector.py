"""The pure detector: scale-free log-excess over the series' own busiest 1%, one alert per burst."""
import math

import numpy as np

from apps.sentiment.detector import DAY, Detector, DetectorConfig, detect, excess_series, fired_intervals

STEP = 3600.0  # hourly windows


def daily_cycle(days=30, base=20.0, amp=0.6, seed=0):
    """Poisson counts with a strong day/night cycle (busy mornings, quiet nights)."""
    rng = np.random.default_rng(seed)
    hours = np.arange(days * 24)
    lam = base * (1 + amp * np.sin(2 * np.pi * (hours % 24) / 24))
    return rng.poisson(lam).astype(float)


def kinds(events):
    return [e.kind for e in events]


def test_it_fires_once_per_burst():
    values = daily_cycle()
    values[500:506] += 150  # a six-hour burst
    events = detect(values, DetectorConfig(), step_s=STEP)
    assert kinds(events).count("firing") == 1
    (fired_at, resolved_at), = fired_intervals(events)
    assert 500 * STEP <= fired_at <= 501 * STEP
    assert resolved_at is not None and 506 * STEP <= resolved_at <= 508 * STEP


def test_a_ragged_burst_with_quiet_windows_inside_gives_one_alert():
    values = daily_cycle(seed=2)
    values[400:412] += np.array([150, 150, 0, 150, 150, 0, 0, 150, 150, 150, 0, 150])
    assert kinds(detect(values, DetectorConfig(), step_s=STEP)).count("firing") == 1


def test_a_burst_that_grows_past_the_factor_updates_the_same_alert():
    values = daily_cycle(seed=3)
    values[500:510] += [80, 80, 300, 300, 1200, 1200, 80, 80, 0, 0]
    events = detect(values, DetectorConfig(growth=2.0), step_s=STEP)
    assert kinds(events).count("firing") == 1
    updates = [e for e in events if e.kind == "updated"]
    assert len(updates) == 2  # ×4 over the opening level, then ×4 again
    assert all(u.started == events[0].started for u in updates)
    # Growth below the factor is not re-notified.
    values2 = daily_cycle(seed=3)
    values2[500:510] += [80, 80, 100, 110, 120, 120, 80, 80, 0, 0]
    assert "updated" not in kinds(detect(values2, DetectorConfig(growth=2.0), step_s=STEP))


def test_a_daily_cycle_alone_never_alerts():
    for seed in range(5):
        values = daily_cycle(days=40, seed=10 + seed, amp=0.9)
        assert kinds(detect(values, DetectorConfig(threshold=math.log(2)), step_s=STEP)) == []


def test_the_same_burst_scaled_by_100_gives_the_same_decision():
    values = daily_cycle(base=30.0, seed=5)
    values[600:604] += 200
    small = detect(values, DetectorConfig(threshold=math.log(2)), step_s=STEP)
    large = detect(values * 100, DetectorConfig(threshold=math.log(2)), step_s=STEP)
    assert [(e.kind, e.t) for e in small] == [(e.kind, e.t) for e in large]
    assert kinds(small).count("firing") == 1
    # And the explanation's ratio is (nearly) the same: log(x + 1) is scale-free up to the +1.
    assert abs(small[0].point.ratio - large[0].point.ratio) / large[0].point.ratio < 0.05


def test_a_quiet_and_a_chatty_topic_share_one_threshold():
    quiet, chatty = daily_cycle(base=2.0, seed=6), daily_cycle(base=200.0, seed=7)
    quiet[300:303] += 20
    chatty[300:303] += 2000
    cfg = DetectorConfig(threshold=math.log(2), min_volume=3)
    for values in (quiet, chatty):
        fired = fired_intervals(detect(values, cfg, step_s=STEP))
        assert [int(f / STEP) for f, _ in fired] == [300]


def test_the_excess_reads_as_times_the_busiest_one_percent():
    values = [10.0] * (15 * 24) + [54.0]
    p = excess_series(values, DetectorConfig(), step_s=STEP)[-1]
    assert p.level == 10.0
    assert math.isclose(p.ratio, 55 / 11) and math.isclose(p.excess, math.log(55 / 11))


def test_nothing_alerts_during_warm_up():
    values = [0.0] * 10 + [500.0]
    assert detect(values, DetectorConfig(warmup_s=DAY), step_s=STEP) == []


def test_a_low_side_rule_fires_on_a_feed_outage_and_resolves_when_it_returns():
    values = daily_cycle(base=40.0, amp=0.3, seed=8)
    values[500:520] = 0  # the feed stops for 20 hours
    events = detect(values, DetectorConfig(direction="low"), step_s=STEP)
    assert kinds(events) == ["firing", "resolved"]
    assert 500 * STEP <= events[0].t <= 502 * STEP and 520 * STEP <= events[1].t <= 521 * STEP
    # The spike rule is blind to it, the drop rule to a spike.
    assert "firing" not in kinds(detect(values, DetectorConfig(), step_s=STEP))
    spiky = daily_cycle(base=40.0, amp=0.3, seed=8)
    spiky[500:505] += 400
    assert "firing" not in kinds(detect(spiky, DetectorConfig(direction="low"), step_s=STEP))


def test_the_detector_is_incremental():
    values = daily_cycle(seed=9)
    values[450:455] += 300
    whole = detect(values, DetectorConfig(), step_s=STEP)
    det, stepped = Detector(DetectorConfig()), []
    for i, v in enumerate(values):
        stepped += det.step(i * STEP, float(v))[1]
    assert [(e.kind, e.t) for e in whole] == [(e.kind, e.t) for e in stepped]


def test_a_burst_that_dips_and_comes_back_a_little_higher_is_one_alert():
    # Two hours of burst, four quiet hours (the alert resolves), two hours a little higher:
    # within the re-arm span the return is the same story unless it grows past the factor.
    values = daily_cycle(seed=11)
    values[500:502] += 150
    values[506:508] += 200
    events = detect(values, DetectorConfig(growth=2.0), step_s=STEP)
    assert kinds(events) == ["firing", "resolved"]
    assert events[0].t == 500 * STEP


def test_a_return_that_grows_past_the_factor_is_a_new_alert():
    values = daily_cycle(seed=11)
    values[500:502] += 150
    values[506:508] += 1500  # ten times the first burst
    events = detect(values, DetectorConfig(growth=2.0), step_s=STEP)
    assert kinds(events) == ["firing", "resolved", "firing", "resolved"]
    assert events[2].t == 506 * STEP


def test_the_memory_of_the_last_alert_ends_with_the_rearm_span():
    values = daily_cycle(seed=12)
    values[500:502] += 150
    values[530:532] += 180  # 30 hours later: past the 24-hour re-arm span
    cfg = DetectorConfig(rearm_s=DAY)
    fired = [int(f / STEP) for f, _ in fired_intervals(detect(values, cfg, step_s=STEP))]
    assert fired == [500, 530]
    # With a two-day re-arm span the second burst is the same story (and no higher than ×2).
    assert [int(f / STEP) for f, _ in fired_intervals(detect(values, DetectorConfig(rearm_s=2 * DAY),
                                                              step_s=STEP))] == [500]
