"""The trained support bot as one registry artifact ("support.bot"), and the
model side of answering a message (no database here).

Artifact layout::

    bot.json          templates, past questions, KB chunks, label list, metrics
    questions.faiss   past customer questions -> their answer template (VectorIndex)
    kb.faiss          knowledge-base chunks (VectorIndex)
    intent/           EncoderClassifier (fine-tuned, or head only on small data), when >= 2 intents
    lm/               GRU language model on agent replies (agent-assist completion)
    ngram/            n-gram baseline on the same subword tokens
"""
from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from apps.support import training

log = logging.getLogger(__name__)
Progress = Callable[[float, str], None]

NEIGHBOURS = 5  # past questions looked at per message
KB_PASSAGES = 3  # KB chunks returned as sources
LM_MAX_TEXTS = 4000  # agent replies the language model trains on


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


def _encode(texts: list[str]) -> np.ndarray:
    from aigc_core.retrieval.encoder import encode

    return encode(texts) if texts else np.zeros((0, 384), np.float32)


def combine(intent_prob: float | None, similarity: float) -> float:
    """One confidence from the classifier and the nearest past question:
    their geometric mean, so both must agree (an out-of-scope question is far
    from every past question even when the classifier is sure of something)."""
    sim = max(0.0, min(1.0, float(similarity)))
    if intent_prob is None:
        return sim
    return math.sqrt(max(0.0, float(intent_prob)) * sim)


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
        return {lab: float(p) for lab, p in zip(self.meta["labels"], probs, strict=True)}

    def _head_probs(self, vec: np.ndarray) -> np.ndarray | None:
        """Head-only classifiers sit on the same frozen MiniLM vector retrieval uses; run
        the head on it instead of encoding the message a second time (halves latency)."""
        if self.classifier.config.mode != "head":
            return None
        return self.classifier.predict_proba_from_embeddings(vec)["intent"][0]

    def candidate(self, text: str, vec: np.ndarray | None = None) -> Candidate:
        vec = _encode([text]) if vec is None else vec
        probs = self.intent_probs(text, vec)
        best_intent = max(probs, key=probs.get) if probs else ""
        neighbours = []
        scores, ids = self.questions.search(vec, NEIGHBOURS)
        for s, i in zip(scores[0], ids[0], strict=True):
            if i >= 0:
                q = self.meta["questions"][int(i)]
                neighbours.append({**q, "score": round(float(s), 4)})
        passages = self.search_kb(vec)
        # Each candidate template: its best neighbour's similarity, weighed by the classifier.
        best: tuple[float, int | None, float, float] = (-1.0, None, 0.0, 0.0)
        for n in neighbours:
            tid = n["template_id"]
            if tid is None or int(tid) not in self.templates:
                continue
            tpl_intent = self.templates[int(tid)].get("intent") or n.get("intent") or ""
            p = probs.get(tpl_intent, 0.0) if probs else None
            conf = combine(p, n["score"])
            if conf > best[0]:
                best = (conf, int(tid), p if p is not None else 0.0, n["score"])
        conf, tid, p, sim = best
        if tid is None:
            return Candidate(None, "", best_intent, 0.0, probs.get(best_intent, 0.0) if probs else 0.0, 0.0,
                             neighbours, passages)
        tpl = self.templates[tid]
        return Candidate(tid, tpl["text"], tpl.get("intent") or best_intent, round(conf, 4), round(p, 4),
                         round(sim, 4), neighbours, passages)

    def search_kb(self, vec: np.ndarray, k: int = KB_PASSAGES) -> list[dict]:
        if len(self.kb) == 0:
            return []
        scores, ids = self.kb.search(vec, k)
        return [{**self.meta["chunks"][int(i)], "score": round(float(s), 4)}
                for s, i in zip(scores[0], ids[0], strict=True) if i >= 0]

    def suggest_templates(self, text: str, k: int = 3, vec: np.ndarray | None = None) -> list[dict]:
        """Top distinct templates for a customer message (agent-assist)."""
        vec = _encode([text]) if vec is None else vec
        scores, ids = self.questions.search(vec, NEIGHBOURS * 3)
        out, seen = [], set()
        for s, i in zip(scores[0], ids[0], strict=True):
            if i < 0:
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

    def complete(self, prefix: str, max_new_tokens: int = 16) -> str:
        """The language model's continuation of what an agent is typing (greedy)."""
        from aigc_core.generation import GenerationConfig, generate

        preferred = self.ngram if self.meta.get("assist_model") == "ngram" else self.lm
        model = preferred or self.lm or self.ngram
        if model is None or not prefix.strip():
            return ""
        cfg = GenerationConfig(max_new_tokens=max_new_tokens, greedy=True, repetition_penalty=1.2, stop=("\n",))
        try:
            return generate(model, prefix, cfg)
        except Exception:  # a completion is a nicety; never break the inbox over it
            log.exception("agent-assist completion failed")
            return ""


# -- building --------------------------------------------------------------------

def build_bot(
    out_dir: Path,
    pairs: list[dict],
    templates: dict[int, dict],
    chunks: list[dict],
    progress: Progress | None = None,
    intent_epochs: int = training.INTENT_EPOCHS,
    lm_epochs: int = 6,
) -> dict[str, Any]:
    """Train every part into ``out_dir`` and return the metrics.

    ``pairs``: [{"question", "answer", "label", "template_id"}]; ``templates``:
    {id: {"text", "intent"}}; ``chunks``: [{"chunk_id", "article_id", "title", "slug",
    "url", "heading", "text"}]."""
    from aigc_core.retrieval.index import IndexConfig, VectorIndex

    progress = progress or (lambda pct, msg: None)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    metrics: dict[str, Any] = {"pairs": len(pairs), "templates": len(templates), "kb_chunks": len(chunks)}
    if not pairs and not chunks:
        raise ValueError("nothing to train on: ingest transcripts or KB articles first")

    questions = [p["question"] for p in pairs]
    labels = [p.get("label") or "" for p in pairs]
    progress(5, f"embedding {len(questions)} questions and {len(chunks)} KB chunks")
    q_vecs = _encode(questions)
    kb_vecs = _encode([f"{c['title']}. {c['heading']}. {c['text']}" for c in chunks])

    # Three splits of the labelled pairs (training.intent_splits): train; validation for the
    # classifier's own choices; calibration for the threshold and the held-out curve only.
    labelled = [i for i, lab in enumerate(labels) if lab]
    parts = training.intent_splits([labels[i] for i in labelled])
    train_idx = [labelled[i] for i in parts.train] + [i for i, lab in enumerate(labels) if not lab]
    fit_val_idx = [labelled[i] for i in parts.validation]
    val_idx = [labelled[i] for i in parts.calibration]  # the calibration rows: nothing above chose on them
    classes = sorted({labels[i] for i in train_idx if labels[i]})
    classifier = None
    if len(classes) >= 2:
        progress(10, f"training the intent classifier on {len(classes)} intents")
        tr = [i for i in train_idx if labels[i]]
        va = [i for i in fit_val_idx if labels[i] in classes]
        classifier, clf_metrics = training.train_intent_classifier(
            [questions[i] for i in tr], [labels[i] for i in tr],
            [questions[i] for i in va] or None, [labels[i] for i in va] or None,
            on_progress=lambda pct, msg: progress(10 + 0.4 * pct, f"intent: {msg}"),
            epochs=intent_epochs,
        )
        classes = list(classifier.config.heads["intent"])
        metrics["intent"] = {k: v for k, v in clf_metrics.items() if isinstance(v, (int, float, str))}

    meta = {
        "labels": classes,
        "templates": {str(k): v for k, v in templates.items()},
        "questions": [{"question": p["question"][:300], "template_id": p.get("template_id"),
                       "intent": p.get("label") or ""} for p in pairs],
        "chunks": chunks,
    }

    # Evaluate answering on the held-out questions against an index of the training questions.
    progress(52, "evaluating on held-out questions")
    if val_idx:
        q_index = VectorIndex(IndexConfig(kind="flat"))
        if train_idx:
            q_index.add(np.asarray(train_idx), q_vecs[train_idx])
        probe = Bot(meta, q_index, VectorIndex(IndexConfig(kind="flat")), classifier)
        conf, correct, top1, top3, intent_ok = [], [], 0, 0, 0
        for i in val_idx:
            cand = probe.candidate(questions[i], q_vecs[i : i + 1])
            want = pairs[i].get("template_id")
            ok = cand.template_id is not None and cand.template_id == want
            # The bot's pick first, then the nearest other templates (what agent-assist shows).
            ranked = [cand.template_id] + [s["template_id"] for s in probe.suggest_templates(
                questions[i], k=3, vec=q_vecs[i : i + 1]) if s["template_id"] != cand.template_id]
            ranked = ranked[:3]
            conf.append(cand.confidence)
            correct.append(ok)
            top1 += int(ok)
            top3 += int(want in ranked)
            intent_ok += int(cand.intent == labels[i])
        n = len(val_idx)
        probes = training.OUT_OF_SCOPE_PROBES
        probe_vecs = _encode(probes)
        oos_conf = [probe.candidate(q, probe_vecs[j : j + 1]).confidence for j, q in enumerate(probes)]
        in_scope = [True] * n + [False] * len(probes)
        metrics.update({
            "heldout": n,
            "out_of_scope_probes": len(probes),
            "answer_recall_at_1": round(top1 / n, 4),
            "answer_recall_at_3": round(top3 / n, 4),
            "intent_accuracy": round(intent_ok / n, 4),
            "curve": training.precision_coverage_curve(conf + oos_conf, correct + [False] * len(probes), in_scope),
            "coverage_at_precision": training.coverage_at_precision_from_confidence(
                conf + oos_conf, correct + [False] * len(probes), in_scope=in_scope),
        })
        target = metrics["coverage_at_precision"].get("0.95", {})
        metrics["suggested_threshold"] = target.get("threshold", 0.5) if target.get("coverage") else 0.5

    progress(60, "building the indexes")
    q_index = VectorIndex(IndexConfig(kind="flat"))
    if len(pairs):
        q_index.add(np.arange(len(pairs)), q_vecs)
    kb_index = VectorIndex(IndexConfig(kind="flat"))
    if len(chunks):
        kb_index.add(np.arange(len(chunks)), kb_vecs)
    q_index.save(out_dir / "questions.faiss")
    kb_index.save(out_dir / "kb.faiss")
    if classifier is not None:
        classifier.save(out_dir / "intent")

    replies = [p["answer"] for p in pairs if p.get("answer")][:LM_MAX_TEXTS]
    if len(replies) >= 10:
        progress(65, "training the language model on agent replies")
        metrics["lm"] = train_reply_models(out_dir, replies, lm_epochs, progress)
        # Agent-assist completes with whichever model predicts held-out replies better.
        meta["assist_model"] = metrics["lm"]["assist_model"]
    metrics["wall_s"] = round(time.monotonic() - t0, 2)
    (out_dir / "bot.json").write_text(json.dumps(meta))
    progress(99, "saving")
    return metrics


def train_reply_models(out_dir: Path, replies: list[str], epochs: int, progress: Progress) -> dict:
    """GRU LM (the seed's Embedding -> GRU -> Dense) and an n-gram baseline on the same
    subword tokens, so their perplexities compare."""
    from aigc_core.data import train_tokenizer
    from aigc_core.models.language_model import LanguageModelConfig, train_language_model
    from aigc_core.models.ngram import NgramConfig, NgramLanguageModel
    from aigc_core.training import TrainConfig

    split = max(1, len(replies) // 10)
    val, train = replies[:split], replies[split:]
    tokenizer = train_tokenizer(train, vocab_size=2000)
    cfg = LanguageModelConfig(family="gru", block_size=64, d_model=128, n_layers=1, dropout=0.1)
    lm, lm_metrics = train_language_model(
        train, tokenizer, cfg, TrainConfig(epochs=epochs, batch_size=16, lr=1e-2, patience=0, progress_bar=False),
        val_texts=val, on_progress=lambda pct, msg: progress(65 + 0.3 * pct, f"language model: {msg}"),
    )
    lm.save(out_dir / "lm")
    ng = NgramLanguageModel(NgramConfig(order=3)).fit([tokenizer.encode(t) for t in train])
    ng.save(out_dir / "ngram")
    tokenizer.save(out_dir / "ngram" / "tokenizer.json")
    gru_ppl = float(lm_metrics.get("val_perplexity", float("inf")))
    ngram_ppl = float(ng.perplexity([tokenizer.encode(t) for t in val]))
    return {
        "gru_val_perplexity": round(gru_ppl, 3),
        "ngram_val_perplexity": round(ngram_ppl, 3),
        "assist_model": "gru" if gru_ppl <= ngram_ppl else "ngram",
        "parameters": lm_metrics.get("parameters"),
        "wall_s": round(float(lm_metrics.get("wall_s", 0.0)), 2),
    }
