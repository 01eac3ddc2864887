"""Re-labelling stored news after a new model version is promoted, so every chart
and alert speaks with one model's voice.

Two phases, so a failure leaves the old labels and trends untouched:
1. predict: the promoted model labels every classified item whose labels came
   from another version (batches, progress 0-90%); nothing is written;
2. swap: in one transaction, the predictions replace the old ones (a staff
   correction stays the effective label; only the predicted_* fields move) and the
   trend buckets are rebuilt from scratch from the effective labels (recount).
The task that runs this (``tasks.relabel_news``) then re-evaluates the alert rules.
"""
from __future__ import annotations

from collections.abc import Callable

from django.db import transaction
from django.utils import timezone

from apps.sentiment import conf
from apps.sentiment.models import Classification, NewsItem, TrendBucket

Progress = Callable[[float, str], None]


class RelabelError(RuntimeError):
    """Nothing to re-label with (no promoted model)."""


def _noop(pct: float, msg: str = "") -> None:
    return None


def recount_trends() -> int:
    """Rebuild every trend bucket from the effective labels. Call inside a transaction."""
    from apps.sentiment.services import apply_trends

    TrendBucket.objects.all().delete()
    rows = [(published_at, topic, sentiment, tickers) for published_at, topic, sentiment, tickers in
            Classification.objects.select_related("item").values_list(
                "item__published_at", "topic", "sentiment", "item__tickers").iterator(chunk_size=2000)]
    return apply_trends(rows) if rows else 0


def relabel_items(progress: Progress = _noop) -> dict:
    """Re-label every stored item not labelled by the promoted version; recount trends."""
    from apps.sentiment.services import classify_texts, load_model

    loaded = load_model()
    if loaded is None:
        raise RelabelError(f"no {conf.MODEL_NAME} model is promoted: nothing to re-label with")
    model, version = loaded.obj, loaded.version
    stale = list(Classification.objects.exclude(model_version=version).order_by("item_id")
                 .values_list("id", "item_id"))
    total = len(stale)
    progress(0, f"{total} items to re-label with v{version}")
    predictions: dict[int, dict] = {}
    texts = {pk: item.text for pk, item in
             NewsItem.objects.in_bulk([item_id for _, item_id in stale]).items()}
    for start in range(0, total, conf.CLASSIFY_BATCH):
        chunk = stale[start : start + conf.CLASSIFY_BATCH]
        preds = classify_texts(model, [texts[item_id] for _, item_id in chunk])
        for (cls_id, _), p in zip(chunk, preds, strict=True):
            predictions[cls_id] = p
        done = min(total, start + len(chunk))
        progress(90 * done / max(1, total), f"re-labelled {done} of {total}")

    progress(90, "storing the new labels and recounting the trends")
    changed = 0
    with transaction.atomic():
        rows = list(Classification.objects.select_for_update().filter(id__in=list(predictions)))
        now = timezone.now()
        for cls in rows:
            p = predictions[cls.id]
            topic = p.get("topic", "")
            corrected = cls.corrected_at is not None
            if not corrected and (cls.topic != topic or cls.sentiment != p["sentiment"]):
                changed += 1
            if not corrected:  # a staff correction stays the effective label
                cls.topic, cls.sentiment = topic, p["sentiment"]
            cls.predicted_topic, cls.predicted_sentiment = topic, p["sentiment"]
            cls.topic_confidence = p.get("topic_confidence", 0.0)
            cls.sentiment_confidence = p["sentiment_confidence"]
            cls.probabilities = p["probabilities"]
            cls.model_version = version
            cls.classified_at = now
        Classification.objects.bulk_update(rows, ["topic", "sentiment", "predicted_topic", "predicted_sentiment",
                                                  "topic_confidence", "sentiment_confidence", "probabilities",
                                                  "model_version", "classified_at"], batch_size=500)
        buckets = recount_trends()
    progress(100, f"re-labelled {len(rows)} items with v{version} ({changed} changed); {buckets} trend buckets")
    return {"relabelled": len(rows), "changed": changed, "model_version": version, "buckets": buckets}
