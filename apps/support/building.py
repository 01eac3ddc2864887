"""Building the support bot (the "support.bot" artifact that apps/support/bot.py
loads), as named steps read top to bottom by ``build_bot``:

1. ``embed_inputs``      past questions and KB chunks -> shipped-encoder vectors
2. ``split_rows``        train / validation / calibration rows, stable per question
3. ``fit_intent``        the intent classifier on the train rows (validation for its choices),
                         and its temperature on the validation rows (reported, not applied)
4. ``score_rows`` +      the bot as built so far, scored on the calibration rows and the
   ``summarise``         out-of-scope probes: answer accuracy, the precision/coverage curve,
                         the threshold, the agent-assist relevance floor
5. ``build_indexes``     the FAISS indexes over every row and KB chunk
6. ``train_reply_models`` the agent-assist language models and their likelihood floor

No database here: services.train_bot hands in plain lists, the benchmark does the same.
"""
from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from apps.support import training
from apps.support.bot import Bot, _encode, calibrate, token_likelihood
from apps.support.slots import templatize

Progress = Callable[[float, str], None]

LM_MAX_TEXTS = 4000  # agent replies the language model trains on
AIMED_PRECISION = 0.95  # the threshold the bot suggests answers at least this share right
ASSIST_PRECISION = 0.8  # agent-assist shows a suggestion when at least this share would be relevant
TEMPERATURES = tuple(round(t, 2) for t in np.geomspace(0.25, 8.0, 31))  # grid for temperature scaling
LM_FLOOR_QUANTILE = 0.25  # a completion less likely than 3 in 4 real held-out replies is not shown
LM_FLOOR_REPLIES = 40  # held-out replies scored to set that floor


@dataclass
class RowSplit:
    """Row indices into ``pairs``: train (weights, index of the probe), validation (the
    classifier's own choices, temperature), calibration (threshold and held-out figures)."""

    train: list[int]
    validation: list[int]
    calibration: list[int]


# -- 1. vectors --------------------------------------------------------------------------

def embed_inputs(pairs: list[dict], chunks: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    q_vecs = _encode([p["question"] for p in pairs])
    kb_vecs = _encode([f"{c['title']}. {c['heading']}. {c['text']}" for c in chunks])
    return q_vecs, kb_vecs


# -- 2. splits ---------------------------------------------------------------------------

def split_rows(pairs: list[dict]) -> RowSplit:
    """Labelled rows split by intent and ordered by a hash of the question, so a question
    keeps its part when the data grows (a new staff intent does not reshuffle the others):
    two versions trained on overlapping data are scored on the same calibration questions.
    Unlabelled rows only train (retrieval)."""
    labels = [p.get("label") or "" for p in pairs]
    labelled = [i for i, lab in enumerate(labels) if lab]
    parts = training.intent_splits([labels[i] for i in labelled], keys=[pairs[i]["question"] for i in labelled])
    return RowSplit(
        train=sorted([labelled[i] for i in parts.train] + [i for i, lab in enumerate(labels) if not lab]),
        validation=[labelled[i] for i in parts.validation],
        calibration=[labelled[i] for i in parts.calibration],
    )


# -- 3. intent classifier -------------------------------------------------------------------

def fit_intent(pairs: list[dict], q_vecs: np.ndarray, split: RowSplit, progress: Progress,
               epochs: int | None, mode: str | None = None):
    """(classifier or None, its metrics, temperature). None with fewer than two intents."""
    labels = [p.get("label") or "" for p in pairs]
    tr = [i for i in split.train if labels[i]]
    classes = sorted({labels[i] for i in tr})
    if len(classes) < 2:
        return None, {}, 1.0
    va = [i for i in split.validation if labels[i] in classes]
    progress(10, f"training the intent classifier on {len(classes)} intents")
    classifier, clf_metrics = training.train_intent_classifier(
        [pairs[i]["question"] for i in tr], [labels[i] for i in tr],
        [pairs[i]["question"] for i in va] or None, [labels[i] for i in va] or None,
        on_progress=lambda pct, msg: progress(10 + 0.4 * pct, f"intent: {msg}"),
        epochs=epochs, mode=mode,
    )
    metrics = {k: v for k, v in clf_metrics.items() if isinstance(v, (int, float, str))}
    temperature = fit_temperature(classifier, [pairs[i]["question"] for i in va], q_vecs[va], [labels[i] for i in va])
    metrics["temperature"] = temperature
    return classifier, metrics, temperature


def fit_temperature(classifier, texts: Sequence[str], vecs: np.ndarray, labels: Sequence[str]) -> float:
    """The temperature that minimises the validation rows' negative log-likelihood
    (1.0 when there are too few rows to say)."""
    classes = list(classifier.config.heads["intent"])
    index = {c: i for i, c in enumerate(classes)}
    rows = [j for j, lab in enumerate(labels) if lab in index]
    if len(rows) < 5:
        return 1.0
    if classifier.config.mode == "head":
        probs = classifier.predict_proba_from_embeddings(vecs[rows])["intent"]
    else:
        probs = classifier.predict_proba([texts[j] for j in rows], frozen_embeddings=vecs[rows])["intent"]
    y = np.asarray([index[labels[j]] for j in rows])

    def nll(t: float) -> float:
        p = calibrate(probs, t)
        return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1.0)).mean())

    return float(min(TEMPERATURES, key=nll))


# -- 4. evaluation ---------------------------------------------------------------------------

def score_rows(bot: Bot, questions: Sequence[str], vecs: np.ndarray, labels: Sequence[str],
               template_ids: Sequence[int | None], skip_same: bool = False) -> list[dict]:
    """What ``bot`` answers each question, and whether that serves the right intent.

    An answer is right when it is the question's own template or another template of the
    same intent (3.6k agent replies make thousands of templates; any of an intent's
    wordings answers it). Also per row: the classifier's own intent, whether the right
    answer is in the top 3 (the pick + agent-assist's next ones), and agent-assist's top
    suggestion with its score (its relevance floor is chosen on these)."""
    rows = []
    for i, q in enumerate(questions):
        vec = vecs[i : i + 1]
        cand = bot.candidate(q, vec, skip_same=skip_same)
        label, want = labels[i], template_ids[i]

        def serves(tid, label=label, want=want) -> bool:
            if tid is None:
                return False
            return tid == want or bool(label) and bot.templates.get(int(tid), {}).get("intent") == label

        suggestions = bot.suggest_templates(q, k=3, vec=vec, skip=q[:300] if skip_same else None)
        ranked = ([cand.template_id] + [s["template_id"] for s in suggestions
                                         if s["template_id"] != cand.template_id])[:3]
        top = suggestions[0] if suggestions else None
        rows.append({
            "question": q[:300], "label": label, "template_id": cand.template_id, "intent": cand.intent,
            "confidence": cand.confidence, "correct": serves(cand.template_id),
            "classifier_intent": cand.classifier_intent, "top3": any(serves(t) for t in ranked),
            "assist_score": top["score"] if top else 0.0, "assist_ok": serves(top["template_id"]) if top else False,
        })
    return rows


def summarise(rows: list[dict], probe_rows: list[dict], aimed: float = AIMED_PRECISION) -> dict[str, Any]:
    """Held-out figures from scored calibration rows and out-of-scope probe rows.

    Each figure measures one thing: ``answer_accuracy`` the bot's pick (right intent) at
    any confidence, ``intent_accuracy`` the classifier alone, ``answer_recall_at_3``
    whether the right answer is among three; coverage at a precision is a share of the
    in-scope rows answered at the threshold that reaches that precision, where answering a
    probe is an error. ``suggested_threshold`` is None when no threshold reaches ``aimed``;
    ``assist_floor`` is agent-assist's relevance floor, chosen the same way on its top
    suggestion's score (1.0, show nothing, when unreachable)."""
    n = len(rows)
    conf = [r["confidence"] for r in rows] + [r["confidence"] for r in probe_rows]
    correct = [r["correct"] for r in rows] + [False] * len(probe_rows)
    in_scope = [True] * n + [False] * len(probe_rows)
    cov = training.coverage_at_precision_from_confidence(conf, correct, in_scope=in_scope)
    target = cov.get(str(aimed), {})
    reached = bool(target.get("coverage"))
    threshold = midway_threshold(conf, target) if reached else None
    handed_off = (sum(r["confidence"] < threshold for r in probe_rows) / len(probe_rows)
                  if reached and probe_rows else None)
    assist_scores = [r["assist_score"] for r in rows] + [r["assist_score"] for r in probe_rows]
    assist = training.coverage_at_precision_from_confidence(
        assist_scores, [r["assist_ok"] for r in rows] + [False] * len(probe_rows), targets=(ASSIST_PRECISION,),
        in_scope=in_scope)[str(ASSIST_PRECISION)]
    return {
        "heldout": n,
        "out_of_scope_probes": len(probe_rows),
        "answer_accuracy": round(sum(r["correct"] for r in rows) / n, 4),
        "answer_recall_at_1": round(sum(r["correct"] for r in rows) / n, 4),
        "answer_recall_at_3": round(sum(r["top3"] for r in rows) / n, 4),
        "intent_accuracy": round(sum(r["classifier_intent"] == r["label"] for r in rows) / n, 4),
        "curve": training.precision_coverage_curve(conf, correct, in_scope),
        "coverage_at_precision": cov,
        "aimed_precision": aimed,
        "threshold_reached": reached,
        "suggested_threshold": threshold,
        "probes_handed_off": None if handed_off is None else round(handed_off, 4),
        # Unreachable: nothing is relevant enough to show, so agent-assist shows nothing.
        "assist_floor": midway_threshold(assist_scores, assist) if assist["coverage"] else 1.0,
    }


def midway_threshold(scores: Sequence[float], reached: dict) -> float:
    """A threshold midway between the lowest score kept at the aimed precision and the
    highest one below it: any value between splits the calibration rows the same way, and
    the middle leaves a new question the most room either side (on a small calibration set
    the lowest kept score alone sits right under its near-duplicates of training rows)."""
    kept = reached["threshold"]
    below = [s for s in scores if s < kept]
    return round((kept + max(below)) / 2, 4) if below else kept


def answers_at(rows: list[dict], threshold: float | None) -> list[dict]:
    """Each row's outcome at a threshold: the intent answered, or "" (handed off)."""
    t = 1.01 if threshold is None else threshold
    return [{"question": r["question"], "label": r["label"],
             "answer": (r["intent"] or f"template {r['template_id']}") if r["confidence"] >= t else "",
             "correct": bool(r["correct"] and r["confidence"] >= t)} for r in rows]


def evaluate_probe(meta: dict, classifier, pairs: list[dict], q_vecs: np.ndarray, split: RowSplit,
                   probe_vecs: np.ndarray) -> tuple[dict, list[dict]]:
    """The bot as built so far (the classifier, an index of the train rows only) scored on the
    calibration rows and the out-of-scope probes. Returns (metrics, calibration answers)."""
    from aigc_core.retrieval.index import IndexConfig, VectorIndex

    q_index = VectorIndex(IndexConfig(kind="flat"))
    if split.train:
        q_index.add(np.asarray(split.train), q_vecs[split.train])
    probe = Bot(meta, q_index, VectorIndex(IndexConfig(kind="flat")), classifier)
    cal = split.calibration
    rows = score_rows(probe, [pairs[i]["question"] for i in cal], q_vecs[cal],
                      [pairs[i].get("label") or "" for i in cal], [pairs[i].get("template_id") for i in cal])
    probes = training.OUT_OF_SCOPE_PROBES
    probe_rows = score_rows(probe, probes, probe_vecs, [""] * len(probes), [None] * len(probes))
    metrics = summarise(rows, probe_rows)
    return metrics, answers_at(rows, metrics["suggested_threshold"])


# -- 5. indexes ----------------------------------------------------------------------------

def build_indexes(out_dir: Path, q_vecs: np.ndarray, kb_vecs: np.ndarray) -> None:
    from aigc_core.retrieval.index import IndexConfig, VectorIndex

    for name, vecs in (("questions.faiss", q_vecs), ("kb.faiss", kb_vecs)):
        index = VectorIndex(IndexConfig(kind="flat"))
        if len(vecs):
            index.add(np.arange(len(vecs)), vecs)
        index.save(out_dir / name)


# -- 6. agent-assist language models ------------------------------------------------------

def train_reply_models(out_dir: Path, replies: list[str], epochs: int, progress: Progress) -> dict:
    """GRU LM (the seed's Embedding -> GRU -> Dense) and an n-gram baseline on the same
    subword tokens, so their perplexities compare; the better one completes agents' drafts,
    and only above ``lm_floor``, the per-token likelihood it gives real held-out replies."""
    from aigc_core.data import train_tokenizer
    from aigc_core.generation import NgramAdapter
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
    assist_model = "gru" if gru_ppl <= ngram_ppl else "ngram"
    model = lm if assist_model == "gru" else NgramAdapter(ng, tokenizer)
    # The floor: how likely the chosen model finds the second half of real held-out replies.
    scores = []
    for text in val[:LM_FLOOR_REPLIES]:
        words = text.split()
        if len(words) >= 4:
            cut = len(words) // 2
            scores.append(token_likelihood(model, " ".join(words[:cut]), " " + " ".join(words[cut:])))
    floor = float(np.quantile(scores, LM_FLOOR_QUANTILE)) if scores else 0.0
    return {
        "gru_val_perplexity": round(gru_ppl, 3),
        "ngram_val_perplexity": round(ngram_ppl, 3),
        "assist_model": assist_model,
        "lm_floor": round(floor, 4),
        "parameters": lm_metrics.get("parameters"),
        "wall_s": round(float(lm_metrics.get("wall_s", 0.0)), 2),
    }


# -- the whole build -------------------------------------------------------------------------

def build_bot(
    out_dir: Path,
    pairs: list[dict],
    templates: dict[int, dict],
    chunks: list[dict],
    progress: Progress | None = None,
    intent_epochs: int | None = training.INTENT_EPOCHS,
    lm_epochs: int = 6,
    intent_mode: str | None = None,
    vectors: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Train every part into ``out_dir`` and return the metrics.

    ``pairs``: [{"question", "answer", "label", "template_id"}]; ``templates``:
    {id: {"text", "intent"}}; ``chunks``: [{"chunk_id", "article_id", "title", "slug",
    "url", "heading", "text"}]. ``metrics["calibration_answers"]`` holds what this version
    answers on each calibration question (the deploy gate diffs them). ``intent_mode``
    forces the classifier's mode (head | top | full); ``vectors``: the questions' and
    chunks' shipped-encoder vectors when the caller has them (a benchmark's cache)."""
    progress = progress or (lambda pct, msg: None)
    if not pairs and not chunks:
        raise ValueError("nothing to train on: ingest transcripts or KB articles first")
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    metrics: dict[str, Any] = {"pairs": len(pairs), "templates": len(templates), "kb_chunks": len(chunks)}

    progress(5, f"embedding {len(pairs)} questions and {len(chunks)} KB chunks")
    q_vecs, kb_vecs = vectors if vectors is not None else embed_inputs(pairs, chunks)
    split = split_rows(pairs)

    classifier, clf_metrics, _temperature = fit_intent(pairs, q_vecs, split, progress, intent_epochs, intent_mode)
    if classifier is not None:
        metrics["intent"] = clf_metrics
    labels = list(classifier.config.heads["intent"]) if classifier is not None else []
    trained_on = Counter(pairs[i].get("label") for i in split.train if pairs[i].get("label"))
    meta = {
        "labels": labels,
        # Fitted (metrics["intent"]["temperature"]) but not applied: on BANKING77 with a quarter
        # of the intents unknown it handed off fewer of them at the same precision (bench intent,
        # out-of-scope table). Bot.intent_probs applies meta["temperature"] when one is set.
        "temperature": 1.0,
        "intent_counts": {lab: trained_on[lab] for lab in labels},
        "templates": {str(k): v for k, v in templates.items()},
        "questions": [{"question": p["question"][:300], "template_id": p.get("template_id"),
                       "intent": p.get("label") or ""} for p in pairs],
        "chunks": chunks,
    }

    if split.calibration:
        progress(52, "evaluating on held-out questions")
        held_out, answers = evaluate_probe(meta, classifier, pairs, q_vecs, split,
                                           _encode(training.OUT_OF_SCOPE_PROBES))
        metrics.update(held_out)
        metrics["calibration_answers"] = answers
        meta["assist_floor"] = held_out["assist_floor"]

    progress(60, "building the indexes")
    build_indexes(out_dir, q_vecs, kb_vecs)
    if classifier is not None:
        classifier.save(out_dir / "intent")

    # The language model learns replies with their slots as placeholders: it can then
    # never complete a draft with another customer's order number or name.
    replies = [templatize(p["answer"])[0] for p in pairs if p.get("answer")][:LM_MAX_TEXTS]
    if len(replies) >= 10:
        progress(65, "training the language model on agent replies")
        metrics["lm"] = train_reply_models(out_dir, replies, lm_epochs, progress)
        meta["assist_model"] = metrics["lm"]["assist_model"]
        meta["lm_floor"] = metrics["lm"]["lm_floor"]
    metrics["wall_s"] = round(time.monotonic() - t0, 2)
    (out_dir / "bot.json").write_text(json.dumps(meta))
    progress(99, "saving")
    return metrics
