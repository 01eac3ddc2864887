"""Training the one multi-head (topic + sentiment) news classifier.

``train_news_classifier`` is plain Python (no database, no settings): the
benchmark calls it on Financial PhraseBank with ``topic_labels=None``.
``train_from_db`` gathers gold labels (labelled imports and staff
corrections), splits them into train / validation / calibration by a hash of
each item's URL, trains with the engine's fine-tuning recipe (full fine-tune
when the data allows, heads only otherwise), reports held-out metrics on the
calibration rows, and registers the model as ``sentiment.news``. After a
promote, ``relabel.py`` re-labels the stored items with the new version.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

SENTIMENT_LABELS = ["negative", "neutral", "positive"]
Progress = Callable[[float, str], None]


def _has_labels(labels: Sequence | None) -> bool:
    return labels is not None and any(lab for lab in labels)


def _none_if_blank(labels: Sequence | None, n: int) -> list[str | None]:
    if labels is None:
        return [None] * n
    return [lab if lab else None for lab in labels]


def train_news_classifier(
    texts: Sequence[str],
    topic_labels: Sequence[str | None] | None,
    sentiment_labels: Sequence[str | None],
    val_texts: Sequence[str] | None = None,
    val_topic_labels: Sequence[str | None] | None = None,
    val_sentiment_labels: Sequence[str | None] | None = None,
    on_progress: Progress | None = None,
    *,
    topics: Sequence[str] | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    seed: int = 1234,
    mode: str | None = None,
):
    """Train the news classifier with the engine recipe (``aigc_core.training.recipe``):
    full fine-tune of the encoder when there are enough rows (``recipe.choose_mode``;
    contrastive tuning when they are few per class), heads on the frozen encoder
    otherwise; ``mode`` forces one.

    Heads: ``sentiment`` always (negative/neutral/positive); ``topic`` when any
    topic label is given (label set ``topics`` or the labels seen, sorted).
    ``None`` or "" means "no label for this head" (masked from the loss).
    Returns (model, metrics) where metrics has, per head on the validation set,
    accuracy, macro-F1 and the majority-class baseline, plus ``mode`` and ``mode_reason``."""
    from aigc_core.models.classifier import ClassifierConfig, train_classifier
    from aigc_core.training.recipe import MIN_STEPS, choose_mode, finetune_train_config, rows_per_class

    n = len(texts)
    heads: dict[str, list[str]] = {"sentiment": list(SENTIMENT_LABELS)}
    labels: dict[str, list[str | None]] = {"sentiment": _none_if_blank(sentiment_labels, n)}
    if _has_labels(topic_labels):
        heads = {"topic": list(topics or sorted({t for t in topic_labels if t})), **heads}
        labels = {"topic": _none_if_blank(topic_labels, n), **labels}
    val_labels = None
    if val_texts is not None:
        m = len(val_texts)
        val_labels = {"sentiment": _none_if_blank(val_sentiment_labels, m)}
        if "topic" in heads:
            val_labels["topic"] = _none_if_blank(val_topic_labels, m)
    # Contrastive only when every head is few-shot: a well-labelled head trains better with a full fine-tune.
    mode, reason = choose_mode(n, mode, max(rows_per_class(v) for v in labels.values()))
    config = ClassifierConfig(heads=heads, mode=mode, class_weights=True)
    overrides = {"seed": seed, **{k: v for k, v in (("epochs", epochs), ("batch_size", batch_size), ("lr", lr))
                                  if v}}
    model, engine_metrics = train_classifier(
        list(texts), labels, config, finetune_train_config(mode, **overrides),
        val_texts=list(val_texts) if val_texts is not None else None, val_labels=val_labels,
        on_progress=on_progress, min_steps=0 if epochs else MIN_STEPS,
    )
    metrics: dict = {"engine": _jsonable(engine_metrics), "train_size": n, "mode": mode, "mode_reason": reason}
    if val_texts is not None and len(val_texts):
        metrics.update(evaluate(model, val_texts, val_labels))
    return model, metrics


def evaluate(model, texts: Sequence[str], labels: dict[str, Sequence[str | None]]) -> dict:
    """Per head: accuracy, macro-F1, majority-class accuracy, on the labelled rows."""
    from aigc_core.training import metrics as M

    probs = model.predict_proba(list(texts))
    out: dict = {}
    for head, gold in labels.items():
        if head not in probs:
            continue
        label_set = model.config.heads[head]
        idx = [i for i, g in enumerate(gold) if g]
        if not idx:
            continue
        y_true = [gold[i] for i in idx]
        y_pred = [label_set[int(j)] for j in np.asarray(probs[head])[idx].argmax(axis=1)]
        majority = Counter(y_true).most_common(1)[0][1] / len(y_true)
        out[head] = {
            "accuracy": round(float(M.accuracy(y_true, y_pred)), 4),
            "macro_f1": round(float(M.macro_f1(y_true, y_pred, labels=label_set)), 4),
            "majority_accuracy": round(majority, 4),
            "n": len(idx),
        }
    return out


def _jsonable(value):
    return json.loads(json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def news_splits(keys: Sequence[str]):
    """Train / validation / calibration row indices by a hash of each item's URL (10% + 10%):
    an item never changes side as the data grows. Validation makes the model's choices;
    calibration is touched by nothing but the held-out figures."""
    from aigc_core.data.splits import keyed_indices

    return keyed_indices(list(keys), validation=0.1, calibration=0.1)


def train_from_db(progress: Progress, epochs: int | None = None) -> dict:
    """Train on every gold-labelled item (imports + staff corrections), register, promote."""
    from apps.common import engine
    from apps.sentiment import conf
    from apps.sentiment.models import NewsItem

    rows = list(NewsItem.objects.exclude(gold_topic="", gold_sentiment="")
                .order_by("id").values_list("url", "headline", "body", "gold_topic", "gold_sentiment"))
    if len(rows) < 20:
        raise ValueError(f"only {len(rows)} labelled items; import a labelled CSV (topic, sentiment columns) "
                         "or correct labels on the dashboard first")
    texts = [f"{h}. {b}".strip() if b else h for _, h, b, _, _ in rows]
    topics_all = [t for *_, t, _ in rows]
    sents_all = [s for *_, s in rows]
    parts = news_splits([u for u, *_ in rows])
    tr, va, cal = parts.train, parts.validation, parts.calibration
    if not va or not cal:  # tiny data: the hash left a part empty; take one of each in turn
        idx = list(range(len(rows)))
        va, cal, tr = idx[0::10], idx[1::10], [i for i in idx if i % 10 not in (0, 1)]
    progress(2, f"training on {len(tr)} items, validating on {len(va)}, {len(cal)} held out for calibration")
    T = lambda idx: [texts[i] for i in idx]  # noqa: E731
    model, metrics = train_news_classifier(
        T(tr), [topics_all[i] for i in tr], [sents_all[i] for i in tr],
        T(va), [topics_all[i] for i in va], [sents_all[i] for i in va],
        on_progress=lambda p, m: progress(2 + p * 0.9, m), topics=conf.topics(), epochs=epochs,
    )
    # "Held-out" on the dashboard = the calibration rows, on which nothing was chosen.
    metrics["validation"] = {k: metrics.pop(k) for k in ("sentiment", "topic") if k in metrics}
    metrics.update(evaluate(model, T(cal), {"topic": [topics_all[i] for i in cal],
                                            "sentiment": [sents_all[i] for i in cal]}))
    metrics["val_size"], metrics["heldout_size"] = len(va), len(cal)
    data_hash = hashlib.sha256(json.dumps([texts, topics_all, sents_all]).encode()).hexdigest()
    version = engine.registry().save(
        conf.MODEL_NAME, writer=model.save, metrics=metrics, data_hash=data_hash,
        config={"heads": model.config.heads, "mode": metrics["mode"], "mode_reason": metrics["mode_reason"],
                "epochs": metrics["engine"].get("epochs")}, promote=True,
    )
    engine.forget(conf.MODEL_NAME)
    progress(100, f"registered {conf.MODEL_NAME} v{version.version} ({metrics['mode']} mode)")
    return {"version": version.version, "metrics": metrics, "mode": metrics["mode"],
            "mode_reason": metrics["mode_reason"], "train_size": len(tr), "val_size": len(va),
            "heldout_size": len(cal)}
