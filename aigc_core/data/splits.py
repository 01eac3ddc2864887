"""Train / validation / test splits: stratified by a label, or by time (no peeking ahead)."""
from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from typing import NamedTuple

from aigc_core.data.records import DataError, TextRecord


class Split(NamedTuple):
    train: list[TextRecord]
    val: list[TextRecord]
    test: list[TextRecord]


def _check_ratios(val_ratio: float, test_ratio: float) -> None:
    if val_ratio < 0 or test_ratio < 0 or val_ratio + test_ratio >= 1:
        raise ValueError("val_ratio and test_ratio must be >= 0 and sum to less than 1")


def stratified_split(
    records: Sequence[TextRecord],
    label: str | None = None,
    val_ratio: float = 0.2,
    test_ratio: float = 0.0,
    seed: int = 1234,
) -> Split:
    """Each class of ``label`` (default: the first label head) keeps its share in every part.

    A class with few rows gives validation one row before test gets any, and always
    keeps at least one row in train. Unlabelled rows form their own stratum.
    """
    _check_ratios(val_ratio, test_ratio)
    if label is None:
        label = next((k for r in records for k in r.labels), None)
    strata: dict[str | None, list[TextRecord]] = defaultdict(list)
    for rec in records:
        strata[rec.labels.get(label) if label else None].append(rec)
    rng = random.Random(seed)
    train: list[TextRecord] = []
    val: list[TextRecord] = []
    test: list[TextRecord] = []
    for key in sorted(strata, key=lambda k: (k is None, str(k))):
        rows = list(strata[key])
        rng.shuffle(rows)
        n = len(rows)
        n_val = round(n * val_ratio)
        n_test = round(n * test_ratio)
        if val_ratio > 0 and n_val == 0 and n >= 2:
            n_val = 1
        while n_val + n_test >= n and (n_val or n_test):
            if n_test:
                n_test -= 1
            else:
                n_val -= 1
        val += rows[:n_val]
        test += rows[n_val : n_val + n_test]
        train += rows[n_val + n_test :]
    for part in (train, val, test):
        rng.shuffle(part)
    return Split(train, val, test)


def time_split(records: Sequence[TextRecord], val_ratio: float = 0.2, test_ratio: float = 0.0) -> Split:
    """Oldest rows train, newer validate, newest test: the model never sees its future."""
    _check_ratios(val_ratio, test_ratio)
    undated = [r.id for r in records if r.timestamp is None]
    if undated:
        raise DataError(f"time_split needs a timestamp on every record; {len(undated)} lack one "
                        f"(first id {undated[0]!r})")
    rows = sorted(records, key=lambda r: r.timestamp)  # type: ignore[arg-type, return-value]
    n = len(rows)
    n_test = round(n * test_ratio)
    n_val = round(n * val_ratio)
    n_train = max(1, n - n_val - n_test) if n else 0
    return Split(rows[:n_train], rows[n_train : n_train + n_val], rows[n_train + n_val :])
