"""The from-scratch baseline the encoder must beat: the seed's Embedding -> BiGRU ->
Dense, one linear layer per head, on a byte-level BPE vocabulary learnt from the
training texts. Trains through the one Trainer; the same predict / save / load
contract as ``EncoderClassifier``.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader

from aigc_core.data.tokenizer import SubwordTokenizer, train_tokenizer
from aigc_core.device import get_device
from aigc_core.models.multihead import (
    Labels,
    ProgressFn,
    TextDataset,
    as_labels,
    class_weights,
    encode_labels,
    holdout,
    make_eval_fn,
    multihead_loss,
    resolve_heads,
    summary,
    top_labels,
)
from aigc_core.training import TrainConfig, Trainer, set_seed

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


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
        return top_labels(self.predict_proba(texts, batch_size), self.config.heads)

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
    labels = as_labels(labels, config.heads)
    heads = resolve_heads(config.heads, labels, len(texts))
    if val_texts is None and len(texts) >= 20:
        tr, va = holdout({h: list(labels.get(h, [None] * len(texts))) for h in heads}, tc.seed)
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

        return DataLoader(TextDataset(txts, ys), batch_size=tc.batch_size, shuffle=shuffle, collate_fn=collate)

    val_loader = None
    if val_texts is not None:
        val_texts = list(val_texts)
        val_loader = loader(val_texts, encode_labels(as_labels(val_labels or {}, heads), heads, len(val_texts)),
                            False)
    trainer = Trainer(model, tc, loss_fn=lambda m, b: multihead_loss(m(b["input_ids"], b["lengths"]),
                                                                     b["labels"], weights),
                      eval_fn=make_eval_fn(heads, weights), on_progress=on_progress)
    result = trainer.fit(loader(texts, y, True), val_loader)
    model.eval()
    model.history = result.history
    return model, summary(result, len(texts), len(val_texts or []))
