"""Lets the decoders drive an ``NgramLanguageModel`` like a neural LM.

The adapter is both the model (``next_token_logits``) and its own codec: it maps
text to the n-gram's vocabulary indices, through a subword tokenizer when the
n-gram was fitted on token ids, or by whitespace when it was fitted on words.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from aigc_core.generation.codec import TextCodec, as_codec
from aigc_core.models.ngram import NgramLanguageModel


class NgramAdapter:
    def __init__(self, lm: NgramLanguageModel, tokenizer: Any = None):
        self.lm = lm
        tokenizer = tokenizer if tokenizer is not None else lm.tokenizer
        self.subword: TextCodec | None = as_codec(tokenizer) if tokenizer is not None else None
        self.vocab_size = lm.vocab_size
        self.eos_token_id: int | None = lm.eos_id
        self.tokenizer = self  # so stream(adapter, ...) finds its codec like a neural LM's

    def next_token_logits(self, context_ids: torch.Tensor) -> torch.Tensor:
        """(B, T) vocab indices -> (B, V) log-probabilities; <unk> is masked (it cannot be written)."""
        rows = context_ids.tolist() if context_ids.dim() == 2 else [context_ids.tolist()]
        out = np.stack([self.lm.next_token_distribution(r) for r in rows])
        out[:, self.lm.unk_id] = 0.0
        with np.errstate(divide="ignore"):
            return torch.from_numpy(np.log(out)).float()

    def encode(self, text: str) -> list[int]:
        tokens = self.subword.encode(text) if self.subword is not None else text.split()
        return self.lm.ids(tokens)

    def decode(self, ids: Sequence[int]) -> str:
        specials = {self.lm.unk_id, self.lm.bos_id, self.lm.eos_id}
        tokens = [self.lm.vocab[int(i)] for i in ids if int(i) not in specials]
        if self.subword is not None:
            return self.subword.decode([int(t) for t in tokens])
        return " ".join(str(t) for t in tokens)
