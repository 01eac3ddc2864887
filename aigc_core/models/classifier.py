"""The MiniLM text classifier: the shipped encoder + one small head per task
(e.g. topic and sentiment at once), trained with the engine's one fine-tuning
recipe (``aigc_core.training.recipe``).

Modes trade speed for accuracy:
  full  every encoder weight trains (the default: the recipe);
  top   the top ``top_layers`` transformer layers train with the heads;
  head  frozen encoder; its features are computed once, cached by data hash, and
        only the heads train (seconds on a CPU: quick retrains and demos);
  contrastive  few labels per class (SetFit, ``training.contrastive``): the encoder
        is tuned so that texts of one class lie together, then each head is a
        logistic regression on the tuned vectors, its C chosen on validation.

In full/top/contrastive mode the tuned heads are blended with a logistic-regression
probe on the *frozen* encoder's vectors: two different views of the text whose
errors differ. The probe's C and the blend weight are chosen on the validation
rows; a weight of 1.0 means the probe is not used.

Labels are given per head; ``None`` means "no label for this head" and is masked
out of that head's loss, so one data set can mix rows labelled for different tasks.
The from-scratch BiGRU baseline lives in ``bigru_classifier.py``.
"""
from __future__ import annotations

import collections
import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from aigc_core.data.batching import pad_token_rows
from aigc_core.data.records import dataset_hash
from aigc_core.device import autocast, get_device
from aigc_core.models.multihead import (
    IGNORE,
    ClassifierError,
    Labels,
    ProgressFn,
    TextDataset,
    as_labels,
    class_weights,
    encode_labels,
    evaluate_logits,
    holdout,
    make_eval_fn,
    make_head,
    multihead_loss,
    resolve_heads,
    summary,
    top_labels,
)
from aigc_core.retrieval.encoder import MAX_TOKENS, SentenceEncoder, shared_encoder
from aigc_core.training import TrainConfig, Trainer, set_seed
from aigc_core.training import recipe as R
from aigc_core.training.contrastive import ContrastiveConfig, contrastive_finetune

__all__ = [
    "ClassifierConfig", "ClassifierError", "EncoderClassifier", "IGNORE", "MODES", "encode_labels",
    "evaluate_logits", "frozen_features", "load_classifier", "train_classifier",
    # the baseline family, re-exported so callers have one import for "a classifier"
    "BiGRUClassifier", "BiGRUConfig", "train_bigru_classifier",
]

CONFIG_FILE = "config.json"
HEADS_FILE = "heads.safetensors"
PROBES_FILE = "probes.safetensors"
ENCODER_FILE = "encoder.safetensors"
MODES = ("head", "top", "full", "contrastive")


@dataclass
class ClassifierConfig:
    heads: dict[str, list[str]] = field(default_factory=dict)  # head -> labels; [] = learn them from the data
    mode: str = "full"  # full | top | head | contrastive (see the module docstring)
    top_layers: int = 2  # transformer layers trained in "top" mode (MiniLM has 6)
    hidden: int = 256  # width of each head's hidden layer; 0 = a single linear layer
    dropout: float = 0.1
    class_weights: bool = True  # weight each class by inverse frequency, so rare classes count
    max_class_weight: float = 10.0  # cap, so a class seen twice does not swamp the loss
    max_tokens: int = 64  # longer texts are truncated (short-text tasks; 64 halves the cost of 128)
    encoder_lr_scale: float = 1.0  # top encoder layer's LR = this x the heads' LR (top/full mode)
    layer_decay: float = 1.0  # each lower layer's LR = this x the one above (1.0: all layers alike)
    label_smoothing: float = 0.1  # top/full mode only: softer targets for a fast-moving encoder
    bucket_by_length: bool = True  # top/full mode: batches of similar length pad less
    blend_probe: bool = True  # top/full mode: blend with a frozen-feature LR probe when validation says so
    blend: dict[str, float] = field(default_factory=dict)  # head -> weight of the tuned head (set by training)
    probe_c: dict[str, float] = field(default_factory=dict)  # head -> the probe's C (set by training)
    feature_cache_dir: str | None = None  # head mode: also keep frozen features on disk (.npy)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {self.mode!r}")
        if not self.heads:
            raise ValueError("ClassifierConfig needs at least one head, e.g. heads={'intent': []}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClassifierConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# -- features ----------------------------------------------------------------
# Unit-length MiniLM vectors have per-dimension values near 1/sqrt(384); scaling
# by sqrt(dim) gives the heads inputs of unit RMS, which their default init expects.
_FEATURE_SCALE = math.sqrt(384)
_FEATURE_CACHE: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()
_FEATURE_CACHE_SIZE = 8  # data sets kept in memory; each is N x 384 float32
PROBE_MAX_TOKENS = MAX_TOKENS  # the probe reads the frozen vectors retrieval uses (128 tokens)


def frozen_features(texts: Sequence[str], max_tokens: int = MAX_TOKENS, cache_dir: str | Path | None = None,
                    progress: bool = False) -> np.ndarray:
    """Shipped-encoder features (N, 384), unit length x sqrt(384), cached in memory
    (and on disk) by data hash."""
    key = f"minilm-{max_tokens}-{dataset_hash(texts)[:32]}"
    if key in _FEATURE_CACHE:
        _FEATURE_CACHE.move_to_end(key)
        return _FEATURE_CACHE[key]
    path = Path(cache_dir) / f"{key}.npy" if cache_dir else None
    if path is not None and path.exists():
        feats = np.load(path)
    else:
        feats = _encode_with(shared_encoder(), texts, max_tokens, progress)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npy")
            np.save(tmp, feats)
            os.replace(tmp, path)
    _FEATURE_CACHE[key] = feats
    while len(_FEATURE_CACHE) > _FEATURE_CACHE_SIZE:
        _FEATURE_CACHE.popitem(last=False)
    return feats


def _encode_with(encoder: SentenceEncoder, texts: Sequence[str], max_tokens: int, progress: bool = False,
                 batch_size: int = 64) -> np.ndarray:
    """Head inputs from ``encoder`` (frozen or fine-tuned): its unit vectors x sqrt(384)."""
    vecs = encoder.encode(list(texts), batch_size=batch_size, max_tokens=max_tokens, progress=progress)
    return vecs * np.float32(_FEATURE_SCALE)


# -- the model ---------------------------------------------------------------
class EncoderClassifier(nn.Module):
    def __init__(self, config: ClassifierConfig, encoder: SentenceEncoder | None = None):
        super().__init__()
        if any(not labels for labels in config.heads.values()):
            raise ClassifierError("every head needs its label list; train_classifier fills empty ones")
        self.config = config
        if encoder is None:
            # head mode shares the process-wide frozen encoder; the others need their own copy to train.
            encoder = shared_encoder() if config.mode == "head" else SentenceEncoder()
        self.encoder = encoder
        self._set_trainable()
        self.heads = nn.ModuleDict({
            h: make_head(encoder.dim, len(labels), config.hidden, config.dropout)
            for h, labels in config.heads.items()
        })
        # The frozen-feature probes (a linear layer per head); trained in closed form, never by the Trainer.
        self.probes: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def _set_trainable(self) -> None:
        mode = self.config.mode
        for p in self.encoder.parameters():
            p.requires_grad_(mode in ("full", "contrastive"))
        if mode == "top":
            layers = self.encoder.transformer.encoder.layer
            for layer in layers[max(0, len(layers) - self.config.top_layers):]:
                for p in layer.parameters():
                    p.requires_grad_(True)

    def train(self, mode: bool = True) -> EncoderClassifier:
        super().train(mode)
        if self.config.mode == "head":
            self.encoder.eval()  # frozen: its dropout must stay off
        return self

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                features: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        # (B, T) token ids, or (B, 384) precomputed features -> {head: (B, n_labels) logits}
        if features is None:
            vec = self.encoder(input_ids, attention_mask)
            features = F.normalize(vec.float(), dim=-1) * _FEATURE_SCALE
        return {h: head(features) for h, head in self.heads.items()}

    def encoder_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.encoder.parameters() if p.requires_grad]

    @property
    def uses_probe(self) -> bool:
        return any(self.config.blend.get(h, 1.0) < 1.0 for h in self.probes)

    @torch.no_grad()
    def tuned_proba(self, texts: Sequence[str], batch_size: int = 64) -> dict[str, np.ndarray]:
        """The fine-tuned heads alone (no probe blend)."""
        feats = _encode_with(self.encoder, list(texts), self.config.max_tokens, batch_size=batch_size)
        return self._heads_proba(feats)

    def _heads_proba(self, feats: np.ndarray) -> dict[str, np.ndarray]:
        device = get_device()
        self.heads.to(device.device)
        was_training = self.training
        self.eval()
        x = torch.from_numpy(np.ascontiguousarray(feats, np.float32)).to(device.device)
        with torch.no_grad(), autocast(device):
            logits = {h: head(x) for h, head in self.heads.items()}
        self.train(was_training)
        return {h: torch.softmax(v.float(), -1).cpu().numpy() for h, v in logits.items()}

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64,
                      frozen_embeddings: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Class probabilities per head. ``frozen_embeddings``: the shipped encoder's unit
        vectors of the same texts (``retrieval.encoder.encode``), when the caller has them
        already; otherwise the probe part encodes them itself."""
        texts = list(texts)
        out = self.tuned_proba(texts, batch_size)
        if self.uses_probe:
            frozen = (np.atleast_2d(np.asarray(frozen_embeddings, np.float32)) if frozen_embeddings is not None
                      else shared_encoder().encode(texts, batch_size=batch_size, max_tokens=PROBE_MAX_TOKENS))
            for h, (w, b) in self.probes.items():
                blend = self.config.blend.get(h, 1.0)
                if blend < 1.0:
                    out[h] = blend * out[h] + (1.0 - blend) * R.probe_proba(frozen, w, b)
        return out

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> dict[str, list[tuple[str, float]]]:
        return top_labels(self.predict_proba(texts, batch_size), self.config.heads)

    def predict_proba_from_embeddings(self, embeddings: np.ndarray) -> dict[str, np.ndarray]:
        """Head-mode only: class probabilities from L2-normalised shipped-encoder
        vectors (``retrieval.encoder.encode``), so a caller that already embedded
        a text for retrieval need not encode it again."""
        if self.config.mode != "head":
            raise ValueError("predict_proba_from_embeddings needs a head-only classifier "
                             f"(this one fine-tuned its encoder: mode={self.config.mode!r})")
        return self._heads_proba(np.atleast_2d(np.asarray(embeddings, np.float32)) * _FEATURE_SCALE)

    def save(self, directory: str | Path) -> Path:
        """config.json + heads.safetensors; + encoder.safetensors only if the encoder was
        trained; + probes.safetensors when a probe is blended in."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.heads.state_dict().items()}, str(d / HEADS_FILE))
        if self.config.mode != "head":
            save_model(self.encoder.transformer, str(d / ENCODER_FILE))
        if self.probes:
            tensors = {}
            for h, (w, b) in self.probes.items():
                tensors[f"{h}.weight"], tensors[f"{h}.bias"] = torch.from_numpy(w), torch.from_numpy(b)
            save_file(tensors, str(d / PROBES_FILE))
        cfg = asdict(self.config)
        (d / CONFIG_FILE).write_text(json.dumps(
            {"kind": "encoder_classifier", "config": cfg, "encoder_finetuned": self.config.mode != "head"}, indent=2))
        return d

    @classmethod
    def load(cls, directory: str | Path) -> EncoderClassifier:
        d = Path(directory)
        meta = json.loads((d / CONFIG_FILE).read_text())
        config = ClassifierConfig.from_dict(meta["config"])
        model = cls(config)
        if meta.get("encoder_finetuned"):
            load_model(model.encoder.transformer, str(d / ENCODER_FILE))
        model.heads.load_state_dict(load_file(str(d / HEADS_FILE)))
        if (d / PROBES_FILE).exists():
            t = load_file(str(d / PROBES_FILE))
            model.probes = {h: (t[f"{h}.weight"].numpy(), t[f"{h}.bias"].numpy()) for h in config.heads
                            if f"{h}.weight" in t}
        model.eval()
        return model


# -- loaders -------------------------------------------------------------------
def _token_loader(encoder: SentenceEncoder, texts, y, batch_size: int, shuffle: bool, max_tokens: int,
                  bucket: bool, seed: int) -> DataLoader:
    """Texts tokenised once; each batch padded to its own longest row (dynamic padding)."""
    ids = encoder.tokenizer([t or " " for t in texts], truncation=True, max_length=max_tokens)["input_ids"]
    pad = encoder.tokenizer.pad_token_id or 0

    def collate(rows):
        input_ids, mask = pad_token_rows([r[0] for r in rows], pad)
        return {"input_ids": input_ids, "attention_mask": mask, "labels": torch.stack([r[1] for r in rows])}

    ds = TextDataset(ids, y)
    if bucket:
        sampler = R.LengthBuckets([len(s) for s in ids], batch_size, shuffle=shuffle, seed=seed)
        return DataLoader(ds, batch_sampler=sampler, collate_fn=collate)
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, collate_fn=collate)


def _feature_loader(feats: np.ndarray, y: torch.Tensor, batch_size: int, shuffle: bool) -> DataLoader:
    ds = TensorDataset(torch.from_numpy(feats), y)
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle,
                      collate_fn=lambda rows: {"features": torch.stack([r[0] for r in rows]),
                                               "labels": torch.stack([r[1] for r in rows])})


# -- training ------------------------------------------------------------------
def train_classifier(
    texts: Sequence[str],
    labels: Labels | Sequence[str | None],
    config: ClassifierConfig,
    train_config: TrainConfig | None = None,
    val_texts: Sequence[str] | None = None,
    val_labels: Labels | Sequence[str | None] | None = None,
    on_progress: ProgressFn | None = None,
    min_steps: int | None = None,
    contrastive: ContrastiveConfig | None = None,
) -> tuple[EncoderClassifier, dict[str, float]]:
    """Train an EncoderClassifier with the recipe; returns it with its validation metrics.

    ``train_config`` defaults to ``recipe.finetune_train_config(config.mode)``. In
    top/full mode the epochs are raised until training makes ``min_steps`` optimiser
    steps (default: ``recipe.MIN_STEPS`` with the recipe's config, 0 with a given one).
    Without ``val_texts`` a stratified 10% of the data is held out (when there are at
    least 20 rows). ``on_progress(pct, msg)`` is called every step; raising from it
    cancels training (nothing is returned or saved). In contrastive mode ``contrastive``
    overrides ``recipe.contrastive_config()`` (its seed is ``train_config``'s)."""
    tc = train_config or R.finetune_train_config(config.mode)
    texts = list(texts)
    labels = as_labels(labels, config.heads)
    heads = resolve_heads(config.heads, labels, len(texts))
    config = ClassifierConfig.from_dict({**asdict(config), "heads": heads, "blend": {}, "probe_c": {}})
    if val_texts is None and len(texts) >= 20:
        tr, va = holdout({h: list(labels.get(h, [None] * len(texts))) for h in heads}, tc.seed)
        val_texts = [texts[i] for i in va]
        val_labels = {h: [list(v)[i] for i in va] for h, v in labels.items()}
        texts = [texts[i] for i in tr]
        labels = {h: [list(v)[i] for i in tr] for h, v in labels.items()}
    y = encode_labels(labels, heads, len(texts))
    if (y == IGNORE).all():
        raise ClassifierError("no row has a label for any head")
    val_y = None
    if val_texts is not None:
        val_texts = list(val_texts)
        val_y = encode_labels(as_labels(val_labels or {}, heads), heads, len(val_texts))
        if not len(val_texts):
            val_texts, val_y = None, None
    weights = class_weights(y, heads, config.max_class_weight) if config.class_weights else None
    if tc.monitor != "val_loss" and val_texts is None:
        from dataclasses import replace

        tc = replace(tc, monitor="train_loss", mode="min")

    if config.mode == "contrastive":
        return _train_contrastive(texts, labels, y, val_texts, val_labels, val_y, heads, config, tc, on_progress,
                                  contrastive)
    set_seed(tc.seed)  # the heads' initial weights are part of a repeatable run
    model = EncoderClassifier(config)
    smoothing = 0.0
    if config.mode == "head":
        progress = tc.progress_bar
        train_loader = _feature_loader(frozen_features(texts, config.max_tokens, config.feature_cache_dir, progress),
                                       y, tc.batch_size, shuffle=True)
        val_loader = (_feature_loader(frozen_features(val_texts, config.max_tokens, config.feature_cache_dir,
                                                      progress), val_y, tc.batch_size, shuffle=False)
                      if val_texts is not None else None)
        groups = None
    else:
        from dataclasses import replace

        smoothing = config.label_smoothing
        if min_steps is None:
            min_steps = R.MIN_STEPS if train_config is None else 0
        tc = replace(tc, epochs=R.epochs_for(len(texts), tc.batch_size, tc.epochs, min_steps))
        train_loader = _token_loader(model.encoder, texts, y, tc.batch_size, True, config.max_tokens,
                                     config.bucket_by_length, tc.seed)
        val_loader = (_token_loader(model.encoder, val_texts, val_y, 64, False, config.max_tokens,
                                    config.bucket_by_length, tc.seed) if val_texts is not None else None)
        groups = [{"params": list(model.heads.parameters())},
                  *R.layerwise_groups(model.encoder.transformer, tc.lr * config.encoder_lr_scale,
                                      config.layer_decay)]

    def loss_fn(m, b):
        return multihead_loss(m(**{k: v for k, v in b.items() if k != "labels"}), b["labels"], weights, smoothing)

    trainer = Trainer(model, tc, loss_fn=loss_fn, eval_fn=make_eval_fn(heads, weights, smoothing),
                      on_progress=on_progress, param_groups=groups)
    result = trainer.fit(train_loader, val_loader)
    model.eval()
    model.history = result.history  # per-epoch metrics, for charts; not saved with the weights
    out = summary(result, len(texts), len(val_texts or []))
    out["mode"] = config.mode
    out["epochs"] = tc.epochs
    if config.mode != "head" and config.blend_probe and val_texts is not None:
        out.update(_fit_probes(model, texts, labels, val_texts, val_labels, heads, tc.seed, on_progress))
    return model, out


def _joint_classes(y: torch.Tensor) -> list[int]:
    """One class id per row for the contrastive pairs: the row's labels over all heads
    taken together (one head: its label); -1 for a row with no label."""
    ids: dict[tuple[int, ...], int] = {}
    out = []
    for row in y.tolist():
        if all(v == IGNORE for v in row):
            out.append(-1)
        else:
            out.append(ids.setdefault(tuple(row), len(ids)))
    return out


def _set_linear_head(model: EncoderClassifier, head: str, weight: np.ndarray, bias: np.ndarray) -> None:
    # The head reads unit vectors x _FEATURE_SCALE; the regression was fitted on unit vectors.
    linear = model.heads[head][-1]
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(weight / _FEATURE_SCALE))
        linear.bias.copy_(torch.from_numpy(bias))


def _train_contrastive(texts, labels: Labels, y: torch.Tensor, val_texts, val_labels, val_y, heads, config,
                       tc: TrainConfig, on_progress: ProgressFn | None, cc: ContrastiveConfig | None):
    """SetFit: contrastive tuning of the encoder on the training rows, then per head a
    logistic regression on the tuned vectors, its C chosen on the validation rows, the
    frozen-feature probe blended in when validation says so; finally head and probe are
    refitted on train + validation with the chosen settings (validation rows never
    reach the encoder's tuning)."""
    from dataclasses import replace

    config.hidden = 0  # each head is the linear regression
    set_seed(tc.seed)
    model = EncoderClassifier(config)
    cc = replace(cc or R.contrastive_config(), seed=tc.seed, max_tokens=config.max_tokens,
                 progress_bar=tc.progress_bar)
    report = (lambda pct, msg: on_progress(0.9 * pct, f"contrastive pairs: {msg}")) if on_progress else None
    result = contrastive_finetune(model.encoder, texts, _joint_classes(y), cc, report)
    model.eval()
    if on_progress:
        on_progress(90.0, "fitting the regression on the tuned vectors")
    f_tr = _encode_with(model.encoder, texts, config.max_tokens) / _FEATURE_SCALE
    f_va = _encode_with(model.encoder, val_texts, config.max_tokens) / _FEATURE_SCALE if val_texts else None
    y_tr = y.numpy()
    y_va = val_y.numpy() if val_y is not None else None
    out: dict[str, Any] = {"train_loss": float(result.history[-1]["train_loss"]) if result.history else 0.0,
                           "steps": result.steps, "wall_s": round(result.wall_s, 3), "n_train": len(texts),
                           "n_val": len(val_texts or []), "mode": "contrastive", "epochs": 1, "best_epoch": 1,
                           "epochs_run": 1, "contrastive_lr": cc.lr, "contrastive_passes_per_row": cc.passes_per_row}
    chosen_c: dict[str, float] = {}
    for j, (h, names) in enumerate(heads.items()):
        m_tr = y_tr[:, j] != IGNORE
        if len(set(y_tr[m_tr, j].tolist())) < 2:
            raise ClassifierError(f"head {h!r} needs training rows of at least two labels")
        m_va = y_va[:, j] != IGNORE if y_va is not None else None
        scores, best = {}, None
        grid = R.PROBE_C_GRID if m_va is not None and m_va.any() else (R.HEAD_C_DEFAULT,)
        for c in grid:
            w, b = R.fit_probe(f_tr[m_tr], y_tr[m_tr, j], len(names), c, tc.seed)
            if m_va is not None and m_va.any():
                p = R.probe_proba(f_va[m_va], w, b)
                key = (float((p.argmax(1) == y_va[m_va, j]).mean()), -R.log_loss(p, y_va[m_va, j]))
                scores[f"{c:g}"] = round(key[0], 4)
            else:
                key = (0.0, 0.0)
            if best is None or key > best[0]:
                best = (key, c, w, b)
        _, chosen_c[h], w, b = best
        _set_linear_head(model, h, w, b)
        out[f"{h}/head_c"] = chosen_c[h]
        if scores:
            out[f"{h}/val_accuracy_by_head_c"] = scores
    if val_texts:
        val_metrics = evaluate_logits(model.tuned_proba(val_texts), y_va, heads)
        out.update({f"{k.split('/')[0]}/val_{k.split('/')[1]}" if "/" in k else f"val_{k}": v
                    for k, v in val_metrics.items()})
        if config.blend_probe:
            out.update(_fit_probes(model, texts, labels, val_texts, val_labels, heads, tc.seed, on_progress))
        # Validation has chosen; the head now learns from its rows too.
        for j, (h, names) in enumerate(heads.items()):
            x_all = np.concatenate([f_tr[y_tr[:, j] != IGNORE], f_va[y_va[:, j] != IGNORE]])
            y_all = np.concatenate([y_tr[y_tr[:, j] != IGNORE, j], y_va[y_va[:, j] != IGNORE, j]])
            _set_linear_head(model, h, *R.fit_probe(x_all, y_all, len(names), chosen_c[h], tc.seed))
    model.history = result.history
    return model, out


def _fit_probes(model: EncoderClassifier, texts, labels: Labels, val_texts, val_labels, heads, seed: int,
                on_progress: ProgressFn | None) -> dict[str, Any]:
    """Per head: C of a frozen-feature LR probe and the blend weight, both on validation;
    then the probe is refitted on train + validation with that C."""
    if on_progress:
        on_progress(100.0, "fitting the frozen-feature probe")
    val_labels = as_labels(val_labels or {}, heads)
    f_tr = frozen_features(texts, PROBE_MAX_TOKENS) / _FEATURE_SCALE
    f_va = frozen_features(val_texts, PROBE_MAX_TOKENS) / _FEATURE_SCALE
    tuned_val = model.tuned_proba(val_texts)
    y_tr = encode_labels(labels, heads, len(texts)).numpy()
    y_va = encode_labels(val_labels, heads, len(val_texts)).numpy()
    out: dict[str, Any] = {}
    for j, (h, names) in enumerate(heads.items()):
        m_tr, m_va = y_tr[:, j] != IGNORE, y_va[:, j] != IGNORE
        if len(set(y_tr[m_tr, j].tolist())) < 2 or not m_va.any():
            continue
        scores = {}
        best = None
        for c in R.PROBE_C_GRID:
            w, b = R.fit_probe(f_tr[m_tr], y_tr[m_tr, j], len(names), c, seed)
            p = R.probe_proba(f_va[m_va], w, b)
            acc = float((p.argmax(1) == y_va[m_va, j]).mean())
            scores[f"{c:g}"] = round(acc, 4)
            if best is None or acc > best[0]:
                best = (acc, c, p)
        acc_probe, c, p_probe = best
        blend, blend_scores = R.choose_blend(tuned_val[h][m_va], p_probe, y_va[m_va, j])
        model.config.blend[h], model.config.probe_c[h] = blend, c
        if blend < 1.0:
            x_all = np.concatenate([f_tr[m_tr], f_va[m_va]])
            y_all = np.concatenate([y_tr[m_tr, j], y_va[m_va, j]])
            model.probes[h] = R.fit_probe(x_all, y_all, len(names), c, seed)
        out[f"{h}/val_accuracy_tuned"] = round(float((tuned_val[h][m_va].argmax(1) == y_va[m_va, j]).mean()), 4)
        out[f"{h}/val_accuracy_probe"] = round(acc_probe, 4)
        out[f"{h}/probe_c"] = c
        out[f"{h}/blend_weight"] = blend
        out[f"{h}/val_accuracy_by_blend"] = blend_scores
        out[f"{h}/val_accuracy_by_probe_c"] = scores
    return out


def load_classifier(directory: str | Path):
    """Either kind, from the "kind" recorded in config.json."""
    kind = json.loads((Path(directory) / CONFIG_FILE).read_text()).get("kind")
    if kind == "bigru_classifier":
        return BiGRUClassifier.load(directory)
    if kind == "encoder_classifier":
        return EncoderClassifier.load(directory)
    raise ClassifierError(f"{directory} holds no classifier (kind={kind!r})")


from aigc_core.models.bigru_classifier import (  # noqa: E402  (re-export; the baseline imports nothing from here)
    BiGRUClassifier,
    BiGRUConfig,
    train_bigru_classifier,
)
