"""Small metrics used by the benchmarks, on hand-made cases."""
from __future__ import annotations

import numpy as np
import pytest

from apps.recommend.training import item_knn_scores
from bench.retrieval import recall_at_k
from bench.spikes import windowed_gaussian_scores


def test_it_counts_recall_at_10_as_the_overlap_with_exact_search():
    truth = np.arange(20).reshape(2, 10)
    got = truth.copy()
    got[0, :3] = [100, 101, 102]  # three misses in the first query
    assert recall_at_k(got, truth) == pytest.approx((7 + 10) / 20)


def test_it_scores_a_spike_by_its_distance_from_the_previous_window():
    x = [10.0, 12.0] * 50 + [30.0]
    z = windowed_gaussian_scores(x, window=1000)
    assert z[0] == 0.0
    assert z[-1] == pytest.approx((30 - 11) / 1.0)  # mean 11, std 1 over the 100 points before


def test_it_ranks_items_liked_by_the_same_users_first_in_item_knn():
    # users 0 and 1 like items 0 and 1; user 2 likes items 2 and 3
    pos = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1]], np.float32)
    scores = item_knn_scores(pos, [[0], [2]], k=2)
    assert scores[0].argmax() == 1
    assert scores[1].argmax() == 3


def test_the_spike_sweep_replays_the_detectors_own_alert_rules():
    # The threshold sweep re-implements Detector.step over arrays; on a series with bursts that
    # dip and return (the re-arm memory), grow (updates) and recur, both must notify at the same windows.
    from dataclasses import replace

    from apps.sentiment import detector as det
    from bench import spikes

    rng = np.random.default_rng(4)
    n = 288 * 6
    lam = 30 * (1 + 0.6 * np.sin(2 * np.pi * np.arange(n) / 288))
    x = rng.poisson(lam).astype(float)
    for start, size in [(400, 120), (412, 150), (430, 900), (700, 200), (703, 50), (1000, 160), (1330, 170)]:
        x[start:start + 3] += size
    cfg = det.DetectorConfig()
    e, m, vol = spikes.excess_arrays(det, list(x), cfg)
    seen = set()
    for th in (0.2, 0.5, cfg.threshold, 1.0, 1.5):
        c = replace(cfg, threshold=th)
        mine = np.flatnonzero(spikes.notifications(e, m, vol, th, c.growth, c.min_volume, spikes.rearm_windows(c)))
        theirs = [int(round(ev.t / spikes.STEP_S)) for ev in det.detect(list(x), c, step_s=spikes.STEP_S)
                  if ev.kind in ("firing", "updated")]
        assert list(mine) == theirs
        seen.add(len(theirs))
    assert len(seen) > 1  # the thresholds do change what fires
