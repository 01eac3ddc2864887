"""An n-gram language model: the seed's first language model and the baseline
every neural model is measured against.

Interpolated Kneser-Ney (Chen & Goodman 1998, one absolute discount per order)
by default, add-k as the simple alternative. Sentences are padded with
``order - 1`` start symbols and closed with an end symbol, so the model also
learns how sentences end and every lower-order event has a left neighbour
(which is what Kneser-Ney's continuation counts need).

Tokens may be words (``str``) or token ids (``int``). A sequence given as a
plain string is encoded with the model's subword tokenizer when it has one
(then its perplexity compares with the neural models' on the same tokens),
else split on whitespace. Internally each token type gets an index
into ``vocab``; ``next_token_distribution`` returns probabilities over that
index, which is what the decoders in ``aigc_core.generation`` drive through
``aigc_core.generation.NgramAdapter``.
"""
from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

Token = str | int

UNK = "<unk>"
BOS = "<s>"
EOS = "</s>"
FORMAT_VERSION = 1
TOKENIZER_FILE = "tokenizer.json"


@dataclass
class NgramConfig:
    order: int = 3  # trigram: the classic baseline; 2 is enough for tiny corpora
    smoothing: str = "kneser_ney"  # "kneser_ney" | "add_k"
    discount: float = 0.75  # KN absolute discount; 0.75 is Chen & Goodman's usual choice
    k: float = 1.0  # add-k pseudo-count (k=1: Laplace)
    min_count: int = 1  # rarer token types become <unk>, so <unk> gets real evidence

    def __post_init__(self) -> None:
        if self.order < 1:
            raise ValueError(f"order must be >= 1, not {self.order}")
        if self.smoothing not in {"kneser_ney", "add_k"}:
            raise ValueError(f"smoothing must be 'kneser_ney' or 'add_k', not {self.smoothing!r}")
        if not 0.0 < self.discount < 1.0:
            raise ValueError(f"discount must be in (0, 1), not {self.discount}")
        if self.k <= 0:
            raise ValueError(f"k must be > 0, not {self.k}")


class NotFitted(RuntimeError):
    """The model was asked for probabilities before ``fit`` or ``load``."""


def as_tokens(sequence: str | Sequence[Token]) -> list[Token]:
    return sequence.split() if isinstance(sequence, str) else list(sequence)


class NgramLanguageModel:
    """``fit`` on sequences, then ``logprob``, ``perplexity``, ``sample``.

    Probabilities cover every vocabulary entry except ``<s>`` (never predicted):
    the seen tokens, ``</s>`` and ``<unk>``.
    """

    def __init__(self, config: NgramConfig | None = None, tokenizer: Any = None):
        self.config = config or NgramConfig()
        self.tokenizer = tokenizer  # optional subword tokenizer for plain-string input; saved alongside
        self.vocab: list[Token] = []
        self.index: dict[Token, int] = {}
        # counts[m][context] -> {next: count} for m = 1..order (context has m-1 indices).
        # The highest order holds raw counts; lower orders hold continuation counts
        # (how many distinct tokens precede the m-gram), Kneser-Ney's key idea.
        self.counts: dict[int, dict[tuple[int, ...], dict[int, int]]] = {}
        self._totals: dict[int, dict[tuple[int, ...], int]] = {}

    # -- vocabulary -----------------------------------------------------------------
    @property
    def unk_id(self) -> int:
        return 0

    @property
    def bos_id(self) -> int:
        return 1

    @property
    def eos_id(self) -> int:
        return 2

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def fitted(self) -> bool:
        return bool(self.vocab)

    def ids(self, tokens: Iterable[Token]) -> list[int]:
        return [self.index.get(t, self.unk_id) for t in tokens]

    def _padded(self, ids: list[int]) -> list[int]:
        return [self.bos_id] * (self.config.order - 1) + ids + [self.eos_id]

    # -- training -------------------------------------------------------------------
    def tokens(self, sequence: str | Sequence[Token]) -> list[Token]:
        """A sequence as tokens: strings through the tokenizer (or whitespace), lists as they are."""
        if isinstance(sequence, str) and self.tokenizer is not None:
            from aigc_core.generation.codec import as_codec  # lazy: generation imports this module

            return list(as_codec(self.tokenizer).encode(sequence))
        return as_tokens(sequence)

    def fit(self, sequences: Iterable[str | Sequence[Token]]) -> NgramLanguageModel:
        seqs = [self.tokens(s) for s in sequences]
        if not any(seqs):
            raise ValueError("cannot fit an n-gram model on an empty corpus")
        freq = Counter(t for s in seqs for t in s)
        kept = [t for t, c in freq.items() if c >= self.config.min_count and t not in (UNK, BOS, EOS)]
        # Sorting by string form keeps the index reproducible across runs and
        # works for a mix of ids and words.
        self.vocab = [UNK, BOS, EOS, *sorted(kept, key=lambda t: (isinstance(t, str), str(t)))]
        self.index = {t: i for i, t in enumerate(self.vocab)}
        n = self.config.order
        top: dict[tuple[int, ...], dict[int, int]] = defaultdict(lambda: defaultdict(int))
        for s in seqs:
            padded = self._padded(self.ids(s))
            for i in range(n - 1, len(padded)):
                top[tuple(padded[i - n + 1 : i])][padded[i]] += 1
        self._set_counts({ctx: dict(nxt) for ctx, nxt in top.items()})
        return self

    def _set_counts(self, top: dict[tuple[int, ...], dict[int, int]]) -> None:
        n = self.config.order
        self.counts = {n: top}
        for m in range(n - 1, 0, -1):
            # Each distinct (m+1)-gram x·h·w adds one to the continuation count of h·w.
            cont: dict[tuple[int, ...], dict[int, int]] = defaultdict(lambda: defaultdict(int))
            for ctx, nxt in self.counts[m + 1].items():
                for w in nxt:
                    cont[ctx[1:]][w] += 1
            self.counts[m] = {ctx: dict(v) for ctx, v in cont.items()}
        self._totals = {m: {ctx: sum(v.values()) for ctx, v in c.items()} for m, c in self.counts.items()}

    # -- probabilities --------------------------------------------------------------
    def _context(self, context: Sequence[int]) -> tuple[int, ...]:
        n = self.config.order
        if n == 1:
            return ()
        ctx = [self.bos_id] * (n - 1) + list(context)
        return tuple(ctx[-(n - 1) :])

    def _uniform(self) -> np.ndarray:
        p = np.full(self.vocab_size, 1.0 / (self.vocab_size - 1))
        p[self.bos_id] = 0.0
        return p

    def _kn(self, context: tuple[int, ...]) -> np.ndarray:
        d = self.config.discount
        p = self._uniform()
        # From the empty context up to the full one, each order discounts its counts
        # and hands the freed mass D * (distinct followers) / total to the order below.
        for m in range(1, len(context) + 2):
            ctx = context[len(context) - (m - 1) :] if m > 1 else ()
            nxt = self.counts[m].get(ctx)
            if not nxt:
                continue  # unseen context: the lower order carries all the mass
            total = self._totals[m][ctx]
            higher = np.zeros(self.vocab_size)
            for w, c in nxt.items():
                higher[w] = max(c - d, 0.0) / total
            p = higher + (d * len(nxt) / total) * p
        return p

    def _add_k(self, context: tuple[int, ...]) -> np.ndarray:
        k = self.config.k
        nxt = self.counts[self.config.order].get(context, {})
        total = self._totals[self.config.order].get(context, 0)
        v = self.vocab_size - 1  # every type but <s> can follow
        p = np.full(self.vocab_size, k / (total + k * v))
        for w, c in nxt.items():
            p[w] = (c + k) / (total + k * v)
        p[self.bos_id] = 0.0
        return p

    def next_token_distribution(self, context: Sequence[int]) -> np.ndarray:
        """P(next | context) over vocab indices, shape (V,), sums to 1.

        ``context`` holds vocab indices of the sentence so far (no ``<s>`` needed).
        """
        if not self.fitted:
            raise NotFitted("fit or load the n-gram model first")
        ctx = self._context(context)
        return self._kn(ctx) if self.config.smoothing == "kneser_ney" else self._add_k(ctx)

    def logprob(self, token: Token, context: Sequence[Token] = ()) -> float:
        """Natural-log probability of ``token`` after the tokens ``context``."""
        p = self.next_token_distribution(self.ids(context))[self.index.get(token, self.unk_id)]
        return math.log(p) if p > 0 else -math.inf

    def sequence_logprob(self, sequence: str | Sequence[Token]) -> tuple[float, int]:
        """(sum of natural-log probabilities, number of predicted tokens incl. ``</s>``)."""
        ids = self.ids(self.tokens(sequence)) + [self.eos_id]
        total = 0.0
        for i, w in enumerate(ids):
            p = self.next_token_distribution(ids[:i])[w]
            total += math.log(p) if p > 0 else -math.inf
        return total, len(ids)

    def perplexity(self, sequences: Iterable[str | Sequence[Token]]) -> float:
        """exp(-mean log-probability per predicted token), ``</s>`` included."""
        total, count = 0.0, 0
        for s in sequences:
            lp, n = self.sequence_logprob(s)
            total += lp
            count += n
        if count == 0:
            raise ValueError("perplexity needs at least one sequence")
        return math.exp(-total / count)

    def sample(
        self,
        prefix: Sequence[Token] = (),
        max_tokens: int = 30,
        temperature: float = 1.0,
        seed: int | None = None,
        allow_unk: bool = False,
    ) -> list[Token]:
        """Draw one continuation of ``prefix`` until ``</s>`` or ``max_tokens``.

        ``<unk>`` is not drawn unless ``allow_unk``: it is a bucket, not a word.

        For top-k / top-p / streaming use ``aigc_core.generation`` with ``NgramAdapter``.
        """
        rng = np.random.default_rng(seed)
        ids = self.ids(prefix)
        out: list[Token] = []
        for _ in range(max_tokens):
            p = self.next_token_distribution(ids)
            if not allow_unk:
                p[self.unk_id] = 0.0
                p /= p.sum()
            if temperature != 1.0:
                with np.errstate(divide="ignore"):
                    logits = np.log(p) / max(temperature, 1e-6)
                p = np.exp(logits - logits.max())
                p /= p.sum()
            w = int(rng.choice(self.vocab_size, p=p))
            if w == self.eos_id:
                break
            ids.append(w)
            out.append(self.vocab[w])
        return out

    # -- persistence ----------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write ``ngram.json`` (config, vocabulary, raw highest-order counts) and tokenizer.json if any."""
        if not self.fitted:
            raise NotFitted("nothing to save: fit the n-gram model first")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        top = self.counts[self.config.order]
        payload = {
            "format": FORMAT_VERSION,
            "kind": "ngram",
            "config": asdict(self.config),
            "vocab": self.vocab,
            # [context..., next, count] rows: JSON has no tuple keys.
            "counts": [[*ctx, w, c] for ctx, nxt in top.items() for w, c in nxt.items()],
        }
        path = directory / "ngram.json"
        path.write_text(json.dumps(payload))
        if self.tokenizer is not None:
            from aigc_core.generation.codec import save_tokenizer

            save_tokenizer(self.tokenizer, directory / TOKENIZER_FILE)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> NgramLanguageModel:
        path = Path(directory)
        path = path / "ngram.json" if path.is_dir() else path
        payload = json.loads(path.read_text())
        if payload.get("kind") != "ngram":
            raise ValueError(f"{path} is not an n-gram model file")
        model = cls(NgramConfig(**payload["config"]))
        model.vocab = list(payload["vocab"])
        model.index = {t: i for i, t in enumerate(model.vocab)}
        n = model.config.order
        top: dict[tuple[int, ...], dict[int, int]] = defaultdict(dict)
        for row in payload["counts"]:
            top[tuple(row[: n - 1])][row[n - 1]] = row[n]
        model._set_counts(dict(top))
        if (path.parent / TOKENIZER_FILE).exists():
            from aigc_core.generation.codec import load_tokenizer

            model.tokenizer = load_tokenizer(path.parent / TOKENIZER_FILE)
        return model
