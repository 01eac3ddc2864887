"""What every multi-head text classifier shares: label handling per head (``None`` =
no label for this head, masked from its loss), class weights, the loss, metrics,
and the (train, validation) hold-out used when a caller gives no validation rows.
The model families live in their own files: ``classifier.py`` (MiniLM encoder)
and ``bigru_classifier.py`` (the from-scratch baseline).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from aigc_core.data.splits import stratified_indices
from aigc_core.training import metrics

IGNORE = -100  # label id for "no label for this head"; F.cross_entropy's ignore_index

Labels = dict[str, Sequence[str | None]]
ProgressFn = Callable[[float, str], None]


class ClassifierError(ValueError):
    """Bad classifier input: unknown head or label, mismatched lengths, no labelled rows."""


def make_head(in_dim: int, n_labels: int, hidden: int, dropout: float) -> nn.Module:
    if hidden <= 0:
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, n_labels))
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, hidden), nn.GELU(),
                         nn.Dropout(dropout), nn.Linear(hidden, n_labels))


def resolve_heads(config_heads: dict[str, list[str]], labels: Labels, n: int) -> dict[str, list[str]]:
    """Fill heads declared with [] from the data and reject labels outside a declared list."""
    unknown_heads = set(labels) - set(config_heads)
    if unknown_heads:
        raise ClassifierError(f"labels given for undeclared head(s) {sorted(unknown_heads)}")
    out = {}
    for head, declared in config_heads.items():
        values = list(labels.get(head, [None] * n))
        if len(values) != n:
            raise ClassifierError(f"head {head!r} has {len(values)} labels for {n} texts")
        seen = sorted({v for v in values if v is not None})
        if declared:
            extra = [v for v in seen if v not in declared]
            if extra:
                raise ClassifierError(f"head {head!r}: labels {extra} are not in its label list {declared}")
            out[head] = list(declared)
        else:
            if len(seen) < 2:
                raise ClassifierError(f"head {head!r} needs at least 2 distinct labels, found {seen}")
            out[head] = seen
    return out


def encode_labels(labels: Labels, heads: dict[str, list[str]], n: int) -> torch.Tensor:
    """(N, n_heads) label ids in head order; IGNORE where a row has no label for a head."""
    y = torch.full((n, len(heads)), IGNORE, dtype=torch.long)
    for j, (head, names) in enumerate(heads.items()):
        pos = {name: i for i, name in enumerate(names)}
        for i, v in enumerate(labels.get(head, [None] * n)):
            if v is not None:
                if v not in pos:
                    raise ClassifierError(f"head {head!r}: unknown label {v!r} (known: {names})")
                y[i, j] = pos[v]
    return y


def class_weights(y: torch.Tensor, heads: dict[str, list[str]], cap: float) -> list[torch.Tensor]:
    """Per head: n / (k * count_c) ("balanced"), 1 for unseen classes, capped at ``cap``."""
    out = []
    for j, names in enumerate(heads.values()):
        col = y[:, j][y[:, j] != IGNORE]
        counts = torch.bincount(col, minlength=len(names)).float()
        w = torch.where(counts > 0, col.numel() / (len(names) * counts.clamp(min=1)), torch.ones_like(counts))
        out.append(w.clamp(max=cap))
    return out


def multihead_loss(logits: dict[str, torch.Tensor], y: torch.Tensor,
                   weights: list[torch.Tensor] | None, label_smoothing: float = 0.0) -> torch.Tensor:
    """Sum over heads of cross-entropy on the rows labelled for that head."""
    total = None
    for j, out in enumerate(logits.values()):
        target = y[:, j]
        if not (target != IGNORE).any():
            continue  # no label for this head in the batch: a mean over nothing would be NaN
        w = weights[j].to(out.device) if weights else None
        loss = F.cross_entropy(out.float(), target, weight=w, ignore_index=IGNORE,
                               label_smoothing=label_smoothing)
        total = loss if total is None else total + loss
    if total is None:  # keep the graph connected so backward() works on a batch with no labels
        total = sum(out.sum() * 0.0 for out in logits.values())
    return total


def evaluate_logits(logits: dict[str, np.ndarray], y: np.ndarray, heads: dict[str, list[str]],
                    detailed: bool = False) -> dict[str, Any]:
    """accuracy and macro-F1 per head ("<head>/accuracy"), their mean over heads, and with
    ``detailed`` the per-class report and confusion matrix of each head."""
    out: dict[str, Any] = {}
    accs, f1s = [], []
    for j, (head, names) in enumerate(heads.items()):
        mask = y[:, j] != IGNORE
        if not mask.any():
            continue
        true = [names[i] for i in y[mask, j]]
        pred = [names[i] for i in logits[head][mask].argmax(-1)]
        acc, f1 = metrics.accuracy(true, pred), metrics.macro_f1(true, pred)
        out[f"{head}/accuracy"], out[f"{head}/macro_f1"] = acc, f1
        accs.append(acc)
        f1s.append(f1)
        if detailed:
            out[f"{head}/report"] = metrics.per_class_report(true, pred, names)
            out[f"{head}/confusion"] = metrics.confusion_matrix(true, pred, names)[0].tolist()
    if accs:
        out["accuracy"], out["macro_f1"] = float(np.mean(accs)), float(np.mean(f1s))
    return out


def make_eval_fn(heads: dict[str, list[str]], weights: list[torch.Tensor] | None, label_smoothing: float = 0.0):
    def eval_fn(model: nn.Module, loader) -> dict[str, float]:
        device = next(model.parameters()).device
        all_logits: dict[str, list[np.ndarray]] = {h: [] for h in heads}
        ys, total, count = [], 0.0, 0
        for batch in loader:
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            logits = model(**{k: v for k, v in batch.items() if k != "labels"})
            total += float(multihead_loss(logits, batch["labels"], weights, label_smoothing)) * len(batch["labels"])
            count += len(batch["labels"])
            for h in heads:
                all_logits[h].append(logits[h].float().cpu().numpy())
            ys.append(batch["labels"].cpu().numpy())
        res = evaluate_logits({h: np.concatenate(v) for h, v in all_logits.items()}, np.concatenate(ys), heads)
        return {"val_loss": total / max(1, count), **res}

    return eval_fn


def as_labels(labels: Labels | Sequence[str | None], heads: dict[str, list[str]]) -> Labels:
    if isinstance(labels, dict):
        return labels
    if len(heads) != 1:
        raise ClassifierError("with several heads, labels must be a dict of head -> label list")
    return {next(iter(heads)): list(labels)}


def holdout(labels: Labels, seed: int, share: float = 0.1) -> tuple[list[int], list[int]]:
    """Stratified (train, validation) indices on the first head, for callers that give no validation."""
    first = next(iter(labels), None)
    n = len(next(iter(labels.values()))) if labels else 0
    parts = stratified_indices(list(labels[first]) if first else [None] * n, validation=share, seed=seed,
                               min_per_class=1)
    return parts.train, parts.validation


def summary(result, n_train: int, n_val: int) -> dict[str, float]:
    """The best epoch's metrics, named for where they were measured: ``val_accuracy``,
    ``<head>/val_macro_f1``, ``val_loss``, ``train_loss``; plus run facts."""
    out: dict[str, float] = {}
    for k, v in result.best_metrics.items():
        if not isinstance(v, (int, float)) or k in {"lr", "epoch"}:
            continue
        if k.startswith(("val_", "train_")):
            name = k
        elif "/" in k:
            head, metric = k.split("/", 1)
            name = f"{head}/val_{metric}"
        else:
            name = f"val_{k}"
        out[name] = float(v)
    return {**out, "best_epoch": result.best_epoch, "epochs_run": len(result.history),
            "steps": result.steps, "wall_s": round(result.wall_s, 3), "n_train": n_train, "n_val": n_val}


def top_labels(proba: dict[str, np.ndarray], heads: dict[str, list[str]]) -> dict[str, list[tuple[str, float]]]:
    out = {}
    for head, p in proba.items():
        idx = p.argmax(-1)
        out[head] = [(heads[head][i], float(p[r, i])) for r, i in enumerate(idx)]
    return out


class TextDataset(Dataset):
    """(text, label row) pairs; the collate function tokenises."""

    def __init__(self, texts: Sequence[str], y: torch.Tensor):
        self.texts, self.y = list(texts), y

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int):
        return self.texts[i], self.y[i]
