"""Text classifiers with one or more heads (e.g. topic and sentiment at once).

- ``EncoderClassifier``: the shipped MiniLM encoder + one small head per task.
  Modes trade speed for accuracy:
    head  frozen encoder; its features are computed once, cached by data hash,
          and only the heads train (seconds on a CPU);
    top   the top ``top_layers`` transformer layers train with the heads;
    full  every encoder weight trains.
- ``BiGRUClassifier``: the seed's Embedding -> BiGRU -> Dense, trained from
  scratch on a byte-level BPE vocabulary: the baseline the encoder must beat.

Both train through the one Trainer via ``train_classifier`` /
``train_bigru_classifier`` and share ``predict_proba`` / ``predict`` /
``save`` / ``load``. Labels are given per head; ``None`` means "no label for
this head" and is masked out of that head's loss, so one data set can mix
rows labelled for different tasks.
"""
from __future__ import annotations

import collections
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from aigc_core.data.records import dataset_hash
from aigc_core.data.splits import stratified_split
from aigc_core.data.tokenizer import SubwordTokenizer, train_tokenizer
from aigc_core.device import autocast, get_device
from aigc_core.retrieval.encoder import MAX_TOKENS, SentenceEncoder, shared_encoder
from aigc_core.training import TrainConfig, Trainer, metrics, set_seed

CONFIG_FILE = "config.json"
HEADS_FILE = "heads.safetensors"
ENCODER_FILE = "encoder.safetensors"
WEIGHTS_FILE = "model.safetensors"
IGNORE = -100  # label id for "no label for this head"; F.cross_entropy's ignore_index
MODES = ("head", "top", "full")

Labels = dict[str, Sequence[str | None]]
ProgressFn = Callable[[float, str], None]


class ClassifierError(ValueError):
    """Bad classifier input: unknown head or label, mismatched lengths, no labelled rows."""


@dataclass
class ClassifierConfig:
    heads: dict[str, list[str]] = field(default_factory=dict)  # head -> labels; [] = learn them from the data
    mode: str = "head"  # head | top | full (see the module docstring)
    top_layers: int = 2  # transformer layers trained in "top" mode (MiniLM has 6)
    hidden: int = 256  # width of each head's hidden layer; 0 = a single linear layer
    dropout: float = 0.1
    class_weights: bool = True  # weight each class by inverse frequency, so rare classes count
    max_class_weight: float = 10.0  # cap, so a class seen twice does not swamp the loss
    max_tokens: int = MAX_TOKENS  # longer texts are truncated
    encoder_lr_scale: float = 0.1  # encoder LR = this x the heads' LR in top/full mode
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


# -- shared pieces ---------------------------------------------------------
def make_head(in_dim: int, n_labels: int, hidden: int, dropout: float) -> nn.Module:
    if hidden <= 0:
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, n_labels))
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, hidden), nn.GELU(),
                         nn.Dropout(dropout), nn.Linear(hidden, n_labels))


def _resolve_heads(config_heads: dict[str, list[str]], labels: Labels, n: int) -> dict[str, list[str]]:
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
                   weights: list[torch.Tensor] | None) -> torch.Tensor:
    """Sum over heads of cross-entropy on the rows labelled for that head."""
    total = None
    for j, out in enumerate(logits.values()):
        target = y[:, j]
        if not (target != IGNORE).any():
            continue  # no label for this head in the batch: a mean over nothing would be NaN
        w = weights[j].to(out.device) if weights else None
        loss = F.cross_entropy(out.float(), target, weight=w, ignore_index=IGNORE)
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


def _make_eval_fn(heads: dict[str, list[str]], weights: list[torch.Tensor] | None):
    def eval_fn(model: nn.Module, loader) -> dict[str, float]:
        device = next(model.parameters()).device
        all_logits: dict[str, list[np.ndarray]] = {h: [] for h in heads}
        ys, total, count = [], 0.0, 0
        for batch in loader:
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            logits = model(**{k: v for k, v in batch.items() if k != "labels"})
            total += float(multihead_loss(logits, batch["labels"], weights)) * len(batch["labels"])
            count += len(batch["labels"])
            for h in heads:
                all_logits[h].append(logits[h].float().cpu().numpy())
            ys.append(batch["labels"].cpu().numpy())
        res = evaluate_logits({h: np.concatenate(v) for h, v in all_logits.items()}, np.concatenate(ys), heads)
        return {"val_loss": total / max(1, count), **res}

    return eval_fn


def _as_labels(labels: Labels | Sequence[str | None], heads: dict[str, list[str]]) -> Labels:
    if isinstance(labels, dict):
        return labels
    if len(heads) != 1:
        raise ClassifierError("with several heads, labels must be a dict of head -> label list")
    return {next(iter(heads)): list(labels)}


def _holdout(texts: Sequence[str], labels: Labels, seed: int) -> tuple[list[int], list[int]]:
    """10% stratified validation rows on the first head, used when the caller gives none."""
    from aigc_core.data.records import TextRecord

    recs = [TextRecord(str(i), t, {h: labels[h][i] for h in labels}) for i, t in enumerate(texts)]
    train, val, _ = stratified_split(recs, next(iter(labels), None), val_ratio=0.1, seed=seed)
    return [int(r.id) for r in train], [int(r.id) for r in val]


def _summary(result, n_train: int, n_val: int) -> dict[str, float]:
    flat = {k: float(v) for k, v in result.best_metrics.items() if isinstance(v, (int, float)) and k != "lr"}
    flat.pop("epoch", None)
    return {**flat, "best_epoch": result.best_epoch, "epochs_run": len(result.history),
            "steps": result.steps, "wall_s": round(result.wall_s, 3), "n_train": n_train, "n_val": n_val}


def _predict(proba: dict[str, np.ndarray], heads: dict[str, list[str]]) -> dict[str, list[tuple[str, float]]]:
    out = {}
    for head, p in proba.items():
        idx = p.argmax(-1)
        out[head] = [(heads[head][i], float(p[r, i])) for r, i in enumerate(idx)]
    return out


# -- encoder classifier ----------------------------------------------------
# Unit-length MiniLM vectors have per-dimension values near 1/sqrt(384); scaling
# by sqrt(dim) gives the heads inputs of unit RMS, which their default init expects.
_FEATURE_SCALE = math.sqrt(384)
_FEATURE_CACHE: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()
_FEATURE_CACHE_SIZE = 8  # data sets kept in memory; each is N x 384 float32


def frozen_features(texts: Sequence[str], max_tokens: int = MAX_TOKENS, cache_dir: str | Path | None = None,
                    progress: bool = False) -> np.ndarray:
    """Shipped-encoder features (N, 384), cached in memory (and on disk) by data hash."""
    key = f"minilm-{max_tokens}-{dataset_hash(texts)[:32]}"
    if key in _FEATURE_CACHE:
        _FEATURE_CACHE.move_to_end(key)
        return _FEATURE_CACHE[key]
    path = Path(cache_dir) / f"{key}.npy" if cache_dir else None
    if path is not None and path.exists():
        feats = np.load(path)
    else:
        enc = shared_encoder()
        feats = _encode_with(enc, texts, max_tokens, progress)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npy")
            np.save(tmp, feats)
            os.replace(tmp, path)
    _FEATURE_CACHE[key] = feats
    while len(_FEATURE_CACHE) > _FEATURE_CACHE_SIZE:
        _FEATURE_CACHE.popitem(last=False)
    return feats


@torch.no_grad()
def _encode_with(encoder: SentenceEncoder, texts: Sequence[str], max_tokens: int, progress: bool = False,
                 batch_size: int = 64) -> np.ndarray:
    """Normalised, scaled sentence vectors from ``encoder`` (frozen or fine-tuned)."""
    device = get_device()
    encoder.to(device.device)
    was_training = encoder.training
    encoder.eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths pad less
    chunks = []
    starts = range(0, len(order), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="features", unit="batch", leave=False)
    for s in starts:
        idx = order[s : s + batch_size]
        batch = encoder.tokenize([texts[i] or " " for i in idx], max_tokens=max_tokens)
        with autocast(device):
            vec = encoder(batch["input_ids"].to(device.device), batch["attention_mask"].to(device.device))
        chunks.append((F.normalize(vec.float(), dim=-1) * _FEATURE_SCALE).cpu().numpy())
    encoder.train(was_training)
    if not chunks:
        return np.zeros((0, encoder.dim), dtype=np.float32)
    stacked = np.concatenate(chunks).astype(np.float32)
    out = np.empty_like(stacked)
    out[order] = stacked
    return out


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

    def _set_trainable(self) -> None:
        mode = self.config.mode
        for p in self.encoder.parameters():
            p.requires_grad_(mode == "full")
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

    @torch.no_grad()
    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> dict[str, np.ndarray]:
        texts = list(texts)
        feats = _encode_with(self.encoder, texts, self.config.max_tokens, batch_size=batch_size)
        device = get_device()
        self.heads.to(device.device)
        was_training = self.training
        self.eval()
        x = torch.from_numpy(feats).to(device.device)
        with autocast(device):
            logits = {h: head(x) for h, head in self.heads.items()}
        self.train(was_training)
        return {h: torch.softmax(v.float(), -1).cpu().numpy() for h, v in logits.items()}

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> dict[str, list[tuple[str, float]]]:
        return _predict(self.predict_proba(texts, batch_size), self.config.heads)

    @torch.no_grad()
    def predict_proba_from_embeddings(self, embeddings: np.ndarray) -> dict[str, np.ndarray]:
        """Head-mode only: class probabilities from L2-normalised shipped-encoder
        vectors (``retrieval.encoder.encode``), so a caller that already embedded
        a text for retrieval need not encode it again."""
        if self.config.mode != "head":
            raise ValueError("predict_proba_from_embeddings needs a head-only classifier "
                             f"(this one fine-tuned its encoder: mode={self.config.mode!r})")
        x = torch.from_numpy(np.atleast_2d(np.asarray(embeddings, np.float32)) * _FEATURE_SCALE)
        device = get_device()
        self.heads.to(device.device)
        was_training = self.training
        self.eval()
        with autocast(device):
            logits = {h: head(x.to(device.device)) for h, head in self.heads.items()}
        self.train(was_training)
        return {h: torch.softmax(v.float(), -1).cpu().numpy() for h, v in logits.items()}

    def save(self, directory: str | Path) -> Path:
        """config.json + heads.safetensors; + encoder.safetensors only if the encoder was trained."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.heads.state_dict().items()}, str(d / HEADS_FILE))
        if self.config.mode != "head":
            save_model(self.encoder.transformer, str(d / ENCODER_FILE))
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
        model.eval()
        return model


class _TextDataset(Dataset):
    def __init__(self, texts: Sequence[str], y: torch.Tensor):
        self.texts, self.y = list(texts), y

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int):
        return self.texts[i], self.y[i]


def _token_loader(encoder: SentenceEncoder, texts, y, batch_size: int, shuffle: bool, max_tokens: int):
    def collate(rows):
        batch = encoder.tokenize([t or " " for t, _ in rows], max_tokens=max_tokens)
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
                "labels": torch.stack([r[1] for r in rows])}

    return DataLoader(_TextDataset(texts, y), batch_size=batch_size, shuffle=shuffle, collate_fn=collate)


def _feature_loader(feats: np.ndarray, y: torch.Tensor, batch_size: int, shuffle: bool) -> DataLoader:
    ds = TensorDataset(torch.from_numpy(feats), y)
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle,
                      collate_fn=lambda rows: {"features": torch.stack([r[0] for r in rows]),
                                               "labels": torch.stack([r[1] for r in rows])})


def train_classifier(
    texts: Sequence[str],
    labels: Labels | Sequence[str | None],
    config: ClassifierConfig,
    train_config: TrainConfig | None = None,
    val_texts: Sequence[str] | None = None,
    val_labels: Labels | Sequence[str | None] | None = None,
    on_progress: ProgressFn | None = None,
) -> tuple[EncoderClassifier, dict[str, float]]:
    """Train an EncoderClassifier; returns it with its best validation metrics.

    Without ``val_texts`` a stratified 10% of the data is held out (when there are
    at least 20 rows) for early stopping and the reported metrics.
    """
    tc = train_config or TrainConfig()
    texts = list(texts)
    labels = _as_labels(labels, config.heads)
    heads = _resolve_heads(config.heads, labels, len(texts))
    config = ClassifierConfig.from_dict({**asdict(config), "heads": heads})
    if val_texts is None and len(texts) >= 20:
        tr, va = _holdout(texts, {h: list(labels.get(h, [None] * len(texts))) for h in heads}, tc.seed)
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
        val_y = encode_labels(_as_labels(val_labels or {}, heads), heads, len(val_texts))
    weights = class_weights(y, heads, config.max_class_weight) if config.class_weights else None

    set_seed(tc.seed)  # the heads' initial weights are part of a repeatable run
    model = EncoderClassifier(config)
    if config.mode == "head":
        progress = tc.progress_bar
        train_loader = _feature_loader(frozen_features(texts, config.max_tokens, config.feature_cache_dir, progress),
                                       y, tc.batch_size, shuffle=True)
        val_loader = (_feature_loader(frozen_features(val_texts, config.max_tokens, config.feature_cache_dir,
                                                      progress), val_y, tc.batch_size, shuffle=False)
                      if val_texts is not None else None)
        groups = None
    else:
        train_loader = _token_loader(model.encoder, texts, y, tc.batch_size, True, config.max_tokens)
        val_loader = (_token_loader(model.encoder, val_texts, val_y, tc.batch_size, False, config.max_tokens)
                      if val_texts is not None else None)
        groups = [{"params": model.heads.parameters()},
                  {"params": model.encoder_parameters(), "lr": tc.lr * config.encoder_lr_scale}]

    trainer = Trainer(model, tc, loss_fn=lambda m, b: multihead_loss(m(**{k: v for k, v in b.items()
                                                                              if k != "labels"}), b["labels"], weights),
                      eval_fn=_make_eval_fn(heads, weights), on_progress=on_progress, param_groups=groups)
    result = trainer.fit(train_loader, val_loader)
    model.eval()
    model.history = result.history  # per-epoch metrics, for charts; not saved with the weights
    return model, _summary(result, len(texts), len(val_texts or []))


# -- BiGRU baseline --------------------------------------------------------
@dataclass
class BiGRUConfig:
    heads: dict[str, list[str]] = field(default_factory=dict)  # as ClassifierConfig.heads
    vocab_size: int = 8000  # BPE vocabulary learnt from the training texts
    embed_dim: int = 128
    hidden: int = 128  # per direction; the Dense layer sees 2 x hidden
    layers: int = 1
    dropout: float = 0.2
    max_tokens: int = 128
    class_weights: bool = True
    max_class_weight: float = 10.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BiGRUConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class BiGRUClassifier(nn.Module):
    def __init__(self, config: BiGRUConfig, tokenizer: SubwordTokenizer):
        super().__init__()
        self.config, self.tokenizer = config, tokenizer
        self.embed = nn.Embedding(tokenizer.vocab_size, config.embed_dim, padding_idx=tokenizer.pad_id)
        self.gru = nn.GRU(config.embed_dim, config.hidden, num_layers=config.layers, batch_first=True,
                          bidirectional=True, dropout=config.dropout if config.layers > 1 else 0.0)
        self.dropout = nn.Dropout(config.dropout)
        self.heads = nn.ModuleDict({h: nn.Linear(2 * config.hidden, len(labels))
                                    for h, labels in config.heads.items()})

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        ids = [seq[: self.config.max_tokens] or [self.tokenizer.unk_id]
               for seq in self.tokenizer.encode_batch(list(texts))]
        lengths = torch.tensor([len(s) for s in ids])
        out = torch.full((len(ids), int(lengths.max()) if ids else 1), self.tokenizer.pad_id, dtype=torch.long)
        for i, s in enumerate(ids):
            out[i, : len(s)] = torch.tensor(s)
        return {"input_ids": out, "lengths": lengths}

    def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        # (B, T) ids, (B,) true lengths -> {head: (B, n_labels)}
        x = self.dropout(self.embed(input_ids))  # (B, T, E)
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, h = self.gru(packed)  # h: (layers * 2, B, H)
        final = self.dropout(torch.cat([h[-2], h[-1]], dim=-1))  # last layer, both directions: (B, 2H)
        return {name: head(final) for name, head in self.heads.items()}

    @torch.no_grad()
    def predict_proba(self, texts: Sequence[str], batch_size: int = 128) -> dict[str, np.ndarray]:
        device = get_device()
        self.to(device.device)
        was_training = self.training
        self.eval()
        chunks: dict[str, list[np.ndarray]] = {h: [] for h in self.config.heads}
        texts = list(texts)
        for s in range(0, len(texts), batch_size):
            batch = self.tokenize(texts[s : s + batch_size])
            logits = self(batch["input_ids"].to(device.device), batch["lengths"])
            for h, v in logits.items():
                chunks[h].append(torch.softmax(v.float(), -1).cpu().numpy())
        self.train(was_training)
        return {h: np.concatenate(v) if v else np.zeros((0, len(self.config.heads[h])), np.float32)
                for h, v in chunks.items()}

    def predict(self, texts: Sequence[str], batch_size: int = 128) -> dict[str, list[tuple[str, float]]]:
        return _predict(self.predict_proba(texts, batch_size), self.config.heads)

    def save(self, directory: str | Path) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}, str(d / WEIGHTS_FILE))
        self.tokenizer.save(d)
        (d / CONFIG_FILE).write_text(json.dumps({"kind": "bigru_classifier", "config": asdict(self.config)},
                                                indent=2))
        return d

    @classmethod
    def load(cls, directory: str | Path) -> BiGRUClassifier:
        d = Path(directory)
        meta = json.loads((d / CONFIG_FILE).read_text())
        model = cls(BiGRUConfig.from_dict(meta["config"]), SubwordTokenizer.load(d))
        model.load_state_dict(load_file(str(d / WEIGHTS_FILE)))
        model.eval()
        return model


def train_bigru_classifier(
    texts: Sequence[str],
    labels: Labels | Sequence[str | None],
    config: BiGRUConfig,
    train_config: TrainConfig | None = None,
    val_texts: Sequence[str] | None = None,
    val_labels: Labels | Sequence[str | None] | None = None,
    on_progress: ProgressFn | None = None,
    tokenizer: SubwordTokenizer | None = None,
) -> tuple[BiGRUClassifier, dict[str, float]]:
    """Learn a BPE vocabulary (unless given) and train the BiGRU baseline from scratch."""
    tc = train_config or TrainConfig()
    if not get_device().is_cuda and tc.amp:
        # CPU GRU kernels have no bf16 path: autocast would only add casts (measured 2x slower).
        tc = replace(tc, amp=False)
    texts = list(texts)
    labels = _as_labels(labels, config.heads)
    heads = _resolve_heads(config.heads, labels, len(texts))
    if val_texts is None and len(texts) >= 20:
        tr, va = _holdout(texts, {h: list(labels.get(h, [None] * len(texts))) for h in heads}, tc.seed)
        val_texts = [texts[i] for i in va]
        val_labels = {h: [list(v)[i] for i in va] for h, v in labels.items()}
        texts = [texts[i] for i in tr]
        labels = {h: [list(v)[i] for i in tr] for h, v in labels.items()}
    y = encode_labels(labels, heads, len(texts))
    tokenizer = tokenizer or train_tokenizer(texts, vocab_size=config.vocab_size)
    config = BiGRUConfig.from_dict({**asdict(config), "heads": heads, "vocab_size": tokenizer.vocab_size})
    weights = class_weights(y, heads, config.max_class_weight) if config.class_weights else None
    set_seed(tc.seed)
    model = BiGRUClassifier(config, tokenizer)

    def loader(txts, ys, shuffle):
        def collate(rows):
            return {**model.tokenize([t for t, _ in rows]), "labels": torch.stack([r[1] for r in rows])}

        return DataLoader(_TextDataset(txts, ys), batch_size=tc.batch_size, shuffle=shuffle, collate_fn=collate)

    val_loader = None
    if val_texts is not None:
        val_texts = list(val_texts)
        val_loader = loader(val_texts, encode_labels(_as_labels(val_labels or {}, heads), heads, len(val_texts)),
                            False)
    trainer = Trainer(model, tc, loss_fn=lambda m, b: multihead_loss(m(b["input_ids"], b["lengths"]),
                                                                     b["labels"], weights),
                      eval_fn=_make_eval_fn(heads, weights), on_progress=on_progress)
    result = trainer.fit(loader(texts, y, True), val_loader)
    model.eval()
    model.history = result.history
    return model, _summary(result, len(texts), len(val_texts or []))


def load_classifier(directory: str | Path) -> EncoderClassifier | BiGRUClassifier:
    """Either kind, from the "kind" recorded in config.json."""
    kind = json.loads((Path(directory) / CONFIG_FILE).read_text()).get("kind")
    if kind == "bigru_classifier":
        return BiGRUClassifier.load(directory)
    if kind == "encoder_classifier":
        return EncoderClassifier.load(directory)
    raise ClassifierError(f"{directory} holds no classifier (kind={kind!r})")
