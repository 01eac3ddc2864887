"""The hybrid ranker and the ONE function that builds its features. Plain numpy, no ORM:
training (apps.recommend.training), serving (apps.recommend.serving) and the benchmark
all call ``pair_features`` on a ``UserSignals`` and a ``Candidates`` block, so
``recommend()``, ``score()`` and the offline evaluation cannot drift apart.

Features of a (user, item) pair, in this order:
  collab             EASE score of the item for the user's positive history (behaviour;
                     0 for an item the collaborative model has never seen)
  known              1 when the collaborative model has behaviour for the item, else 0:
                     lets the ranker place brand-new items (text only) against known ones
  two_tower          cosine of the two-tower user and item vectors (text tower trained on
                     behaviour: the path that scores new items and raw texts)
  text_similarity    cosine of the mean frozen MiniLM vector of the history and the item's
  popularity         log1p(positive events in the popularity window) / log1p(max over items)
  recency            -log1p(item age in days): newer items score higher
  price_gap          |log1p(price) - mean log1p(price) of the user's history| (0 when unknown)
  category_affinity  share of the user's history in the item's category

The ranker is linear over standardised features; its weights are chosen by coordinate
ascent on nDCG@10 of validation users' candidate lists (Metzler & Croft 2007), starting
from the collaborative score alone, and a weight changes only when validation nDCG
improves. So it cannot invert the base model's order the way a pointwise fit on hard
negatives did.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FEATURES = ["collab", "known", "two_tower", "text_similarity", "popularity", "recency", "price_gap",
            "category_affinity"]
RANKER_FILE = "ranker.json"
DAY_S = 86400.0
WEIGHT_GRID = [-1.0, -0.5, -0.25, -0.1, -0.05, 0.0, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0]
TEXT_AFFINITY = ("two_tower", "text_similarity")
TEXT_FLOOR = 0.05


@dataclass
class UserSignals:
    """Everything about one user the features need (computed once per request)."""

    collab: np.ndarray | None  # (n_model_items,) collaborative scores, None without behaviour/model
    user_vec: np.ndarray | None  # (dim,) two-tower user vector, None for a cold user
    text_mean: np.ndarray | None  # (384,) normalised mean MiniLM vector of the history
    category_share: dict[str, float]
    mean_log_price: float
    now_ts: float


@dataclass
class Candidates:
    """Per-candidate attributes; catalogue items and raw texts alike (a raw text: model_row -1,
    popularity 0, created now)."""

    model_row: np.ndarray  # (n,) row in the collaborative model's item space, -1 = unseen
    known: np.ndarray  # (n,) bool: the collaborative model has behaviour for it
    item_vecs: np.ndarray  # (n, dim) two-tower item vectors
    text_vecs: np.ndarray  # (n, 384) frozen MiniLM vectors
    categories: list[str]
    log_price: np.ndarray  # (n,) nan when unknown
    created_ts: np.ndarray  # (n,) nan when unknown
    popularity: np.ndarray  # (n,) normalised popularity in [0, 1]

    def take(self, idx: np.ndarray) -> Candidates:
        idx = np.asarray(idx, np.int64)
        return Candidates(self.model_row[idx], self.known[idx], self.item_vecs[idx], self.text_vecs[idx],
                          [self.categories[i] for i in idx.tolist()], self.log_price[idx], self.created_ts[idx],
                          self.popularity[idx])


def normalise_popularity(counts: np.ndarray, top: float | None = None) -> np.ndarray:
    counts = np.asarray(counts, np.float64)
    top = float(counts.max()) if top is None and len(counts) else (top or 0.0)
    return (np.log1p(counts) / (math.log1p(top) or 1.0)).astype(np.float32)


def user_profile(history_rows: list[int], categories: list[str], log_price: np.ndarray
                 ) -> tuple[dict[str, float], float]:
    """Category shares and mean log price of the items at ``history_rows``."""
    if not len(history_rows):
        return {}, float("nan")
    cats: dict[str, float] = {}
    for r in history_rows:
        cats[categories[r]] = cats.get(categories[r], 0.0) + 1.0
    prices = np.asarray(log_price)[list(history_rows)]
    prices = prices[~np.isnan(prices)]
    return {c: n / len(history_rows) for c, n in cats.items()}, float(prices.mean()) if len(prices) else float("nan")


def pair_features(user: UserSignals, cand: Candidates) -> np.ndarray:
    """Features (len(cand), len(FEATURES)) of one user against a block of candidates."""
    n = len(cand.model_row)
    collab = np.zeros(n, np.float32)
    if user.collab is not None:
        ok = cand.model_row >= 0
        collab[ok] = user.collab[cand.model_row[ok]]
    tt = (cand.item_vecs @ user.user_vec).astype(np.float32) if user.user_vec is not None else np.zeros(n, np.float32)
    ts = (cand.text_vecs @ user.text_mean).astype(np.float32) if user.text_mean is not None else np.zeros(n, np.float32)
    age_days = np.clip((user.now_ts - cand.created_ts) / DAY_S, 0, None)
    recency = np.where(np.isnan(age_days), 0.0, -np.log1p(np.nan_to_num(age_days)))
    gap = np.abs(cand.log_price - user.mean_log_price)
    gap = np.where(np.isnan(gap), 0.0, gap)
    cat = np.array([user.category_share.get(c, 0.0) for c in cand.categories], np.float32)
    return np.stack([collab, cand.known.astype(np.float32), tt, ts, cand.popularity.astype(np.float32), recency,
                     gap, cat], axis=1).astype(np.float32)


def candidate_rows(first_scores: list[np.ndarray], per_source: int, popularity: np.ndarray, n_popular: int,
                   created_ts: np.ndarray | None = None, n_recent: int = 0) -> dict[int, str]:
    """Offline candidate generation, the same sources serving uses: the top ``per_source`` of
    each score array (collaborative model, two-tower = what FAISS returns), popular, recent.
    Returns row -> first source name."""
    out: dict[int, str] = {}
    names = ["collab", "similar"]
    for name, s in zip(names, first_scores, strict=False):
        if s is None or not len(s):
            continue
        k = min(per_source, len(s) - 1)
        top = np.argpartition(-s, k)[:per_source] if k > 0 else np.arange(len(s))
        for r in top[np.argsort(-s[top], kind="stable")].tolist():
            out.setdefault(r, name)
    for r in np.argsort(-popularity, kind="stable")[:n_popular].tolist():
        out.setdefault(r, "popular")
    if created_ts is not None and n_recent:
        for r in np.argsort(-np.nan_to_num(created_ts, nan=-np.inf), kind="stable")[:n_recent].tolist():
            out.setdefault(r, "recent")
    return out


def ndcg_of_lists(scores: list[np.ndarray], labels: list[np.ndarray], n_relevant: list[int], k: int = 10) -> float:
    """Mean nDCG@k of candidate lists; relevant items outside a list still count in the ideal."""
    vals = []
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    for s, y, nr in zip(scores, labels, n_relevant, strict=True):
        if nr == 0:
            continue
        top = np.argsort(-s, kind="stable")[:k]
        dcg = float((y[top] * disc[: len(top)]).sum())
        vals.append(dcg / float(disc[: min(k, nr)].sum()))
    return float(np.mean(vals)) if vals else 0.0


@dataclass
class Ranker:
    """Linear over standardised features; ``score`` returns the ranking score."""

    mean: list[float] = field(default_factory=lambda: [0.0] * len(FEATURES))
    std: list[float] = field(default_factory=lambda: [1.0] * len(FEATURES))
    coef: list[float] = field(default_factory=lambda: [0.0, 0.0, 1.0] + [0.0] * (len(FEATURES) - 3))
    trained_on: int = 0  # validation users it was fitted on; 0 = the untrained default
    check: dict = field(default_factory=dict)  # validation nDCG before/after (reported in metrics)

    def score(self, X: np.ndarray) -> np.ndarray:
        z = (np.asarray(X, np.float32) - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        z = np.clip(z, -8.0, 8.0)  # a feature far outside validation (a brand-new item) cannot dominate
        return z @ np.asarray(self.coef, np.float32)

    @classmethod
    def fit(cls, feats: list[np.ndarray], labels: list[np.ndarray], n_relevant: list[int], k: int = 10,
            start: str = "collab", passes: int = 3) -> Ranker:
        """Coordinate ascent on validation nDCG@k. ``feats[u]``: (n_u, F) of user u's candidates,
        ``labels[u]``: (n_u,) 0/1, ``n_relevant[u]``: all of u's relevant items (in a list or not)."""
        if not feats or sum(int(y.sum()) for y in labels) == 0:
            return cls()
        X = np.concatenate(feats)
        mean = X.mean(0)
        std = X.std(0)
        std[std < 1e-6] = 1.0
        Z = [np.clip((f - mean) / std, -8.0, 8.0).astype(np.float32) for f in feats]
        w = np.zeros(len(FEATURES), np.float32)
        w[FEATURES.index(start)] = 1.0

        def value(wv: np.ndarray) -> float:
            return ndcg_of_lists([z @ wv for z in Z], labels, n_relevant, k)

        start_val = best = value(w)
        for _ in range(passes):
            changed = False
            for f in range(len(FEATURES)):
                for v in WEIGHT_GRID:
                    if v == w[f]:
                        continue
                    trial = w.copy()
                    trial[f] = v
                    if not trial.any():
                        continue
                    val = value(trial)
                    if val > best + 1e-4:
                        best, w, changed = val, trial, True
            if not changed:
                break
        # Text affinity never counts against a candidate: a raw text (no behaviour, no popularity)
        # is ranked by its text alone, so a fit on few users that made these weights negative
        # would rank raw texts in reverse. The floor is the grid's smallest positive step.
        for name in TEXT_AFFINITY:
            f = FEATURES.index(name)
            w[f] = max(w[f], TEXT_FLOOR)
        r = cls(mean=mean.tolist(), std=std.tolist(), coef=[float(c) for c in w], trained_on=len(feats))
        r.check = {"users": len(feats), f"start_{start}_ndcg@{k}": round(start_val, 4),
                   f"ranker_ndcg@{k}": round(best, 4)}
        return r

    def weights(self) -> dict[str, float]:
        return dict(zip(FEATURES, (round(c, 4) for c in self.coef), strict=True))

    def save(self, directory: str | Path) -> None:
        data = {"features": FEATURES, "mean": self.mean, "std": self.std, "coef": self.coef,
                "trained_on": self.trained_on, "check": self.check}
        (Path(directory) / RANKER_FILE).write_text(json.dumps(data, indent=2))

    @classmethod
    def load(cls, directory: str | Path) -> Ranker:
        data = json.loads((Path(directory) / RANKER_FILE).read_text())
        if data.get("features") != FEATURES:
            raise ValueError(f"ranker was trained on features {data.get('features')}, this code has {FEATURES}")
        return cls(mean=data["mean"], std=data["std"], coef=data["coef"], trained_on=data.get("trained_on", 0),
                   check=data.get("check", {}))
