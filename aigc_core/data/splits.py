"""The one place data is split: stratified by a label, by a stable key, by time, or
into k folds. Engine, apps and bench all split through here.

Two layers:
- index helpers over a list of labels (``stratified_indices``, ``stratified_folds``,
  ``keyed_indices``) return sorted row indices, named for what each part is for;
- record helpers (``stratified_split``, ``time_split``) wrap them for ``TextRecord`` lists.

Part names: *train* fits weights; *validation* chooses (early stopping, epochs,
ensemble weights, C); *calibration* is held out from both and sets confidence
thresholds and every figure a dashboard calls "held-out"; *test* is a benchmark's
own file, never touched by a choice.
"""
from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from collections.abc import Hashable, Sequence
from typing import NamedTuple

from aigc_core.data.records import DataError, TextRecord


class Split(NamedTuple):
    train: list[TextRecord]
    val: list[TextRecord]
    test: list[TextRecord]


class IndexSplit(NamedTuple):
    """Row indices (sorted) of each part."""
    train: list[int]
    validation: list[int]
    calibration: list[int]


def _check_ratios(val_ratio: float, test_ratio: float) -> None:
    if val_ratio < 0 or test_ratio < 0 or val_ratio + test_ratio >= 1:
        raise ValueError("val_ratio and test_ratio must be >= 0 and sum to less than 1")


def stratified_indices(labels: Sequence[Hashable | None], validation: float = 0.1, calibration: float = 0.0,
                       seed: int = 1234, min_per_class: int = 2, keys: Sequence[str] | None = None) -> IndexSplit:
    """Each label keeps its share in every part. ``None`` labels form their own stratum.

    A class with ``min_per_class`` rows or fewer stays whole in train (it cannot spare
    one); otherwise validation gets at least one row before calibration gets any, and
    train always keeps at least one. ``keys`` (one stable string per row, e.g. the text):
    each class is ordered by a seeded hash of its keys instead of shuffled, so a row keeps
    its part when other classes grow or appear."""
    _check_ratios(validation, calibration)
    strata: dict[Hashable | None, list[int]] = defaultdict(list)
    for i, lab in enumerate(labels):
        strata[lab].append(i)
    rng = random.Random(seed)
    train: list[int] = []
    val: list[int] = []
    cal: list[int] = []
    for key in sorted(strata, key=lambda k: (k is None, str(k))):
        rows = list(strata[key])
        if keys is not None:
            rows.sort(key=lambda i: hashlib.sha1(f"{seed}:{keys[i]}".encode()).hexdigest())
        else:
            rng.shuffle(rows)
        n = len(rows)
        if n <= min_per_class:
            train += rows
            continue
        n_val = round(n * validation)
        n_cal = round(n * calibration)
        if validation > 0 and n_val == 0:
            n_val = 1
        if calibration > 0 and n_cal == 0 and n - n_val > min_per_class:
            n_cal = 1
        while n_val + n_cal >= n and (n_val or n_cal):
            if n_cal:
                n_cal -= 1
            else:
                n_val -= 1
        val += rows[:n_val]
        cal += rows[n_val : n_val + n_cal]
        train += rows[n_val + n_cal :]
    return IndexSplit(sorted(train), sorted(val), sorted(cal))


def stratified_folds(labels: Sequence[Hashable], k: int, seed: int = 1234) -> list[tuple[list[int], list[int]]]:
    """k (train, test) index pairs; every row is tested exactly once; each class is dealt
    round-robin over the folds after a seeded shuffle."""
    if k < 2:
        raise ValueError("k must be at least 2")
    strata: dict[Hashable, list[int]] = defaultdict(list)
    for i, lab in enumerate(labels):
        strata[lab].append(i)
    rng = random.Random(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    offset = 0
    for key in sorted(strata, key=str):
        rows = list(strata[key])
        rng.shuffle(rows)
        for j, i in enumerate(rows):
            folds[(j + offset) % k].append(i)
        offset += len(rows)  # rotate so small classes do not all land in fold 0
    everything = set(range(len(labels)))
    return [(sorted(everything - set(f)), sorted(f)) for f in folds]


def keyed_indices(keys: Sequence[str], validation: float = 0.1, calibration: float = 0.1) -> IndexSplit:
    """A split by a hash of each row's stable key (e.g. a URL): a row never changes side
    as the data grows, so a retrain never validates on what an earlier version trained on."""
    _check_ratios(validation, calibration)
    train, val, cal = [], [], []
    for i, key in enumerate(keys):
        u = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        (val if u < validation else cal if u < validation + calibration else train).append(i)
    return IndexSplit(train, val, cal)


def stratified_split(
    records: Sequence[TextRecord],
    label: str | None = None,
    val_ratio: float = 0.2,
    test_ratio: float = 0.0,
    seed: int = 1234,
) -> Split:
    """Records split so each class of ``label`` (default: the first label head) keeps its
    share in every part. A class with few rows gives validation one row before test gets
    any, and always keeps at least one row in train. Unlabelled rows form their own stratum."""
    _check_ratios(val_ratio, test_ratio)
    if label is None:
        label = next((k for r in records for k in r.labels), None)
    keys = [rec.labels.get(label) if label else None for rec in records]
    parts = stratified_indices(keys, val_ratio, test_ratio, seed, min_per_class=1)
    rng = random.Random(seed)
    out = []
    for idx in parts:
        rows = [records[i] for i in idx]
        rng.shuffle(rows)
        out.append(rows)
    return Split(*out)


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
