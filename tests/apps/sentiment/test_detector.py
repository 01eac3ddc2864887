"""The pure detector: robust z-scores and the pending → firing → resolved machine."""
import numpy as np

from apps.sentiment.detector import (
    AlertState,
    DetectorConfig,
    StateConfig,
    detect,
    fired_intervals,
    score_point,
    score_series,
    step,
)


def noise(n=300, lam=6.0, seed=0):
    return np.random.default_rng(seed).poisson(lam, n).astype(float)


def test_it_fires_on_an_injected_burst():
    values = noise()
    values[200:206] += 25
    events = detect(values, DetectorConfig(z_threshold=4, min_volume=5))
    fired = fired_intervals(events)
    assert len(fired) == 1
    fired_at, resolved_at = fired[0]
    assert 200 <= fired_at <= 201


def test_it_stays_quiet_on_stationary_noise_of_the_same_volume():
    for seed in range(5):
        values = noise(seed=seed + 10)
        values += 25 * 6 / len(values)  # the burst's volume spread evenly
        assert fired_intervals(detect(values, DetectorConfig(z_threshold=4))) == []


def test_it_resolves_when_the_burst_ends():
    values = noise(seed=3)
    values[150:155] += 30
    (fired_at, resolved_at), = fired_intervals(detect(values, DetectorConfig()))
    assert resolved_at is not None
    assert 155 <= resolved_at <= 157


def test_it_never_fires_twice_for_one_burst():
    values = noise(seed=4)
    # A ragged burst: one dip below the threshold in the middle.
    values[100:112] += np.array([30, 30, 30, 0, 30, 30, 30, 30, 0, 30, 30, 30])
    events = detect(values, DetectorConfig(), StateConfig(resolve_after=2, cooldown=10))
    assert [e.kind for e in events].count("firing") == 1


def test_it_honours_cooldown_after_resolving():
    state = AlertState()
    cfg = StateConfig(cooldown=10)
    state, ev = step(state, True, 0, cfg)
    assert [e.kind for e in ev] == ["pending", "firing"]
    state, ev = step(state, False, 1, cfg)
    assert [e.kind for e in ev] == ["resolved"]
    state, ev = step(state, True, 5, cfg)
    assert ev == [] and state.state == "inactive"
    state, ev = step(state, True, 11, cfg)
    assert [e.kind for e in ev] == ["pending", "firing"]


def test_it_waits_pending_for_before_firing_and_cancels_when_cleared():
    cfg = StateConfig(pending_for=3)
    state, ev = step(AlertState(), True, 0, cfg)
    assert state.state == "pending" and [e.kind for e in ev] == ["pending"]
    state, ev = step(state, True, 1, cfg)
    assert state.state == "pending" and ev == []
    state, ev = step(state, False, 2, cfg)
    assert state.state == "inactive" and [e.kind for e in ev] == ["cancelled"]
    for t in range(3, 6):
        state, ev = step(state, True, t, cfg)
    assert state.state == "firing" and [e.kind for e in ev] == ["firing"] and ev[0].started == 3


def test_it_needs_warmup_and_minimum_volume():
    cfg = DetectorConfig(warmup=5, min_volume=10)
    assert score_point(100, [1, 1, 1], cfg).reason == "warm-up"
    low = score_point(8, [0, 0, 0, 0, 0, 0], cfg)
    assert not low.breaching and low.reason == "low volume"
    share = score_point(0.9, [0.1] * 10, DetectorConfig(warmup=5, min_volume=10, min_scale=0.1,
                                                        count_series=False), volume=20)
    assert share.breaching and round(share.z, 6) == 8.0


def test_it_uses_a_robust_baseline_that_outliers_do_not_drag():
    history = [5, 6, 5, 4, 6, 5, 500, 5, 6, 4, 5, 5]
    s = score_point(30, history, DetectorConfig(warmup=5))
    assert s.baseline == 5 and s.breaching


def test_it_round_trips_state_through_json_dicts():
    state, _ = step(AlertState(), True, 7, StateConfig(pending_for=2))
    assert AlertState.from_dict(state.to_dict()) == state
    assert len(score_series([1, 2, 3], DetectorConfig())) == 3
