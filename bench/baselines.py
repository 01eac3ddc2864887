"""Baselines measured in the same run as our models: TF-IDF + logistic
regression and frozen shipped-encoder embeddings + logistic regression, each
with C tuned on a stratified held-out part of the training data (never on test).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from aigc_core.training import metrics as M

C_GRID_TFIDF = [1.0, 10.0, 100.0]
C_GRID_FROZEN = [0.1, 1.0, 10.0, 100.0]


def _split(labels: Sequence[str], seed: int) -> tuple[list[int], list[int]]:
    from bench.datasets import stratified_split

    counts = Counter(labels)
    if min(counts.values()) < 2:
        idx = list(range(len(labels)))
        return idx, idx
    return stratified_split(list(labels), 0.15, seed)


def tfidf_features(train_texts, test_texts):
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, lowercase=True)
    return vec.fit_transform(train_texts), vec.transform(test_texts)


def fit_lr(x_train, y_train: Sequence[str], c_grid: Sequence[float], seed: int = 0, tune: bool = True):
    """LogisticRegression with C chosen on a held-out 15% of the training rows
    (macro-F1), then refit on all of them. Returns (model, chosen C, {C: val macro-F1})."""
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(y_train)
    scores: dict[float, float] = {}
    if tune and len(c_grid) > 1:
        tr, va = _split(list(y), seed)
        for c in c_grid:
            lr = LogisticRegression(C=c, max_iter=2000)
            lr.fit(x_train[tr], y[tr])
            scores[c] = M.macro_f1(y[va].tolist(), lr.predict(x_train[va]).tolist())
        best = max(scores, key=scores.get)
    else:
        best = c_grid[len(c_grid) // 2]
    lr = LogisticRegression(C=best, max_iter=2000)
    lr.fit(x_train, y)
    return lr, best, scores


def evaluate_predictions(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str] | None = None) -> dict:
    return {"accuracy": float(M.accuracy(list(y_true), list(y_pred))),
            "macro_f1": float(M.macro_f1(list(y_true), list(y_pred), labels=labels))}


def majority(y_train: Sequence[str], y_test: Sequence[str]) -> dict:
    top = Counter(y_train).most_common(1)[0][0]
    return {**evaluate_predictions(y_test, [top] * len(y_test)), "label": top}
