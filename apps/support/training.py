"""Plain-Python training and evaluation for the support bot (no ORM rows):
lists of texts and labels in, models and metrics out. The benchmark calls the
same functions on BANKING77 that the Celery job calls on the shop's transcripts.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

Progress = Callable[[float, str], None]

INTENT_EPOCHS: int | None = None  # None: the engine recipe's epochs for the mode that runs
PRECISION_TARGETS = (0.8, 0.9, 0.95)
VALIDATION_SHARE = 0.1  # early stopping, epoch, probe C and blend weight are chosen here
CALIBRATION_SHARE = 0.1  # the bot's threshold and every "held-out" figure come from here only


def intent_splits(labels: Sequence[str], seed: int = 1234, keys: Sequence[str] | None = None):
    """Row indices named for their use: ``train``, ``validation`` (model choices) and
    ``calibration`` (the confidence threshold, held-out metrics); stratified by intent.
    An intent with 2 rows or fewer stays whole in train. ``keys`` (the questions): a
    question keeps its part across retrains (see ``stratified_indices``)."""
    from aigc_core.data.splits import stratified_indices

    return stratified_indices(list(labels), VALIDATION_SHARE, CALIBRATION_SHARE, seed, min_per_class=2,
                              keys=list(keys) if keys is not None else None)


def train_intent_classifier(
    texts: Sequence[str],
    labels: Sequence[str],
    val_texts: Sequence[str] | None = None,
    val_labels: Sequence[str] | None = None,
    on_progress: Progress | None = None,
    epochs: int | None = INTENT_EPOCHS,
    mode: str | None = None,
    seed: int = 1234,
):
    """Intent classifier on the shipped MiniLM with the engine's fine-tuning recipe
    (``aigc_core.training.recipe``); full fine-tune by default when the data allows,
    contrastive tuning + a regression head (SetFit) when it has few rows per intent.

    Returns (model, metrics); metrics say which mode ran and why (``mode``,
    ``mode_reason``). ``model.predict_proba(texts)["intent"]`` is (N, n_labels) in the
    order of ``model.config.heads["intent"]``."""
    from aigc_core.models.classifier import ClassifierConfig, train_classifier
    from aigc_core.training.recipe import MIN_STEPS, choose_mode, finetune_train_config, rows_per_class

    classes = sorted(set(labels))
    if len(classes) < 2:
        raise ValueError("an intent classifier needs at least two different intents")
    mode, reason = choose_mode(len(texts), mode, rows_per_class(labels))
    config = ClassifierConfig(heads={"intent": classes}, mode=mode, class_weights=True)
    overrides = {"seed": seed}
    if epochs:
        overrides["epochs"] = epochs
    train_config = finetune_train_config(mode, **overrides)
    model, metrics = train_classifier(
        list(texts), {"intent": list(labels)}, config, train_config,
        val_texts=list(val_texts) if val_texts else None,
        val_labels={"intent": list(val_labels)} if val_labels else None,
        on_progress=on_progress, min_steps=0 if epochs else MIN_STEPS,
    )
    metrics["mode_reason"] = reason
    return model, metrics


# Questions a shop's bot must not answer: the evaluation adds them to the held-out
# set as "should hand off", so the curve's precision counts answering them as errors.
OUT_OF_SCOPE_PROBES = [
    "What is the capital of Peru?", "Can you write me a poem about the sea?", "Who won the football match yesterday?",
    "What's the weather like tomorrow?", "How do I bake sourdough bread?", "Explain quantum entanglement",
    "What is the boiling point of mercury?", "Tell me a joke", "Which stocks should I buy?",
    "How tall is Mount Everest?", "Translate 'good morning' into Japanese", "What is 17 times 23?",
    "Who is the president of France?", "Recommend a good movie for tonight", "How do I fix my car's brakes?",
    "What time is it in Tokyo?", "Can you help with my maths homework?", "What is the meaning of life?",
    "How do vaccines work?", "Book me a table at an Italian restaurant", "Is it going to snow in Berlin?",
    "What's the best programming language?", "How many calories are in a banana?", "Play some music",
    "Who painted the Mona Lisa?", "Can I get a mortgage with bad credit?", "How do I learn the guitar?",
    "What are the symptoms of the flu?", "Write a cover letter for me", "How far is the moon?",
]


def precision_coverage_curve(confidence: Sequence[float], correct: Sequence[bool],
                             in_scope: Sequence[bool] | None = None, points: int = 41) -> list[dict]:
    """Answer only when confidence >= t. Per t: precision of the answers given (an answered
    out-of-scope question is an error) and coverage, the share of in-scope questions answered."""
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=bool)
    scope = np.ones(len(conf), bool) if in_scope is None else np.asarray(in_scope, dtype=bool)
    out = []
    for t in np.linspace(0.0, 1.0, points):
        answered = conf >= t
        n = int(answered.sum())
        out.append({
            "threshold": round(float(t), 4),
            "coverage": round(int((answered & scope).sum()) / max(1, int(scope.sum())), 4),
            "precision": round(float(ok[answered].mean()), 4) if n else 1.0,
        })
    return out


def coverage_at_precision(probs, labels, targets: Sequence[float] = PRECISION_TARGETS,
                          classes: Sequence[str] | None = None) -> dict[str, dict]:
    """For each target precision, the lowest threshold on the top probability whose
    answered share reaches it, and the coverage there.

    ``probs``: (N, C) class probabilities; ``labels``: true class indices, or class
    names when ``classes`` (the column order) is given. Returns
    ``{"0.95": {"threshold", "coverage", "precision"}, ...}``; coverage 0 when unreachable."""
    p = np.asarray(probs, dtype=np.float64)
    if classes is not None:
        index = {c: i for i, c in enumerate(classes)}
        y = np.asarray([index.get(lab, -1) for lab in labels])
    elif any(isinstance(lab, str) for lab in labels):
        raise ValueError("labels are class names: pass classes= (the column order of probs)")
    else:
        y = np.asarray(labels, dtype=int)
    conf = p.max(axis=1)
    correct = p.argmax(axis=1) == y
    return coverage_at_precision_from_confidence(conf, correct, targets)


def coverage_at_precision_from_confidence(confidence, correct, targets: Sequence[float] = PRECISION_TARGETS,
                                          in_scope: Sequence[bool] | None = None) -> dict:
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=bool)
    scope = np.ones(len(conf), bool) if in_scope is None else np.asarray(in_scope, dtype=bool)
    order = np.argsort(-conf, kind="stable")
    hits = np.cumsum(ok[order])
    answered = np.arange(1, len(order) + 1)
    answered_in_scope = np.cumsum(scope[order])
    n_scope = max(1, int(scope.sum()))
    precision = hits / answered
    out = {}
    for target in targets:
        # Only cut between distinct confidence values: equal scores are answered together.
        valid = [i for i in range(len(order)) if (i == len(order) - 1 or conf[order[i]] != conf[order[i + 1]])]
        good = [i for i in valid if precision[i] >= target]
        if good:
            i = max(good)
            out[str(target)] = {"threshold": round(float(conf[order[i]]), 4),
                                "coverage": round(int(answered_in_scope[i]) / n_scope, 4),
                                "precision": round(float(precision[i]), 4)}
        else:
            out[str(target)] = {"threshold": 1.0, "coverage": 0.0, "precision": 0.0}
    return out


def holdout_split(labels: Sequence[str], val_ratio: float = 0.2, seed: int = 1234) -> tuple[list[int], list[int]]:
    """Stratified (train, validation) indices: each label with >= 3 examples gives ~val_ratio
    (at least one) to validation. Prefer ``intent_splits``, which also holds out calibration rows."""
    from aigc_core.data.splits import stratified_indices

    parts = stratified_indices(list(labels), val_ratio, 0.0, seed, min_per_class=2)
    return parts.train, parts.validation
