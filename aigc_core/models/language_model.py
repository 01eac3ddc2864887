"""Neural language models trained from scratch on a corpus, read top to bottom.

Two families share one config, one save format and one training function:

- ``GRULanguageModel``: the seed's Embedding -> GRU -> Dense.
- ``TransformerLanguageModel``: a small causal Transformer in the nanoGPT mould
  (pre-norm blocks, learned positions, output layer tied to the embeddings).

Both map token ids (B, T) to next-token logits (B, T, V) and expose
``next_token_logits(context_ids)``, which is all ``aigc_core.generation`` needs.
Token ids come from the subword tokenizer trained by ``aigc_core.data``; the
tokenizer travels with the model (``tokenizer.json`` next to the weights).
"""
from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader

from aigc_core.generation.codec import TextCodec, as_codec, load_tokenizer, save_tokenizer
from aigc_core.training import TrainConfig, Trainer, metrics

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"
FAMILIES = ("gru", "transformer")


@dataclass
class LanguageModelConfig:
    family: str = "transformer"  # "gru" (the seed's Embedding -> GRU -> Dense) | "transformer"
    vocab_size: int = 4000  # overwritten from the tokenizer by train_language_model
    block_size: int = 128  # longest context in tokens; generation keeps only the last block_size
    d_model: int = 192  # embedding width; also the GRU's hidden size
    n_layers: int = 2  # GRU layers or Transformer blocks
    n_heads: int = 4  # attention heads (transformer only); must divide d_model
    dropout: float = 0.1  # on embeddings, attention and MLP outputs / between GRU layers
    eos_token_id: int | None = None  # ends each training text and stops generation; from the tokenizer

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, not {self.family!r}")
        if self.family == "transformer" and self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LanguageModelConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class _LanguageModelBase(nn.Module):
    """Shared by both families: next-token logits, save/load, the tokenizer slot."""

    config: LanguageModelConfig
    tokenizer: Any = None  # set by train_language_model / load; saved as tokenizer.json

    @property
    def eos_token_id(self) -> int | None:
        return self.config.eos_token_id

    @torch.no_grad()
    def next_token_logits(self, context_ids: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids -> (B, V) float32 logits for the token after each row."""
        if context_ids.dim() == 1:
            context_ids = context_ids.unsqueeze(0)
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        eos = self.config.eos_token_id
        if eos is not None or context_ids.size(1) == 0:
            # In training every text follows an EOS, so a leading EOS says "a text starts here"
            # (and gives an empty prompt something to condition on).
            start = torch.full((context_ids.size(0), 1), eos if eos is not None else 0, dtype=torch.long)
            context_ids = torch.cat([start, context_ids.cpu().long()], dim=1)
        ids = context_ids[:, -self.config.block_size :].to(device)
        logits = self(ids)[:, -1, :].float()
        self.train(was_training)
        return logits

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def save(self, directory: str | Path) -> Path:
        """model.safetensors + config.json (+ tokenizer.json when a tokenizer is attached)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        # Tied weights share storage, which safetensors refuses; the tie is rebuilt on load.
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items() if k != "lm_head.weight"}
        save_file(state, str(directory / WEIGHTS_FILE))
        (directory / CONFIG_FILE).write_text(json.dumps({"kind": "language_model", **asdict(self.config)}, indent=2))
        if self.tokenizer is not None:
            save_tokenizer(self.tokenizer, directory / TOKENIZER_FILE)
        return directory

    @classmethod
    def load(cls, directory: str | Path, map_location: str | torch.device = "cpu") -> _LanguageModelBase:
        return load_language_model(directory, map_location)


class GRULanguageModel(_LanguageModelBase):
    """The seed's language model: Embedding -> GRU -> Dense over the vocabulary."""

    def __init__(self, config: LanguageModelConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.drop = nn.Dropout(config.dropout)
        self.gru = nn.GRU(
            config.d_model,
            config.d_model,
            num_layers=config.n_layers,
            batch_first=True,
            dropout=config.dropout if config.n_layers > 1 else 0.0,
        )
        self.head = nn.Linear(config.d_model, config.vocab_size)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        # ids: (B, T) -> logits (B, T, V)
        x = self.drop(self.embed(ids))  # (B, T, C)
        h, _ = self.gru(x)  # (B, T, C): hidden state after each token
        return self.head(self.drop(h))  # (B, T, V)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: LanguageModelConfig):
        super().__init__()
        self.n_heads = config.n_heads
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = nn.Linear(config.d_model, config.d_model)
        self.dropout = config.dropout
        self.resid_drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # 3 x (B, T, C)
        # (B, T, C) -> (B, nh, T, hs)
        q, k, v = (t.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.resid_drop(self.proj(y))


class Block(nn.Module):
    """Pre-norm: x + attn(ln(x)), then x + mlp(ln(x)); trains stably without warm-up tricks."""

    def __init__(self, config: LanguageModelConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.d_model)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(config.d_model, 4 * config.d_model),
            nn.GELU(),
            nn.Linear(4 * config.d_model, config.d_model),
            nn.Dropout(config.dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))  # (B, T, C)
        return x + self.mlp(self.ln2(x))  # (B, T, C)


class TransformerLanguageModel(_LanguageModelBase):
    """A small GPT: token + learned position embeddings, pre-norm blocks, tied output."""

    def __init__(self, config: LanguageModelConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.d_model)
        self.wpe = nn.Embedding(config.block_size, config.d_model)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(config.d_model)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        # Tying input and output embeddings saves V*C parameters and helps small corpora.
        self.lm_head.weight = self.wte.weight
        self.apply(self._init_weights)
        # GPT-2's scaled init of residual projections keeps the residual stream's variance flat.
        for name, p in self.named_parameters():
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        # ids: (B, T) with T <= block_size -> logits (B, T, V)
        B, T = ids.shape
        if T > self.config.block_size:
            raise ValueError(f"sequence of {T} tokens exceeds block_size {self.config.block_size}")
        pos = torch.arange(T, device=ids.device)  # (T,)
        x = self.drop(self.wte(ids) + self.wpe(pos))  # (B, T, C)
        for block in self.blocks:
            x = block(x)  # (B, T, C)
        return self.lm_head(self.ln_f(x))  # (B, T, V)


LanguageModel = GRULanguageModel | TransformerLanguageModel


def build_language_model(config: LanguageModelConfig) -> LanguageModel:
    return GRULanguageModel(config) if config.family == "gru" else TransformerLanguageModel(config)


def load_language_model(directory: str | Path, map_location: str | torch.device = "cpu") -> LanguageModel:
    """Rebuild a model from its config.json and weights; attaches tokenizer.json if present."""
    directory = Path(directory)
    if not (directory / CONFIG_FILE).exists():
        raise FileNotFoundError(f"{directory} has no {CONFIG_FILE}: not a saved language model")
    config = LanguageModelConfig.from_dict(json.loads((directory / CONFIG_FILE).read_text()))
    model = build_language_model(config)
    state = load_file(str(directory / WEIGHTS_FILE), device=str(map_location))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if k != "lm_head.weight"]:
        raise ValueError(f"{directory}: weights do not match the config (missing {missing}, unexpected {unexpected})")
    if (directory / TOKENIZER_FILE).exists():
        model.tokenizer = load_tokenizer(directory / TOKENIZER_FILE)
    return model.eval()


# -- data --------------------------------------------------------------------------------


def token_stream(texts: Sequence[str], codec: TextCodec, eos_token_id: int | None) -> list[int]:
    """All texts as one id stream, each closed by EOS so the model learns where texts end."""
    ids: list[int] = []
    for text in texts:
        ids.extend(codec.encode(text))
        if eos_token_id is not None:
            ids.append(eos_token_id)
    return ids


def lm_blocks(stream: Sequence[int], block_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Cut the stream into (input, target) pairs shifted by one, block_size tokens each.

    The last, shorter block is padded; padded targets are -100 so the loss skips them.
    """
    pairs = []
    for start in range(0, max(1, len(stream) - 1), block_size):
        chunk = list(stream[start : start + block_size + 1])
        if len(chunk) < 2:
            break
        x, y = chunk[:-1], chunk[1:]
        pad = block_size - len(x)
        pairs.append(
            (torch.tensor(x + [0] * pad, dtype=torch.long), torch.tensor(y + [-100] * pad, dtype=torch.long))
        )
    return pairs


def lm_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch  # (B, T), (B, T)
    logits = model(x)  # (B, T, V)
    return F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.view(-1), ignore_index=-100)


@torch.no_grad()
def evaluate_language_model(model: nn.Module, loader) -> dict[str, float]:
    """Token-weighted validation loss and perplexity (exp of the mean NLL per token)."""
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        logits = model(x)
        total += float(
            F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.view(-1), ignore_index=-100, reduction="sum")
        )
        count += int((y != -100).sum())
    val_loss = total / max(1, count)
    return {"val_loss": val_loss, "val_perplexity": metrics.perplexity(total, max(1, count))}


def language_model_perplexity(
    model: LanguageModel, texts: Sequence[str], tokenizer: Any = None, batch_size: int = 32
) -> dict[str, float]:
    """Held-out loss and perplexity of a trained model on ``texts`` (EOS-closed, as in training)."""
    codec = as_codec(tokenizer if tokenizer is not None else model.tokenizer)
    pairs = lm_blocks(token_stream(list(texts), codec, model.config.eos_token_id), model.config.block_size)
    if not pairs:
        raise ValueError("the texts tokenise to fewer than two tokens")
    was_training = model.training
    model.eval()
    try:
        out = evaluate_language_model(model, DataLoader(pairs, batch_size=batch_size))
    finally:
        model.train(was_training)
    return {"loss": out["val_loss"], "perplexity": out["val_perplexity"],
            "tokens": float(sum(int((y != -100).sum()) for _, y in pairs))}


def train_language_model(
    texts: Sequence[str],
    tokenizer: Any = None,
    config: LanguageModelConfig | None = None,
    train_config: TrainConfig | None = None,
    val_texts: Sequence[str] | None = None,
    on_progress: Callable[[float, str], None] | None = None,
) -> tuple[LanguageModel, dict[str, Any]]:
    """Train a GRU or Transformer LM with the one Trainer; returns (model, metrics).

    ``tokenizer``: a ``tokenizers.Tokenizer`` (or anything with encode/decode);
    when None, one is trained on ``texts`` with ``aigc_core.data.train_tokenizer``.
    ``val_texts``: when None and there are at least 10 texts, a seeded 10% is held out,
    so the reported perplexity is always measured on text the model did not train on
    (when possible). Metrics include ``val_perplexity`` and the per-epoch history.
    """
    config = config or LanguageModelConfig()
    train_config = train_config or TrainConfig()
    texts = [t for t in texts if t and t.strip()]
    if not texts:
        raise ValueError("train_language_model needs at least one non-empty text")
    if val_texts is None and len(texts) >= 10:
        shuffled = texts[:]
        random.Random(train_config.seed).shuffle(shuffled)
        n_val = max(1, len(texts) // 10)
        val_texts, texts = shuffled[:n_val], shuffled[n_val:]
    if tokenizer is None:
        from aigc_core.data import train_tokenizer

        tokenizer = train_tokenizer(texts, vocab_size=config.vocab_size)
    codec = as_codec(tokenizer)
    config.vocab_size = codec.vocab_size
    if config.eos_token_id is None:
        config.eos_token_id = codec.eos_token_id

    train_pairs = lm_blocks(token_stream(texts, codec, config.eos_token_id), config.block_size)
    if not train_pairs:
        raise ValueError("the training texts tokenise to fewer than two tokens")
    loader_gen = torch.Generator().manual_seed(train_config.seed)
    train_loader = DataLoader(train_pairs, batch_size=train_config.batch_size, shuffle=True, generator=loader_gen)
    val_loader = None
    if val_texts:
        val_pairs = lm_blocks(token_stream(list(val_texts), codec, config.eos_token_id), config.block_size)
        val_loader = DataLoader(val_pairs, batch_size=train_config.batch_size) if val_pairs else None

    torch.manual_seed(train_config.seed)  # the same seed builds the same initial weights
    model = build_language_model(config)
    model.tokenizer = tokenizer
    trainer = Trainer(
        model, train_config, loss_fn=lm_loss, eval_fn=evaluate_language_model, on_progress=on_progress
    )
    result = trainer.fit(train_loader, val_loader)
    model.eval()
    metrics_out: dict[str, Any] = {
        "family": config.family,
        "parameters": model.num_parameters(),
        "train_tokens": sum(int((y != -100).sum()) for _, y in train_pairs),
        "best_epoch": result.best_epoch,
        "steps": result.steps,
        "wall_s": result.wall_s,
        "history": result.history,
        **{k: v for k, v in result.best_metrics.items() if k != "epoch"},
    }
    return model, metrics_out
