"""Byte-level BPE trained with the ``tokenizers`` library, for models trained from scratch.

Byte-level means every string round-trips through encode/decode and no input is
ever unknown. The shipped MiniLM encoder keeps its own WordPiece tokenizer.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS)  # ids 0..3, in this order
TOKENIZER_FILE = "tokenizer.json"


class SubwordTokenizer:
    def __init__(self, tokenizer):  # a tokenizers.Tokenizer
        self._tok = tokenizer
        self.pad_id = tokenizer.token_to_id(PAD)
        self.unk_id = tokenizer.token_to_id(UNK)
        self.bos_id = tokenizer.token_to_id(BOS)
        self.eos_id = tokenizer.token_to_id(EOS)

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    def encode(self, text: str, add_special: bool = False) -> list[int]:
        ids = self._tok.encode(text).ids
        return [self.bos_id, *ids, self.eos_id] if add_special else ids

    def encode_batch(self, texts: Sequence[str], add_special: bool = False) -> list[list[int]]:
        out = [enc.ids for enc in self._tok.encode_batch(list(texts))]
        return [[self.bos_id, *ids, self.eos_id] for ids in out] if add_special else out

    def decode(self, ids: Sequence[int], skip_special: bool = True) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=skip_special)

    def id_to_token(self, token_id: int) -> str | None:
        return self._tok.id_to_token(token_id)

    def save(self, path: str | Path) -> Path:
        """``path``: a directory (tokenizer.json is written inside) or a .json file."""
        path = Path(path)
        target = path if path.suffix == ".json" else path / TOKENIZER_FILE
        target.parent.mkdir(parents=True, exist_ok=True)
        self._tok.save(str(target))
        return target

    @classmethod
    def load(cls, path: str | Path) -> SubwordTokenizer:
        from tokenizers import Tokenizer

        path = Path(path)
        target = path if path.suffix == ".json" else path / TOKENIZER_FILE
        return cls(Tokenizer.from_file(str(target)))


def train_tokenizer(texts: Iterable[str], vocab_size: int = 8000, min_frequency: int = 2) -> SubwordTokenizer:
    """Learn a byte-level BPE vocabulary of at most ``vocab_size`` tokens from ``texts``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        # All 256 bytes up front, so any later input encodes without <unk>.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return SubwordTokenizer(tok)
