"""Training the one multi-head (topic + sentiment) news classifier.

``train_news_classifier`` is plain Python (no database, no settings): the
benchmark calls it on Financial PhraseBank with ``topic_labels=None``.
``train_from_db`` gathers gold labels (labelled imports and staff
corrections), trains, evaluates against the majority class, and registers
the model as ``sentiment.news``.
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
    epochs: int = 8,
    batch_size: int = 32,
    lr: float = 2e-3,
    seed: int = 1234,
    mode: str = "head",
):
    """Fine-tune heads on the frozen shipped MiniLM (``mode="head"``, fast on a CPU).

    Heads: ``sentiment`` always (negative/neutral/positive); ``topic`` when any
    topic label is given (label set ``topics`` or the labels seen, sorted).
    ``None`` or "" means "no label for this head" (masked from the loss).
    Returns (model, metrics) where metrics has, per head on the validation set,
    accuracy, macro-F1 and the majority-class baseline."""
    from aigc_core.models.classifier import ClassifierConfig, train_classifier
    from aigc_core.training import TrainConfig

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
    config = ClassifierConfig(heads=heads, mode=mode, class_weights=True)
    train_config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, patience=3,
                               progress_bar=False)
    model, engine_metrics = train_classifier(
        list(texts), labels, config, train_config,
        val_texts=list(val_texts) if val_texts is not None else None, val_labels=val_labels,
        on_progress=on_progress,
    )
    metrics: dict = {"engine": _jsonable(engine_metrics), "train_size": n}
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


def split_for_validation(keys: Sequence[str], every: int = 7) -> tuple[list[int], list[int]]:
    """A deterministic split by a hash of each row's key (its url): about 1/every to validation."""
    train, val = [], []
    for i, key in enumerate(keys):
        h = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16)
        (val if h % every == 0 else train).append(i)
    return train, val


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
    tr, va = split_for_validation([u for u, *_ in rows])
    progress(2, f"training on {len(tr)} items, validating on {len(va)}")
    model, metrics = train_news_classifier(
        [texts[i] for i in tr], [topics_all[i] for i in tr], [sents_all[i] for i in tr],
        [texts[i] for i in va], [topics_all[i] for i in va], [sents_all[i] for i in va],
        on_progress=lambda p, m: progress(2 + p * 0.93, m), topics=conf.topics(), epochs=epochs or 8,
    )
    data_hash = hashlib.sha256(json.dumps([texts, topics_all, sents_all]).encode()).hexdigest()
    metrics["val_size"] = len(va)
    version = engine.registry().save(
        conf.MODEL_NAME, writer=model.save, metrics=metrics, data_hash=data_hash,
        config={"heads": model.config.heads, "mode": "head", "epochs": epochs or 8}, promote=True,
    )
    engine.forget(conf.MODEL_NAME)
    progress(100, f"registered {conf.MODEL_NAME} v{version.version}")
    return {"version": version.version, "metrics": metrics, "train_size": len(tr), "val_size": len(va)}
