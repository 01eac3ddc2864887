"""Decoding strategies for language models: greedy, temperature, top-k, top-p,
repetition penalty, stop strings, max tokens, a seeded generator and streaming."""
from __future__ import annotations

from aigc_core.generation.codec import TextCodec, TokenizersCodec, as_codec
from aigc_core.generation.decoding import (
    GenerationConfig,
    apply_repetition_penalty,
    choose_next_token,
    generate,
    stream,
    top_k_filter,
    top_p_filter,
)
from aigc_core.generation.ngram_adapter import NgramAdapter

__all__ = [
    "GenerationConfig",
    "NgramAdapter",
    "TextCodec",
    "TokenizersCodec",
    "apply_repetition_penalty",
    "as_codec",
    "choose_next_token",
    "generate",
    "stream",
    "top_k_filter",
    "top_p_filter",
]
