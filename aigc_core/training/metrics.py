"""Metrics on plain arrays (numpy in, floats out), shared by every model and benchmark.

Classification: ``accuracy``, ``macro_f1``, ``per_class_report``, ``confusion_matrix``,
``roc_auc``. Language models: ``perplexity``. Ranking: ``ndcg_at_k``, ``recall_at_k``,
``mrr``, each over a list of queries (ranked item ids + the set of relevant ids).
"""
from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence

import numpy as np


def _pair(y_true: Sequence, y_pred: Sequence) -> tuple[np.ndarray, np.ndarray]:
    t, p = np.asarray(list(y_true)), np.asarray(list(y_pred))
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.shape} vs {p.shape}")
    return t, p


def accuracy(y_true: Sequence, y_pred: Sequence) -> float:
    t, p = _pair(y_true, y_pred)
    return float((t == p).mean()) if t.size else 0.0


def confusion_matrix(
    y_true: Sequence, y_pred: Sequence, labels: Sequence | None = None
) -> tuple[np.ndarray, list]:
    """Counts (n_labels, n_labels): rows are true labels, columns predictions."""
    t, p = _pair(y_true, y_pred)
    labels = list(labels) if labels is not None else sorted(set(t.tolist()) | set(p.tolist()))
    pos = {lab: i for i, lab in enumerate(labels)}
    cm = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for a, b in zip(t.tolist(), p.tolist(), strict=True):
        if a in pos and b in pos:
            cm[pos[a], pos[b]] += 1
    return cm, labels


def per_class_report(
    y_true: Sequence, y_pred: Sequence, labels: Sequence | None = None
) -> dict[str, dict[str, float]]:
    """{label: {precision, recall, f1, support}}; a class never predicted has precision 0."""
    cm, labels = confusion_matrix(y_true, y_pred, labels)
    tp = np.diag(cm).astype(float)
    predicted, support = cm.sum(0).astype(float), cm.sum(1).astype(float)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {
        str(lab): {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                   "support": int(support[i])}
        for i, lab in enumerate(labels)
    }


def macro_f1(y_true: Sequence, y_pred: Sequence, labels: Sequence | None = None) -> float:
    """Unweighted mean F1 over ``labels`` (default: classes seen in y_true or y_pred)."""
    report = per_class_report(y_true, y_pred, labels)
    return float(np.mean([r["f1"] for r in report.values()])) if report else 0.0


def roc_auc(y_true: Sequence, scores: np.ndarray | Sequence, labels: Sequence | None = None) -> float:
    """Binary: scores (N,) for the positive class (y_true in {0,1} or bools).
    Multi-class: scores (N, C) with column order ``labels``; one-vs-rest macro average
    over the classes that have both positives and negatives."""
    s = np.asarray(scores, dtype=float)
    t = np.asarray(list(y_true))
    if s.ndim == 1:
        return _binary_auc(t.astype(bool), s)
    if labels is None:
        raise ValueError("multi-class roc_auc needs the label order of the score columns")
    aucs = []
    for j, lab in enumerate(labels):
        pos = t == lab
        if 0 < pos.sum() < len(pos):
            aucs.append(_binary_auc(pos, s[:, j]))
    return float(np.mean(aucs)) if aucs else float("nan")


def _binary_auc(pos: np.ndarray, s: np.ndarray) -> float:
    # Mann-Whitney U with average ranks for ties: the probability a random positive outranks a negative.
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=float)
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def perplexity(total_nll: float, n_tokens: int) -> float:
    """exp(mean negative log-likelihood in nats per token)."""
    if n_tokens <= 0:
        raise ValueError("perplexity needs at least one token")
    return float(math.exp(min(total_nll / n_tokens, 700.0)))  # cap: exp(>709) overflows a float


Ranked = Sequence[Sequence[Hashable]]
Relevant = Sequence["set | Mapping[Hashable, float] | Sequence[Hashable]"]


def _gains(rel) -> dict:
    if isinstance(rel, Mapping):
        return {k: float(v) for k, v in rel.items() if v > 0}
    return {k: 1.0 for k in rel}


def ndcg_at_k(ranked: Ranked, relevant: Relevant, k: int) -> float:
    """Mean nDCG@k. ``relevant[i]``: ids (gain 1) or {id: graded gain} for query i."""
    scores = []
    for items, rel in zip(ranked, relevant, strict=True):
        gains = _gains(rel)
        if not gains:
            continue
        dcg = sum(gains.get(it, 0.0) / math.log2(r + 2) for r, it in enumerate(list(items)[:k]))
        ideal = sorted(gains.values(), reverse=True)[:k]
        idcg = sum(g / math.log2(r + 2) for r, g in enumerate(ideal))
        scores.append(dcg / idcg)
    return float(np.mean(scores)) if scores else 0.0


def recall_at_k(ranked: Ranked, relevant: Relevant, k: int) -> float:
    """Mean share of each query's relevant ids found in its top k."""
    scores = []
    for items, rel in zip(ranked, relevant, strict=True):
        gains = _gains(rel)
        if gains:
            scores.append(len(set(list(items)[:k]) & set(gains)) / len(gains))
    return float(np.mean(scores)) if scores else 0.0


def mrr(ranked: Ranked, relevant: Relevant, k: int | None = None) -> float:
    """Mean reciprocal rank of the first relevant id (0 when none in the top k)."""
    scores = []
    for items, rel in zip(ranked, relevant, strict=True):
        gains = _gains(rel)
        if not gains:
            continue
        items = list(items) if k is None else list(items)[:k]
        scores.append(next((1.0 / (r + 1) for r, it in enumerate(items) if it in gains), 0.0))
    return float(np.mean(scores)) if scores else 0.0
