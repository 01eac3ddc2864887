"""Text <-> token ids for decoding: one small protocol over whatever tokenizer a
model carries (a ``tokenizers.Tokenizer``, a wrapper around one, or an adapter
such as ``NgramAdapter`` that is its own codec)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

# Names the end-of-text token goes by in common tokenizer recipes, most specific first.
EOS_NAMES = ("</s>", "<eos>", "[EOS]", "<|endoftext|>", "[SEP]")


@runtime_checkable
class TextCodec(Protocol):
    vocab_size: int
    eos_token_id: int | None

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


class TokenizersCodec:
    """Adapts a Hugging Face ``tokenizers.Tokenizer`` to ``TextCodec``."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.vocab_size = int(tokenizer.get_vocab_size())
        self.eos_token_id = next(
            (i for i in (tokenizer.token_to_id(n) for n in EOS_NAMES) if i is not None), None
        )
        self._specials = {
            i for i in (tokenizer.token_to_id(n) for n in (*EOS_NAMES, "<s>", "<pad>", "[PAD]", "<bos>", "[BOS]"))
            if i is not None
        }

    def encode(self, text: str) -> list[int]:
        # Special tokens are added by the training code (EOS between texts), never here.
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode([int(i) for i in ids if int(i) not in self._specials], skip_special_tokens=True)


def _raw_tokenizer(tokenizer: Any) -> Any | None:
    """The ``tokenizers.Tokenizer`` inside ``tokenizer`` (itself or a wrapper), if any."""
    try:
        from tokenizers import Tokenizer
    except ImportError:  # pragma: no cover - tokenizers is a hard dependency
        return None
    if isinstance(tokenizer, Tokenizer):
        return tokenizer
    for attr in ("_tok", "tokenizer", "_tokenizer", "backend_tokenizer"):
        inner = getattr(tokenizer, attr, None)
        if isinstance(inner, Tokenizer):
            return inner
    return None


def as_codec(tokenizer: Any) -> TextCodec:
    if tokenizer is None:
        raise ValueError("no tokenizer: pass tokenizer=... or use a model that carries one")
    raw = _raw_tokenizer(tokenizer)
    if raw is not None:
        return TokenizersCodec(raw)
    if isinstance(tokenizer, TextCodec):
        return tokenizer
    raise TypeError(f"cannot decode with {type(tokenizer).__name__}: it needs encode(text)->ids and decode(ids)")


def save_tokenizer(tokenizer: Any, path: str | Path) -> None:
    raw = _raw_tokenizer(tokenizer)
    if raw is None:
        raise TypeError(f"cannot save a {type(tokenizer).__name__} as tokenizer.json")
    raw.save(str(path))


def load_tokenizer(path: str | Path) -> Any:
    """A saved tokenizer.json back as the engine's ``SubwordTokenizer``."""
    from aigc_core.data.tokenizer import SubwordTokenizer

    return SubwordTokenizer.load(path)
