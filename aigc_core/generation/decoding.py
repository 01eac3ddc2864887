"""Decoding for any model with ``next_token_logits(ids (1, T)) -> (1, V)``.

One step: repetition penalty -> temperature -> top-k -> top-p -> draw (or argmax).
Sampling happens on the CPU in float32 with a seeded ``torch.Generator``, so a seed
gives the same text on CPU and CUDA up to float ties.

``stream`` yields text pieces as tokens are made; ``generate`` is literally
``"".join(stream(...))``, so the two can never disagree.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from aigc_core.generation.codec import TextCodec, as_codec

# Byte-level BPE decodes a half-finished UTF-8 character to U+FFFD; wait for the rest.
REPLACEMENT_CHAR = "\ufffd"


class NextTokenModel(Protocol):
    def next_token_logits(self, context_ids: torch.Tensor) -> torch.Tensor: ...


@dataclass
class GenerationConfig:
    max_new_tokens: int = 64  # hard cap on generated tokens (EOS and stop strings end earlier)
    greedy: bool = False  # argmax every step; temperature, top_k and top_p are then ignored
    temperature: float = 1.0  # < 1 sharpens, > 1 flattens; 0 is the same as greedy
    top_k: int = 0  # draw only from the k most likely tokens; 0 turns it off
    top_p: float = 1.0  # draw only from the smallest set whose probability reaches top_p; 1 is off
    repetition_penalty: float = 1.0  # CTRL-style, > 1 discourages tokens already in prompt or output
    stop: tuple[str, ...] = ()  # text ends just before the first of these strings (not included)
    seed: int | None = None  # seeds the sampling generator; None draws a fresh seed
    stop_at_eos: bool = True  # end when the model emits its end-of-text token

    def __post_init__(self) -> None:
        if self.max_new_tokens < 0:
            raise ValueError("max_new_tokens must be >= 0")
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        if self.top_k < 0:
            raise ValueError("top_k must be >= 0")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError("top_p must be in (0, 1]")
        if self.repetition_penalty <= 0:
            raise ValueError("repetition_penalty must be > 0")
        if isinstance(self.stop, str):
            self.stop = (self.stop,)
        self.stop = tuple(s for s in self.stop if s)


def apply_repetition_penalty(logits: torch.Tensor, seen: Sequence[int], penalty: float) -> torch.Tensor:
    """(V,) logits; a seen token's logit is divided by ``penalty`` if positive, multiplied if negative,
    so its probability drops either way (Keskar et al. 2019)."""
    if penalty == 1.0 or not seen:
        return logits
    idx = torch.tensor(sorted(set(int(i) for i in seen)), dtype=torch.long)
    picked = logits[idx]
    logits = logits.clone()
    logits[idx] = torch.where(picked > 0, picked / penalty, picked * penalty)
    return logits


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep exactly the k highest logits of (V,) (ties broken by index); the rest become -inf."""
    if k <= 0 or k >= logits.numel():
        return logits
    keep = torch.topk(logits, k).indices
    out = torch.full_like(logits, float("-inf"))
    out[keep] = logits[keep]
    return out


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus: keep the most likely tokens until their probability first reaches p."""
    if p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, descending=True)
    probs = torch.softmax(sorted_logits, dim=-1)
    # A token stays if the mass strictly before it is still short of p; the top token always stays.
    drop = (torch.cumsum(probs, dim=-1) - probs) >= p
    drop[0] = False
    out = logits.clone()
    out[order[drop]] = float("-inf")
    return out


def choose_next_token(
    logits: torch.Tensor, context: Sequence[int], config: GenerationConfig, generator: torch.Generator
) -> int:
    """One decoding step on (V,) logits -> the next token id."""
    logits = apply_repetition_penalty(logits.float().cpu(), context, config.repetition_penalty)
    if config.greedy or config.temperature == 0:
        return int(torch.argmax(logits))
    logits = logits / config.temperature
    logits = top_p_filter(top_k_filter(logits, config.top_k), config.top_p)
    probs = torch.softmax(logits, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))


def _held_back(text: str, stops: Sequence[str]) -> int:
    """How many trailing characters might still turn into a stop string or a whole character."""
    hold = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:n]):
                hold = max(hold, n)
                break
    stripped = text.rstrip(REPLACEMENT_CHAR)
    return max(hold, len(text) - len(stripped))


def _first_stop(text: str, stops: Sequence[str]) -> int:
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(hits) if hits else -1


def stream(
    model: NextTokenModel,
    prompt: str = "",
    config: GenerationConfig | None = None,
    tokenizer: Any = None,
) -> Iterator[str]:
    """Yield generated text piece by piece, as the tokens are made.

    ``tokenizer`` defaults to ``model.tokenizer`` (language models carry theirs;
    ``NgramAdapter`` is its own). The prompt itself is not yielded.
    """
    config = config or GenerationConfig()
    codec: TextCodec = as_codec(tokenizer if tokenizer is not None else getattr(model, "tokenizer", None))
    eos = getattr(model, "eos_token_id", None)
    eos = eos if eos is not None else codec.eos_token_id
    generator = torch.Generator()
    if config.seed is not None:
        generator.manual_seed(config.seed)
    else:
        generator.seed()

    prompt_ids = codec.encode(prompt)
    prompt_text = codec.decode(prompt_ids)
    ids = list(prompt_ids)
    new_ids: list[int] = []
    emitted = 0  # characters of the generated text already yielded
    text = ""
    for _ in range(config.max_new_tokens):
        logits = model.next_token_logits(torch.tensor([ids], dtype=torch.long))[0]
        token = choose_next_token(logits, ids, config, generator)
        if config.stop_at_eos and eos is not None and token == eos:
            break
        ids.append(token)
        new_ids.append(token)
        # Decode with the prompt in front so word boundaries (leading spaces) come out right.
        full = codec.decode(ids)
        text = full[len(prompt_text) :] if full.startswith(prompt_text) else codec.decode(new_ids)
        cut = _first_stop(text, config.stop)
        if cut >= 0:
            if cut > emitted:
                yield text[emitted:cut]
            return
        safe = len(text) - _held_back(text, config.stop)
        if safe > emitted:
            yield text[emitted:safe]
            emitted = safe
    # Out of tokens or at EOS: whatever was held back is now final.
    if len(text) > emitted:
        yield text[emitted:]


def generate(
    model: NextTokenModel,
    prompt: str = "",
    config: GenerationConfig | None = None,
    tokenizer: Any = None,
) -> str:
    """The generated continuation of ``prompt`` (without the prompt)."""
    return "".join(stream(model, prompt, config, tokenizer))
