"""The NAB standard-profile scorer in bench/nab.py on hand-computed cases.

100 points: the first 15 are probationary; one window covers indices 40..49.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from bench import nab

STD = nab.PROFILES["standard"]
WINDOWS = [[(40, 49)]]


def scores_with(*detections: int, n: int = 100) -> list[np.ndarray]:
    a = np.zeros(n)
    a[list(detections)] = 1.0
    return [a]


def test_it_gives_full_credit_for_a_detection_at_the_window_start():
    got = nab.score_corpus(scores_with(40), WINDOWS, STD, threshold=1.0)
    assert got.raw == pytest.approx(1.0)
    assert got.normalised == pytest.approx(100.0)


def test_it_scores_zero_for_a_detector_that_never_fires():
    got = nab.score_corpus(scores_with(), WINDOWS, STD, threshold=1.0)
    assert got.raw == pytest.approx(-1.0)
    assert got.normalised == pytest.approx(0.0)


def test_it_weights_a_late_detection_by_the_scaled_sigmoid():
    # position -(49 - 45 + 1)/10 = -0.5: (2/(1+e^-2.5) - 1) / (2/(1+e^-5) - 1)
    expected = (2 / (1 + math.exp(-2.5)) - 1) / (2 / (1 + math.exp(-5)) - 1)
    assert expected == pytest.approx(0.859793, abs=1e-6)
    got = nab.score_corpus(scores_with(45), WINDOWS, STD, threshold=1.0)
    assert got.raw == pytest.approx(expected)


def test_it_credits_only_the_earliest_detection_in_a_window():
    got = nab.score_corpus(scores_with(42, 45, 48), WINDOWS, STD, threshold=1.0)
    first = nab.scaled_sigmoid(-(49 - 42 + 1) / 10) / nab.MAX_TP
    assert got.raw == pytest.approx(first)


def test_it_charges_false_positives_before_and_after_the_window():
    # before any window: the full A_fp; index 59: position |49 - 59| / (10 - 1) past the window
    after = (2 / (1 + math.exp(5 * 10 / 9)) - 1) * 0.11
    assert after == pytest.approx(-0.109153, abs=1e-6)
    got = nab.score_corpus(scores_with(20, 40, 59), WINDOWS, STD, threshold=1.0)
    assert got.raw == pytest.approx(1.0 - 0.11 + after)
    assert got.normalised == pytest.approx(100 * (got.raw + 1) / 2)


def test_it_ignores_the_probationary_period():
    got = nab.score_corpus(scores_with(3, 40), WINDOWS, STD, threshold=1.0)
    assert got.raw == pytest.approx(1.0)


def test_it_picks_the_threshold_that_maximises_the_corpus_score():
    a = np.zeros(100)
    a[40] = 0.9  # the window start
    a[20] = 0.8  # a false positive with a lower score
    got = nab.score_corpus([a], WINDOWS, STD)
    assert got.threshold == pytest.approx(0.9)
    assert got.raw == pytest.approx(1.0)
    ths, totals = nab.sweep([(a, nab.point_weights(100, WINDOWS[0], STD))], STD)
    assert totals[0] == pytest.approx(-1.0)  # threshold above every score: nothing fires
    for th, total in zip(ths[1:], totals[1:], strict=True):
        assert nab.raw_score_at([(a, nab.point_weights(100, WINDOWS[0], STD))], STD, th) == pytest.approx(total)


def test_it_counts_alert_runs_for_window_precision_and_recall():
    a = np.zeros(100)
    a[[20, 21, 22, 44, 45, 70]] = 1.0  # three alerts, one inside the window
    got = nab.window_precision_recall([a], WINDOWS, threshold=1.0)
    assert (got["alerts"], got["alerts_in_window"], got["windows_hit"]) == (3, 1, 1)
    assert got["precision"] == pytest.approx(1 / 3)
    assert got["recall"] == pytest.approx(1.0)
