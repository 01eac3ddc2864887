"""The trained support bot as one registry artifact ("support.bot"), and the
model side of answering a message (no database here).

Artifact layout::

    bot.json          templates, past questions, KB chunks, label list, metrics
    questions.faiss   past customer questions -> their answer template (VectorIndex)
    kb.faiss          knowledge-base chunks (VectorIndex)
    intent/           EncoderClassifier (fine-tuned, or head only on small data), when >= 2 intents
    lm/               GRU language model on agent replies (agent-assist completion)
    ngram/            n-gram baseline on the same subword tokens

apps/support/building.py trains and evaluates these parts (``build_bot``).
"""
from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
Progress = Callable[[float, str], None]

NEIGHBOURS = 5  # past questions looked at per message
KB_PASSAGES = 3  # KB chunks returned as sources
# An intent the classifier saw fewer times than this cannot vouch for an answer (a template
# staff wrote for one unanswered question): the nearest past question decides alone.
MIN_CLASSIFIER_EXAMPLES = 3
# Agent-assist weighs a thread's turns: customer turns count fully, the newest most; agent
# turns only a little (they repeat the bot's guesses, not what the customer needs).
ASSIST_CUSTOMER_WEIGHT, ASSIST_AGENT_WEIGHT, ASSIST_RECENCY = 1.0, 0.25, 0.7


@dataclass
class Candidate:
    """What the models think of one message, before any threshold is applied."""

    template_id: int | None
    template_text: str
    intent: str
    confidence: float
    intent_prob: float
    similarity: float
    neighbours: list[dict] = field(default_factory=list)
    passages: list[dict] = field(default_factory=list)  # KB chunks with score
    classifier_intent: str = ""  # the classifier's own top intent (the answer's intent may differ)


def _encode(texts: list[str]) -> np.ndarray:
    from aigc_core.retrieval.encoder import encode

    return encode(texts) if texts else np.zeros((0, 384), np.float32)


def combine(intent_prob: float | None, similarity: float) -> float:
    """One confidence from the classifier and the nearest past question:
    their geometric mean, so both must agree (an out-of-scope question is far
    from every past question even when the classifier is sure of something).
    ``intent_prob`` is the temperature-calibrated probability (``calibrate``);
    None where the classifier cannot vouch (no classifier, or an intent it saw
    fewer than MIN_CLASSIFIER_EXAMPLES times): the similarity decides alone."""
    sim = max(0.0, min(1.0, float(similarity)))
    if intent_prob is None:
        return sim
    return math.sqrt(max(0.0, float(intent_prob)) * sim)


def calibrate(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature scaling of class probabilities (Guo et al. 2017): softmax(log p / T)
    equals softmax(logits / T), so it works on the blended probabilities too."""
    if temperature == 1.0:
        return probs
    logp = np.log(np.clip(np.asarray(probs, np.float64), 1e-12, 1.0)) / float(temperature)
    logp -= logp.max(axis=-1, keepdims=True)
    out = np.exp(logp)
    return out / out.sum(axis=-1, keepdims=True)


class Bot:
    def __init__(self, meta: dict, questions, kb, classifier=None, lm=None, ngram=None):
        self.meta = meta
        self.questions = questions  # VectorIndex over past questions (ids = row in meta["questions"])
        self.kb = kb  # VectorIndex over KB chunks (ids = row in meta["chunks"])
        self.classifier = classifier
        self.lm = lm
        self.ngram = ngram
        self.templates: dict[int, dict] = {int(k): v for k, v in meta["templates"].items()}

    # -- loading ------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> Bot:
        from aigc_core.retrieval.index import VectorIndex

        path = Path(path)
        meta = json.loads((path / "bot.json").read_text())
        questions = VectorIndex.load(path / "questions.faiss")
        kb = VectorIndex.load(path / "kb.faiss")
        classifier = lm = ngram = None
        if (path / "intent").is_dir():
            from aigc_core.models.classifier import EncoderClassifier

            classifier = EncoderClassifier.load(path / "intent")
        if (path / "lm").is_dir():
            from aigc_core.models.language_model import load_language_model

            lm = load_language_model(path / "lm")
        if (path / "ngram").is_dir():
            from aigc_core.data.tokenizer import SubwordTokenizer
            from aigc_core.generation import NgramAdapter
            from aigc_core.models.ngram import NgramLanguageModel

            tok = SubwordTokenizer.load(path / "ngram" / "tokenizer.json")
            ngram = NgramAdapter(NgramLanguageModel.load(path / "ngram"), tok)
        return cls(meta, questions, kb, classifier, lm, ngram)

    # -- inference ----------------------------------------------------------
    def intent_probs(self, text: str, vec: np.ndarray | None = None) -> dict[str, float]:
        if self.classifier is None:
            return {}
        probs = self._head_probs(vec) if vec is not None else None
        if probs is None:
            probs = self.classifier.predict_proba([text], frozen_embeddings=vec)["intent"][0]
        probs = calibrate(probs, float(self.meta.get("temperature", 1.0)))
        return {lab: float(p) for lab, p in zip(self.meta["labels"], probs, strict=True)}

    def _head_probs(self, vec: np.ndarray) -> np.ndarray | None:
        """Head-only classifiers sit on the same frozen MiniLM vector retrieval uses; run
        the head on it instead of encoding the message a second time (halves latency)."""
        if self.classifier.config.mode != "head":
            return None
        return self.classifier.predict_proba_from_embeddings(vec)["intent"][0]

    def candidate(self, text: str, vec: np.ndarray | None = None, skip_same: bool = False) -> Candidate:
        """``skip_same``: ignore past questions identical to ``text`` (scoring a version on
        questions its index already holds, as the deploy gate does)."""
        vec = _encode([text]) if vec is None else vec
        probs = self.intent_probs(text, vec)
        best_intent = max(probs, key=probs.get) if probs else ""
        neighbours = []
        scores, ids = self.questions.search(vec, NEIGHBOURS + (3 if skip_same else 0))
        for s, i in zip(scores[0], ids[0], strict=True):
            if i >= 0:
                q = self.meta["questions"][int(i)]
                if skip_same and q["question"] == text[:300]:
                    continue
                neighbours.append({**q, "score": round(float(s), 4)})
        neighbours = neighbours[:NEIGHBOURS]
        passages = self.search_kb(vec)
        counts = self.meta.get("intent_counts") or {}
        # Each candidate template: its best neighbour's similarity, weighed by the classifier.
        best: tuple[float, int | None, float, float] = (-1.0, None, 0.0, 0.0)
        for n in neighbours:
            tid = n["template_id"]
            if tid is None or int(tid) not in self.templates:
                continue
            tpl_intent = self.templates[int(tid)].get("intent") or n.get("intent") or ""
            vouches = probs and (not counts or counts.get(tpl_intent, 0) >= MIN_CLASSIFIER_EXAMPLES)
            p = probs.get(tpl_intent, 0.0) if vouches else None
            conf = combine(p, n["score"])
            if conf > best[0]:
                best = (conf, int(tid), p if p is not None else probs.get(tpl_intent, 0.0), n["score"])
        conf, tid, p, sim = best
        if tid is None:
            return Candidate(None, "", best_intent, 0.0, probs.get(best_intent, 0.0) if probs else 0.0, 0.0,
                             neighbours, passages, best_intent)
        tpl = self.templates[tid]
        return Candidate(tid, tpl["text"], tpl.get("intent") or best_intent, round(conf, 4), round(p, 4),
                         round(sim, 4), neighbours, passages, best_intent)

    def search_kb(self, vec: np.ndarray, k: int = KB_PASSAGES) -> list[dict]:
        if len(self.kb) == 0:
            return []
        scores, ids = self.kb.search(vec, k)
        return [{**self.meta["chunks"][int(i)], "score": round(float(s), 4)}
                for s, i in zip(scores[0], ids[0], strict=True) if i >= 0]

    def suggest_templates(self, text: str, k: int = 3, vec: np.ndarray | None = None,
                          skip: str | None = None) -> list[dict]:
        """Top distinct templates for a customer message (agent-assist), with no floor;
        ``skip``: a stored question to leave out (the one being scored)."""
        vec = _encode([text]) if vec is None else vec
        scores, ids = self.questions.search(vec, NEIGHBOURS * 3)
        out, seen = [], set()
        for s, i in zip(scores[0], ids[0], strict=True):
            if i < 0 or (skip is not None and self.meta["questions"][int(i)]["question"] == skip):
                continue
            tid = self.meta["questions"][int(i)]["template_id"]
            if tid is None or tid in seen or int(tid) not in self.templates:
                continue
            seen.add(tid)
            out.append({"template_id": int(tid), "text": self.templates[int(tid)]["text"],
                        "intent": self.templates[int(tid)].get("intent", ""), "score": round(float(s), 3)})
            if len(out) == k:
                break
        return out

    def suggest_for_thread(self, turns: list[tuple[str, str]], k: int = 3) -> list[dict]:
        """Agent-assist for a whole conversation: ``turns`` are (role, text), oldest first.
        One query vector from every turn (customer turns weighted, the newest most), and
        only suggestions at or above the relevance floor chosen on calibration rows."""
        weights, texts = [], []
        customer_age = 0
        for role, text in reversed(turns):
            if not text.strip():
                continue
            if role == "customer":
                weights.append(ASSIST_CUSTOMER_WEIGHT * ASSIST_RECENCY ** customer_age)
                customer_age += 1
            else:
                weights.append(ASSIST_AGENT_WEIGHT * ASSIST_RECENCY ** customer_age)
            texts.append(text)
        if not texts or customer_age == 0:
            return []
        vecs = _encode(texts)
        query = (np.asarray(weights, np.float32)[:, None] * vecs).sum(0, keepdims=True)
        query /= max(1e-8, float(np.linalg.norm(query)))
        floor = float(self.meta.get("assist_floor", 1.0))
        return [s for s in self.suggest_templates("", k=k, vec=query.astype(np.float32)) if s["score"] >= floor]

    def complete(self, prefix: str, max_new_tokens: int = 16) -> str:
        """The language model's continuation of what an agent is typing (greedy), or "" when
        the model's own per-token likelihood of it is below the floor chosen on held-out
        agent replies (``meta["lm_floor"]``): a continuation it is unsure of is a guess."""
        text, likelihood = self.complete_with_likelihood(prefix, max_new_tokens)
        return text if text and likelihood >= float(self.meta.get("lm_floor", 0.0)) else ""

    def assist_model(self):
        preferred = self.ngram if self.meta.get("assist_model") == "ngram" else self.lm
        return preferred or self.lm or self.ngram

    def complete_with_likelihood(self, prefix: str, max_new_tokens: int = 16) -> tuple[str, float]:
        from aigc_core.generation import GenerationConfig, generate

        model = self.assist_model()
        if model is None or not prefix.strip():
            return "", 0.0
        cfg = GenerationConfig(max_new_tokens=max_new_tokens, greedy=True, repetition_penalty=1.2, stop=("\n",))
        try:
            text = generate(model, prefix, cfg)
            return text, token_likelihood(model, prefix, text) if text.strip() else 0.0
        except Exception:  # a completion is a nicety; never break the inbox over it
            log.exception("agent-assist completion failed")
            return "", 0.0


def token_likelihood(model, prefix: str, continuation: str) -> float:
    """exp(mean log p) of ``continuation``'s tokens after ``prefix``: the model's own
    per-token likelihood of the text (1.0 = certain, near 1/vocab = a guess)."""
    import torch

    from aigc_core.generation.codec import as_codec

    codec = as_codec(getattr(model, "tokenizer", None) or model)
    ids = codec.encode(prefix)
    full = codec.encode(prefix + continuation)
    start = len(ids) if full[: len(ids)] == ids else max(1, len(ids))
    if start >= len(full):
        return 0.0
    logps = []
    with torch.no_grad():
        for t in range(max(1, start), len(full)):
            logits = model.next_token_logits(torch.tensor([full[:t]], dtype=torch.long))[0].float()
            logps.append(float(torch.log_softmax(logits, -1)[full[t]]))
    return float(math.exp(sum(logps) / len(logps))) if logps else 0.0
