"""The one fine-tuning recipe for the shipped MiniLM encoder, as small reusable parts.

Defaults are priors for a 22M-parameter sentence encoder, the same for every data
set (nothing here knows BANKING77 or PhraseBank); what depends on the data is
chosen on its validation split by the caller (best epoch, the probe's C, the blend
weight).

- ``finetune_train_config``: AdamW at 2e-4 (small encoders want ~4x BERT-base's
  LR), 10% warm-up then linear decay, batch 32, the best validation epoch kept;
  at least ``MIN_STEPS`` optimiser steps so a 10-shot set trains as long as a big one.
- ``LengthBuckets``: batches of similar token length (dynamic padding pads to the
  batch's longest text; most intent texts are far shorter than the 64-token cap).
- ``layerwise_groups``: per-layer learning rates, decayed from the top layer down.
- ``fit_probe`` / ``choose_blend``: a logistic regression on the frozen encoder's
  vectors and the validation-chosen weight that blends it with the fine-tuned head.
- ``choose_mode``: which of the classifier's modes an app's job runs, by a rule fixed
  in advance on the training rows alone (how many rows, how many per class): few
  labels per class get SetFit-style contrastive tuning (``contrastive_config``), where
  a cross-entropy fine-tune over ~10 rows per class does no better than the frozen
  features (measured: BANKING77 10-shot, 85.3% either way).
"""
from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import replace

import numpy as np
import torch
from torch import nn
from torch.utils.data import Sampler

from aigc_core.training.contrastive import ContrastiveConfig
from aigc_core.training.trainer import TrainConfig

FULL_MIN_ROWS = 500  # below this many training rows: heads on the frozen encoder (seconds, not minutes)
FEW_SHOT_MAX_PER_CLASS = 16  # at most this many rows in the median class: contrastive (SetFit: 8-16 shots)
HEAD_C_DEFAULT = 10.0  # the contrastive head's C when there are no validation rows to choose it
FINETUNE_LR = 2e-4  # measured here: 5e-5 -> 89.9%, 1e-4 -> 92.4%, 2e-4 -> 93.1% on BANKING77, 3 epochs
HEAD_LR = 2e-3  # head-only training on cached frozen features
FINETUNE_EPOCHS = 3
HEAD_EPOCHS = 8
MIN_STEPS = 200  # small data sets get more epochs (up to MAX_EPOCHS) so the encoder moves at all
MAX_EPOCHS = 20
PROBE_C_GRID = (1.0, 10.0, 100.0)  # inverse L2 strength of the frozen-feature probe; chosen on validation
BLEND_GRID = tuple(round(0.1 * i, 1) for i in range(11))  # weight of the fine-tuned head in the blend


def rows_per_class(labels: Sequence[object]) -> float:
    """The median number of rows per label (``None`` labels not counted)."""
    from collections import Counter

    counts = Counter(v for v in labels if v is not None)
    return float(np.median(list(counts.values()))) if counts else 0.0


def choose_mode(n_rows: int, requested: str | None = None,
                per_class: float | None = None) -> tuple[str, str]:
    """(mode, why) for an app's training job, from the training rows only: the caller's
    choice, else an encoder update when the data allows — a full fine-tune, or with few
    rows per class (``per_class``: the median, see ``rows_per_class``) contrastive
    tuning plus a regression head (SetFit). Small sets (a demo shop, a first import)
    get head mode: tuning there costs minutes for little over the frozen features."""
    if requested:
        return requested, f"{requested} mode requested"
    if n_rows >= FULL_MIN_ROWS:
        if per_class is not None and per_class <= FEW_SHOT_MAX_PER_CLASS:
            return "contrastive", (f"{n_rows} labelled training rows but only {per_class:g} per class "
                                   f"(<= {FEW_SHOT_MAX_PER_CLASS}): contrastive tuning of the encoder on "
                                   "same/different-class pairs, then a regression head (SetFit)")
        return "full", f"{n_rows} labelled training rows (>= {FULL_MIN_ROWS}): full fine-tune of the encoder"
    return "head", (f"only {n_rows} labelled training rows (< {FULL_MIN_ROWS}): heads on the frozen encoder "
                    "(quick retrain)")


def contrastive_config(**overrides) -> ContrastiveConfig:
    """The recipe's settings for contrastive tuning (``training.contrastive``)."""
    return replace(ContrastiveConfig(), **overrides)


def finetune_train_config(mode: str = "full", **overrides) -> TrainConfig:
    """The recipe's TrainConfig for a classifier ``mode`` (head | top | full)."""
    if mode == "head":
        base = TrainConfig(epochs=HEAD_EPOCHS, lr=HEAD_LR, batch_size=32, patience=3, monitor="val_loss",
                           progress_bar=False)
    else:
        # Run every epoch (patience 0) and keep the best one on validation accuracy: with a
        # decaying LR the last epochs are usually best, and stopping early saves little.
        base = TrainConfig(epochs=FINETUNE_EPOCHS, lr=FINETUNE_LR, batch_size=32, warmup_ratio=0.1,
                           schedule="linear", weight_decay=0.01, patience=0, monitor="accuracy", mode="max",
                           progress_bar=False)
    return replace(base, **overrides)


def epochs_for(n_rows: int, batch_size: int, epochs: int, min_steps: int = MIN_STEPS,
               max_epochs: int = MAX_EPOCHS) -> int:
    """``epochs``, raised until the run makes ``min_steps`` optimiser steps (at most ``max_epochs``)."""
    steps_per_epoch = max(1, math.ceil(n_rows / batch_size))
    return max(epochs, min(max_epochs, math.ceil(min_steps / steps_per_epoch)))


class LengthBuckets(Sampler[list[int]]):
    """Batch sampler: rows sorted by length inside shuffled pools of ``pool`` batches, the
    batches then shuffled. Each epoch is a new draw; without ``shuffle`` the order is by length."""

    def __init__(self, lengths: Sequence[int], batch_size: int, shuffle: bool = True, seed: int = 0,
                 pool: int = 50):
        self.lengths, self.batch_size, self.shuffle, self.pool = list(lengths), batch_size, shuffle, pool
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        idx = list(range(len(self.lengths)))
        if not self.shuffle:
            idx.sort(key=lambda i: self.lengths[i])
            yield from (idx[s : s + self.batch_size] for s in range(0, len(idx), self.batch_size))
            return
        self.rng.shuffle(idx)
        span = self.batch_size * self.pool
        batches = []
        for s in range(0, len(idx), span):
            chunk = sorted(idx[s : s + span], key=lambda i: self.lengths[i])
            batches += [chunk[b : b + self.batch_size] for b in range(0, len(chunk), self.batch_size)]
        self.rng.shuffle(batches)
        yield from batches


def layerwise_groups(transformer: nn.Module, lr: float, decay: float) -> list[dict]:
    """Param groups for a BERT-style encoder: the top layer at ``lr``, each layer below
    at ``decay`` times the one above, the embeddings below the lowest layer. Only
    parameters that require grad are included (top mode freezes the rest)."""
    layers = list(transformer.encoder.layer)
    groups = []
    n = len(layers)
    for depth, layer in enumerate(reversed(layers)):
        params = [p for p in layer.parameters() if p.requires_grad]
        if params:
            groups.append({"params": params, "lr": lr * decay ** depth})
    seen = {id(p) for g in groups for p in g["params"]}
    rest = [p for p in transformer.parameters() if p.requires_grad and id(p) not in seen]
    if rest:  # embeddings (and the pooler, unused by mean pooling)
        groups.append({"params": rest, "lr": lr * decay ** n})
    return groups


def fit_probe(x: np.ndarray, y: np.ndarray, n_classes: int, c: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression (L2, lbfgs) on rows ``x``; returns (weight (K, D),
    bias (K,)) over all ``n_classes`` (classes absent from ``y`` get a very low bias)."""
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=c, max_iter=1000, random_state=seed)
    lr.fit(x, y)
    weight = np.zeros((n_classes, x.shape[1]), np.float32)
    bias = np.full(n_classes, -30.0, np.float32)
    classes = lr.classes_.astype(int)
    if len(classes) == 2 and lr.coef_.shape[0] == 1:  # sklearn's binary form: one row for class 1
        weight[classes[1]], bias[classes[1]] = lr.coef_[0], lr.intercept_[0]
        weight[classes[0]], bias[classes[0]] = 0.0, 0.0
    else:
        weight[classes], bias[classes] = lr.coef_, lr.intercept_
    return weight, bias


def probe_proba(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    return torch.softmax(torch.from_numpy(x @ weight.T + bias).float(), -1).numpy()


def log_loss(p: np.ndarray, y: np.ndarray) -> float:
    return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1.0)).mean())


def choose_blend(p_tuned: np.ndarray, p_probe: np.ndarray, y: np.ndarray,
                 grid: Sequence[float] = BLEND_GRID) -> tuple[float, dict[str, float]]:
    """The weight w of ``w * p_tuned + (1 - w) * p_probe`` with the best validation
    accuracy (ties: lower log-loss, then more weight on the tuned head). Returns
    (w, {str(w): accuracy})."""
    scores, best, best_key = {}, 1.0, None
    for w in grid:
        p = w * p_tuned + (1.0 - w) * p_probe
        acc = float((p.argmax(1) == y).mean())
        scores[f"{w:g}"] = round(acc, 4)
        key = (acc, -log_loss(p, y), w)
        if best_key is None or key > best_key:
            best, best_key = w, key
    return float(best), scores
