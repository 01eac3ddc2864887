"""The small learned re-ranker and the features it reads. Plain numpy, no ORM:
training (apps.recommend.training), serving (apps.recommend.services) and the
benchmark build features with the same function.

Features of a (user, item) pair, in this order:
  model_score        cosine of the two-tower user and item vectors
  popularity         log1p(positive events in the popularity window) / log1p(max over items)
  recency            -log1p(item age in days): newer items score higher
  price_gap          |log1p(price) - mean log1p(price) of the user's history| (0 when unknown)
  category_affinity  share of the user's history in the item's category
  text_similarity    cosine of the mean frozen MiniLM vector of the history and the item's (no training)
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FEATURES = ["model_score", "popularity", "recency", "price_gap", "category_affinity", "text_similarity"]
RANKER_FILE = "ranker.json"
DAY_S = 86400.0


@dataclass
class ItemTable:
    """Per-item arrays aligned with one list of item ids."""

    ids: list  # external ids (str or int)
    categories: list[str]
    log_price: np.ndarray  # (N,) float, nan when unknown
    created_ts: np.ndarray  # (N,) epoch seconds, nan when unknown
    popularity: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (N,) counts in the window

    @property
    def pop_norm(self) -> np.ndarray:
        if len(self.popularity) == 0:
            return np.zeros(len(self.ids), np.float32)
        top = np.log1p(self.popularity.max()) or 1.0
        return (np.log1p(self.popularity) / top).astype(np.float32)


def user_profile(history_rows: list[int], table: ItemTable) -> tuple[dict[str, float], float]:
    """Category shares and mean log price of the items at ``history_rows``."""
    if not history_rows:
        return {}, float("nan")
    cats: dict[str, float] = {}
    for r in history_rows:
        c = table.categories[r]
        cats[c] = cats.get(c, 0.0) + 1.0
    total = float(len(history_rows))
    prices = table.log_price[history_rows]
    prices = prices[~np.isnan(prices)]
    return {c: n / total for c, n in cats.items()}, float(prices.mean()) if len(prices) else float("nan")


def pair_features(model_scores: np.ndarray, rows: np.ndarray, table: ItemTable, now_ts: float,
                  category_share: dict[str, float], mean_log_price: float,
                  text_sim: np.ndarray | None = None) -> np.ndarray:
    """Features (len(rows), len(FEATURES)) for one user and the candidate item rows ``rows``."""
    rows = np.asarray(rows, dtype=np.int64)
    pop = table.pop_norm[rows] if len(table.popularity) else np.zeros(len(rows), np.float32)
    age_days = np.clip((now_ts - table.created_ts[rows]) / DAY_S, 0, None)
    recency = np.where(np.isnan(age_days), 0.0, -np.log1p(np.nan_to_num(age_days)))
    lp = table.log_price[rows]
    gap = np.abs(lp - mean_log_price)
    gap = np.where(np.isnan(gap), 0.0, gap)
    cat = np.array([category_share.get(table.categories[r], 0.0) for r in rows], np.float32)
    ts = np.zeros(len(rows), np.float32) if text_sim is None else np.asarray(text_sim, np.float32)
    return np.stack([np.asarray(model_scores, np.float32), pop, recency, gap, cat, ts], axis=1).astype(np.float32)


@dataclass
class Ranker:
    """Logistic regression over standardised features; ``score`` returns the logit."""

    mean: list[float] = field(default_factory=lambda: [0.0] * len(FEATURES))
    std: list[float] = field(default_factory=lambda: [1.0] * len(FEATURES))
    coef: list[float] = field(default_factory=lambda: [1.0] + [0.0] * (len(FEATURES) - 1))  # untrained: model score
    intercept: float = 0.0
    trained_on: int = 0  # training pairs; 0 = the untrained default
    # Held-out check against the model score alone (not saved; reported in metrics).
    check: dict = field(default_factory=dict)

    def score(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, np.float32)
        z = (X - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        z = np.clip(z, -5.0, 5.0)  # a feature far outside training (a brand-new item) cannot dominate
        return z @ np.asarray(self.coef, np.float32) + np.float32(self.intercept)

    @classmethod
    def fit(cls, X: np.ndarray, y: np.ndarray, seed: int = 0) -> Ranker:
        from sklearn.linear_model import LogisticRegression

        y = np.asarray(y)
        if len(X) < 20 or y.min() == y.max():
            return cls()  # too little signal: fall back to the model score alone
        mean = X.mean(0)
        std = X.std(0)
        std[std < 1e-6] = 1.0
        lr = LogisticRegression(C=1.0, max_iter=500, class_weight="balanced", random_state=seed)
        lr.fit((X - mean) / std, y)
        return cls(mean=mean.tolist(), std=std.tolist(), coef=lr.coef_[0].tolist(),
                   intercept=float(lr.intercept_[0]), trained_on=int(len(X)))

    def weights(self) -> dict[str, float]:
        return dict(zip(FEATURES, (round(c, 4) for c in self.coef), strict=True))

    def save(self, directory: str | Path) -> None:
        data = {"features": FEATURES, "mean": self.mean, "std": self.std, "coef": self.coef,
                "intercept": self.intercept, "trained_on": self.trained_on}
        (Path(directory) / RANKER_FILE).write_text(json.dumps(data, indent=2))

    @classmethod
    def load(cls, directory: str | Path) -> Ranker:
        data = json.loads((Path(directory) / RANKER_FILE).read_text())
        if data.get("features") != FEATURES:
            raise ValueError(f"ranker was trained on features {data.get('features')}, this code has {FEATURES}")
        return cls(mean=data["mean"], std=data["std"], coef=data["coef"], intercept=data["intercept"],
                   trained_on=data.get("trained_on", 0))
