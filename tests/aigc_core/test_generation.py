"""Decoding on fake models whose logits the test controls, and on the n-gram adapter."""
from __future__ import annotations

import collections
import math
from collections.abc import Callable, Sequence

import pytest
import torch

from aigc_core.generation import (
    GenerationConfig,
    NgramAdapter,
    generate,
    stream,
    top_k_filter,
    top_p_filter,
)
from aigc_core.models.ngram import NgramConfig, NgramLanguageModel

LETTERS = "abcdefghij"


class LetterModel:
    """Ten tokens, one per letter; ``logits_for(context)`` decides the next-token logits."""

    eos_token_id: int | None = None

    def __init__(self, logits_for: Callable[[list[int]], Sequence[float]], eos: int | None = None):
        self.logits_for = logits_for
        self.eos_token_id = eos
        self.vocab_size = len(LETTERS)
        self.tokenizer = self

    def next_token_logits(self, context_ids: torch.Tensor) -> torch.Tensor:
        return torch.tensor([list(self.logits_for(row)) for row in context_ids.tolist()], dtype=torch.float32)

    def encode(self, text: str) -> list[int]:
        return [LETTERS.index(c) for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(LETTERS[i] for i in ids)


def fixed(logits: Sequence[float]) -> LetterModel:
    return LetterModel(lambda ctx: logits)


def counting() -> LetterModel:
    # Always the letter after the last one: "abcdefghij" then around again.
    return LetterModel(lambda ctx: [10.0 if i == len(ctx) % 10 else 0.0 for i in range(10)])


FALLING = [float(-i) for i in range(10)]  # a most likely, j least


def test_it_decodes_greedily_and_deterministically():
    model = fixed(FALLING)
    outs = {generate(model, "", GenerationConfig(greedy=True, max_new_tokens=5, seed=s)) for s in range(4)}
    assert outs == {"aaaaa"}
    assert generate(model, "", GenerationConfig(temperature=0, max_new_tokens=3)) == "aaa"


def test_it_repeats_a_sample_for_the_same_seed():
    model = fixed([0.0] * 10)
    a = generate(model, "", GenerationConfig(max_new_tokens=30, seed=7))
    assert a == generate(model, "", GenerationConfig(max_new_tokens=30, seed=7))
    assert a != generate(model, "", GenerationConfig(max_new_tokens=30, seed=8))


def test_it_never_emits_a_token_outside_the_top_k():
    logits = [0.3, 2.0, -1.0, 1.5, 0.0, 1.8, -0.5, 0.1, 0.2, 0.4]  # top 3: b (2.0), f (1.8), d (1.5)
    text = generate(fixed(logits), "", GenerationConfig(top_k=3, temperature=3.0, max_new_tokens=300, seed=0))
    assert set(text) == {"b", "f", "d"}
    kept = top_k_filter(torch.tensor(logits), 3)
    assert torch.isfinite(kept).sum() == 3


def test_it_samples_only_from_the_nucleus():
    probs = [0.5, 0.3, 0.1, 0.05, 0.02, 0.01, 0.01, 0.005, 0.003, 0.002]
    logits = [math.log(p) for p in probs]
    # top_p=0.75: a (0.5) is short of 0.75, a+b (0.8) reaches it -> nucleus {a, b}.
    text = generate(fixed(logits), "", GenerationConfig(top_p=0.75, max_new_tokens=300, seed=0))
    assert set(text) == {"a", "b"}
    # top_p=0.85 needs c too (0.5+0.3 < 0.85 <= 0.9).
    kept = top_p_filter(torch.tensor(logits), 0.85)
    assert torch.isfinite(kept).tolist() == [True, True, True] + [False] * 7
    # The most likely token always survives, even for a tiny p.
    assert torch.isfinite(top_p_filter(torch.tensor(logits), 1e-9)).sum() == 1


def test_it_lowers_repeats_with_a_repetition_penalty():
    model = fixed([1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    plain = generate(model, "", GenerationConfig(greedy=True, max_new_tokens=8))
    penalised = generate(model, "", GenerationConfig(greedy=True, max_new_tokens=8, repetition_penalty=2.0))
    assert plain == "aaaaaaaa"
    assert max(collections.Counter(penalised).values()) < max(collections.Counter(plain).values())
    assert len(set(penalised)) > 1


def test_it_stops_before_a_stop_string_even_across_tokens():
    cfg = GenerationConfig(greedy=True, max_new_tokens=20, stop=("de",))
    assert generate(counting(), "", cfg) == "abc"
    pieces = list(stream(counting(), "", cfg))
    assert "".join(pieces) == "abc"
    assert not any("d" in p for p in pieces)  # the half-matched "d" was held back, never shown


def test_it_stops_at_max_tokens_and_at_eos():
    assert generate(counting(), "", GenerationConfig(greedy=True, max_new_tokens=4)) == "abcd"
    eos_at_c = LetterModel(lambda ctx: [10.0 if i == len(ctx) % 10 else 0.0 for i in range(10)], eos=2)
    assert generate(eos_at_c, "", GenerationConfig(greedy=True, max_new_tokens=9)) == "ab"


def test_it_continues_a_prompt_without_repeating_it():
    assert generate(counting(), "abc", GenerationConfig(greedy=True, max_new_tokens=3)) == "def"


def test_it_streams_the_same_text_as_generate():
    lm = NgramLanguageModel(NgramConfig(order=2)).fit(
        ["the cat sat on the mat", "the dog sat on the rug", "a cat ran to the dog"]
    )
    adapter = NgramAdapter(lm)
    for seed in range(5):
        cfg = GenerationConfig(max_new_tokens=15, seed=seed, top_k=5, stop=("rug",))
        pieces = list(stream(adapter, "the", cfg))
        assert "".join(pieces) == generate(adapter, "the", cfg)
    # Without stop strings nothing is held back: one piece per word, as it is made.
    runs = [list(stream(adapter, "the", GenerationConfig(seed=s))) for s in range(5)]
    assert all(p.startswith(" ") and len(p.split()) == 1 for run in runs for p in run)
    assert max(len(run) for run in runs) >= 3


def test_it_drives_the_ngram_model_without_unknown_tokens():
    lm = NgramLanguageModel(NgramConfig(order=2)).fit(["the cat sat", "the dog sat"])
    text = generate(NgramAdapter(lm), "the", GenerationConfig(max_new_tokens=20, seed=1))
    assert "<unk>" not in text and "<s>" not in text
    assert set(text.split()) <= {"the", "cat", "dog", "sat"}


def test_it_rejects_bad_settings():
    with pytest.raises(ValueError):
        GenerationConfig(top_p=0.0)
    with pytest.raises(ValueError):
        GenerationConfig(temperature=-1)


class ScriptedModel:
    """Emits a fixed list of token ids, one per step, through a real byte-level BPE tokenizer."""

    def __init__(self, script: list[int], tokenizer, vocab_size: int):
        self.script, self.tokenizer, self.vocab_size = script, tokenizer, vocab_size
        self.eos_token_id = None
        self.calls = 0

    def next_token_logits(self, context_ids: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(1, self.vocab_size)
        logits[0, self.script[min(self.calls, len(self.script) - 1)]] = 10.0
        self.calls += 1
        return logits


def test_it_never_streams_half_a_character():
    from aigc_core.data import train_tokenizer

    tok = train_tokenizer(["plain ascii text only"] * 3, vocab_size=300, min_frequency=1)
    ids = tok.encode("café olé")  # é is two byte tokens: no merge was learned for it
    assert len(ids) > len("café olé".split())
    model = ScriptedModel(ids, tok, tok.vocab_size)
    pieces = list(stream(model, "", GenerationConfig(greedy=True, max_new_tokens=len(ids))))
    assert "".join(pieces) == "café olé"
    assert not any("\ufffd" in p for p in pieces)
