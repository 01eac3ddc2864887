"""NAB scoring (Lavin & Ahmad 2015, numenta/NAB), written from the published
description and checked against a hand-computed case in tests/bench/.

Per data file:
- the first 15% of points (at most 750) are probationary and not scored;
- each labelled window [a, b] (indices) rewards its *earliest* detection with
  A_tp·σ̃(-(b - i + 1)/(b - a + 1)) / σ̃(-1), where σ̃(x) = 2/(1 + e^{5x}) - 1,
  so a detection at the window's left edge earns exactly A_tp; a window with no
  detection costs A_fn;
- a detection outside every window costs A_fp·σ̃(|i - b_prev| / (w_prev - 1))
  relative to the previous window's right edge b_prev and width w_prev (σ̃ is
  negative there), and a full A_fp (σ̃ = -1) before the first window or three
  window-widths past one.
Profiles (A_tp, A_fp, A_fn): standard (1, 0.11, 1), reward_low_FP_rate
(1, 0.22, 1), reward_low_FN_rate (1, 0.11, 2).
One detection threshold is chosen for the whole corpus (all files) per profile,
and the corpus score is normalised as 100·(S - S_null)/(S_perfect - S_null),
with S_null = -A_fn per window (never firing) and S_perfect = +A_tp per window.
A point is a detection when its anomaly score is >= the threshold.
"""
from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass

import numpy as np

PROBATION_PERCENT = 0.15


@dataclass(frozen=True)
class Profile:
    name: str
    tp: float
    fp: float
    fn: float


PROFILES = {
    "standard": Profile("standard", 1.0, 0.11, 1.0),
    "reward_low_FP_rate": Profile("reward_low_FP_rate", 1.0, 0.22, 1.0),
    "reward_low_FN_rate": Profile("reward_low_FN_rate", 1.0, 0.11, 2.0),
}

OUTSIDE = -1
PROBATIONARY = -2


def scaled_sigmoid(x: float) -> float:
    if x >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


MAX_TP = scaled_sigmoid(-1.0)


def probation_length(n: int) -> int:
    return int(min(math.floor(PROBATION_PERCENT * n), PROBATION_PERCENT * 5000))


def window_indices(timestamps: list, windows: list[tuple]) -> list[tuple[int, int]]:
    """Map (start, end) timestamps to inclusive index ranges over sorted timestamps."""
    out = []
    for start, end in windows:
        a = bisect_left(timestamps, start)
        b = bisect_right(timestamps, end) - 1
        if a <= b:
            out.append((a, b))
    return sorted(out)


@dataclass
class ScoredFile:
    """Per point: the profile weight a detection there would earn, and its window id."""
    weights: np.ndarray  # (n,) float
    window_id: np.ndarray  # (n,) int: window index, OUTSIDE, or PROBATIONARY
    n_windows: int  # windows with at least one scorable point


def point_weights(n: int, windows: list[tuple[int, int]], profile: Profile) -> ScoredFile:
    weights = np.zeros(n, dtype=np.float64)
    wid = np.full(n, OUTSIDE, dtype=np.int64)
    prob = probation_length(n)
    prev_right = prev_width = None
    w_iter = iter(enumerate(windows))
    cur = next(w_iter, None)
    for i in range(n):
        in_window = cur is not None and cur[1][0] <= i <= cur[1][1]
        if in_window:
            k, (a, b) = cur
            width = b - a + 1
            weights[i] = scaled_sigmoid(-(b - i + 1) / width) * profile.tp / MAX_TP
            wid[i] = k
            if i == b:
                prev_right, prev_width = b, width
                cur = next(w_iter, None)
        else:
            if prev_right is None:
                pos = 3.0
            else:
                pos = abs(prev_right - i) / float(prev_width - 1) if prev_width > 1 else 3.0
            weights[i] = scaled_sigmoid(pos) * profile.fp
        if i < prob:
            wid[i] = PROBATIONARY
    scorable_windows = {int(k) for k in wid[wid >= 0]}
    return ScoredFile(weights, wid, len(scorable_windows))


def sweep(files: list[tuple[np.ndarray, ScoredFile]], profile: Profile) -> tuple[np.ndarray, np.ndarray]:
    """Corpus score at every distinct threshold: (thresholds desc, raw scores).
    ``files``: (anomaly scores, point weights) per data file."""
    scores, weights, wins = [], [], []
    offset = 0
    n_windows = 0
    for anomaly, sf in files:
        keep = sf.window_id != PROBATIONARY
        scores.append(np.asarray(anomaly, dtype=np.float64)[keep])
        weights.append(sf.weights[keep])
        w = sf.window_id[keep].copy()
        inside = w >= 0
        w[inside] += offset
        offset += (int(sf.window_id.max()) + 1) if (sf.window_id >= 0).any() else 0
        wins.append(w)
        n_windows += sf.n_windows
    s = np.concatenate(scores)
    wt = np.concatenate(weights)
    wi = np.concatenate(wins)
    order = np.argsort(-s, kind="stable")
    s, wt, wi = s[order], wt[order], wi[order]
    window_part: dict[int, float] = {}
    total = -profile.fn * n_windows  # nothing detected yet
    fp_sum = 0.0
    thresholds, totals = [np.inf], [total]
    i = 0
    n = len(s)
    while i < n:
        j = i
        while j < n and s[j] == s[i]:
            if wi[j] >= 0:
                old = window_part.get(int(wi[j]), -profile.fn)
                if wt[j] > old:
                    window_part[int(wi[j])] = wt[j]
                    total += wt[j] - old
            else:
                fp_sum += wt[j]
                total += wt[j]
            j += 1
        thresholds.append(s[i])
        totals.append(total)
        i = j
    return np.asarray(thresholds), np.asarray(totals)


def normalise(raw: float, n_windows: int, profile: Profile) -> float:
    null = -profile.fn * n_windows
    perfect = profile.tp * n_windows
    return 100.0 * (raw - null) / (perfect - null)


def raw_score_at(files: list[tuple[np.ndarray, ScoredFile]], profile: Profile, threshold: float) -> float:
    total = 0.0
    for anomaly, sf in files:
        a = np.asarray(anomaly, dtype=np.float64)
        scorable = sf.window_id != PROBATIONARY
        det = (a >= threshold) & scorable
        inside = sf.window_id >= 0
        total += float(sf.weights[det & ~inside].sum())
        for k in np.unique(sf.window_id[inside & scorable]):
            hit = det & (sf.window_id == k)
            total += float(sf.weights[hit].max()) if hit.any() else -profile.fn
    return total


@dataclass
class CorpusScore:
    profile: str
    threshold: float
    raw: float
    normalised: float
    n_windows: int


def score_corpus(series_scores: list[np.ndarray], series_windows: list[list[tuple[int, int]]],
                 profile: Profile, threshold: float | None = None) -> CorpusScore:
    """Score anomaly-score series against their windows (index ranges); with
    ``threshold=None`` pick the corpus-wide threshold that maximises the score."""
    files = [(np.asarray(a, dtype=np.float64), point_weights(len(a), w, profile))
             for a, w in zip(series_scores, series_windows, strict=True)]
    n_windows = sum(sf.n_windows for _, sf in files)
    if threshold is None:
        ths, totals = sweep(files, profile)
        best = int(np.argmax(totals))
        threshold, raw = float(ths[best]), float(totals[best])
    else:
        raw = raw_score_at(files, profile, threshold)
    return CorpusScore(profile.name, threshold, raw, normalise(raw, n_windows, profile), n_windows)


def window_precision_recall(series_scores: list[np.ndarray], series_windows: list[list[tuple[int, int]]],
                            threshold: float) -> dict:
    """Plain event counts after the probationary period: an alert is a maximal run
    of consecutive detections; it is correct when it overlaps a labelled window.
    Recall: labelled windows with at least one detection."""
    alerts = correct = windows = hit = 0
    for anomaly, wins in zip(series_scores, series_windows, strict=True):
        a = np.asarray(anomaly, dtype=np.float64)
        prob = probation_length(len(a))
        det = a >= threshold
        det[:prob] = False
        in_win = np.zeros(len(a), dtype=bool)
        for lo, hi in wins:
            if hi >= prob:
                windows += 1
                hit += bool(det[max(lo, prob):hi + 1].any())
            in_win[lo:hi + 1] = True
        i = 0
        while i < len(a):
            if det[i]:
                j = i
                while j < len(a) and det[j]:
                    j += 1
                alerts += 1
                correct += bool(in_win[i:j].any())
                i = j
            else:
                i += 1
    return {"alerts": alerts, "alerts_in_window": correct, "windows": windows, "windows_hit": hit,
            "precision": correct / alerts if alerts else float("nan"),
            "recall": hit / windows if windows else float("nan")}
