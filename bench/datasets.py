"""Loaders for the public data sets in ../shared/data, with their quirks
handled as ../shared/data/README.md describes. Read-only; nothing is copied.
"""
from __future__ import annotations

import csv
import json
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from bench.harness import data_path, dev_limit, sha256_files

# -- BANKING77 --------------------------------------------------------------------


@dataclass
class LabelledTexts:
    texts: list[str]
    labels: list[str]

    def __len__(self) -> int:
        return len(self.texts)


def _read_text_category(path: Path) -> LabelledTexts:
    texts, labels = [], []
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            texts.append(row["text"].strip())
            labels.append(row["category"].strip())
    return LabelledTexts(texts, labels)


def banking77() -> tuple[LabelledTexts, LabelledTexts, list[str], str]:
    """(train, test, intents, data hash). The official split as is: 6 test texts
    also occur in train and train has 4 internal duplicates (reported, kept)."""
    root = data_path("banking77")
    train = _read_text_category(root / "train.csv")
    test = _read_text_category(root / "test.csv")
    intents = json.loads((root / "categories.json").read_text())
    if limit := dev_limit():
        rng = random.Random(0)
        keep_tr = sorted(rng.sample(range(len(train)), min(limit, len(train))))
        keep_te = sorted(rng.sample(range(len(test)), min(limit // 3, len(test))))
        train = LabelledTexts([train.texts[i] for i in keep_tr], [train.labels[i] for i in keep_tr])
        test = LabelledTexts([test.texts[i] for i in keep_te], [test.labels[i] for i in keep_te])
    return train, test, intents, sha256_files([root / "train.csv", root / "test.csv"])


def few_shot(data: LabelledTexts, per_label: int, seed: int) -> LabelledTexts:
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, lab in enumerate(data.labels):
        by_label[lab].append(i)
    rng = random.Random(seed)
    keep: list[int] = []
    for lab in sorted(by_label):
        idx = by_label[lab]
        keep.extend(rng.sample(idx, min(per_label, len(idx))))
    keep.sort()
    return LabelledTexts([data.texts[i] for i in keep], [data.labels[i] for i in keep])


# -- Financial PhraseBank -------------------------------------------------------------
PHRASEBANK_FILES = {"50": "Sentences_50Agree.txt", "66": "Sentences_66Agree.txt",
                    "75": "Sentences_75Agree.txt", "all": "Sentences_AllAgree.txt"}
SENTIMENTS = ["negative", "neutral", "positive"]


@dataclass
class PhraseBank:
    data: LabelledTexts
    file: str
    raw_lines: int
    duplicates_removed: int
    conflicting_removed: int
    data_hash: str
    notes: list[str] = field(default_factory=list)


def _phrasebank_lines(name: str) -> list[tuple[str, str]]:
    path = data_path("phrasebank", PHRASEBANK_FILES[name])
    out = []
    for line in path.read_text(encoding="iso-8859-1").splitlines():
        line = line.strip()
        if not line:
            continue
        sentence, _, label = line.rpartition("@")
        out.append((sentence.strip(), label.strip()))
    return out


def phrasebank(name: str) -> PhraseBank:
    """One agreement level, deduplicated: exact duplicate lines are kept once and
    sentences that carry two different labels are dropped (they cannot be
    scored). The four files are nested subsets; every experiment uses one file,
    so the 'cross-file overlap' rule becomes: split once, by sentence, and never
    let a test sentence into training (see ``split_80_20``)."""
    lines = _phrasebank_lines(name)
    labels_of: dict[str, set[str]] = defaultdict(set)
    order: list[str] = []
    for s, lab in lines:
        if s not in labels_of:
            order.append(s)
        labels_of[s].add(lab)
    conflicting = [s for s in order if len(labels_of[s]) > 1]
    keep = [s for s in order if len(labels_of[s]) == 1]
    if limit := dev_limit():
        keep = keep[:limit]
    data = LabelledTexts(keep, [next(iter(labels_of[s])) for s in keep])
    return PhraseBank(
        data=data, file=PHRASEBANK_FILES[name], raw_lines=len(lines),
        duplicates_removed=len(lines) - len(order), conflicting_removed=len(conflicting),
        data_hash=sha256_files([data_path("phrasebank", PHRASEBANK_FILES[name])]),
    )


def stratified_split(labels: list[str], test_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, test) indices, stratified: the engine's one split helper."""
    from aigc_core.data.splits import stratified_indices

    parts = stratified_indices(labels, validation=test_fraction, seed=seed, min_per_class=1)
    return parts.train, parts.validation


def stratified_folds(labels: list[str], k: int, seed: int) -> list[tuple[list[int], list[int]]]:
    from aigc_core.data import splits

    return splits.stratified_folds(labels, k, seed)


# -- NAB realTweets ------------------------------------------------------------------


@dataclass
class Series:
    name: str
    timestamps: list[datetime]
    values: list[float]
    windows: list[tuple[datetime, datetime]]


def _ts(text: str) -> datetime:
    text = text.strip()
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise ValueError(f"unrecognised NAB timestamp {text!r}")


def nab_real_tweets() -> tuple[list[Series], str]:
    root = data_path("nab_realTweets")
    windows = json.loads((root / "combined_windows_realTweets.json").read_text())
    out = []
    files = sorted(root.glob("Twitter_volume_*.csv"))
    for path in files:
        ts, vals = [], []
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                ts.append(_ts(row["timestamp"]))
                vals.append(float(row["value"]))
        wins = [(_ts(a), _ts(b)) for a, b in windows.get(f"realTweets/{path.name}", [])]
        out.append(Series(path.stem, ts, vals, wins))
    return out, sha256_files([*files, root / "combined_windows_realTweets.json"])


# -- MovieLens small ------------------------------------------------------------------


@dataclass
class MovieLens:
    items: dict[int, dict]  # movieId -> {"title", "genres", "tags": [..], "text"}
    ratings: list[tuple[int, int, float, int]]  # user, movie, rating, unix time
    data_hash: str


def movielens_small() -> MovieLens:
    root = data_path("movielens-small")
    items: dict[int, dict] = {}
    with (root / "movies.csv").open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            genres = [] if row["genres"] == "(no genres listed)" else row["genres"].split("|")
            items[int(row["movieId"])] = {"title": row["title"], "genres": genres, "tags": []}
    tag_counts: dict[int, Counter] = defaultdict(Counter)
    with (root / "tags.csv").open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            tag_counts[int(row["movieId"])][row["tag"].strip().lower()] += 1
    for mid, counts in tag_counts.items():
        if mid in items:
            items[mid]["tags"] = [t for t, _ in counts.most_common(20)]
    for item in items.values():
        parts = [item["title"]]
        if item["genres"]:
            parts.append("Genres: " + ", ".join(item["genres"]))
        if item["tags"]:
            parts.append("Tags: " + ", ".join(item["tags"]))
        item["text"] = ". ".join(parts)
    ratings = []
    with (root / "ratings.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            ratings.append((int(row["userId"]), int(row["movieId"]), float(row["rating"]), int(row["timestamp"])))
    if limit := dev_limit():
        ratings = [r for r in ratings if r[0] <= max(5, limit // 100)]
    return MovieLens(items, ratings, sha256_files([root / "movies.csv", root / "ratings.csv", root / "tags.csv"]))
