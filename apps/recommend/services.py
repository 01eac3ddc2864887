"""The recommend app's entry points, what views, the API, tasks and commands call:
the catalogue (apps.recommend.catalogue), events (apps.recommend.events), serving
(apps.recommend.serving) and the training job below."""
from __future__ import annotations

import logging

import numpy as np

from apps.common import engine
from apps.recommend.catalogue import (  # noqa: F401 - the app's public names
    MAX_IMPORT_ROWS,
    ImportResult,
    catalogue_summary,
    clean_item_row,
    embed_items,
    ensure_embeddings,
    import_items,
    parse_catalogue_file,
    remove_items,
    search_items,
    upsert_items,
)
from apps.recommend.errors import RecommendError
from apps.recommend.events import (  # noqa: F401
    HISTORY_EVENTS,
    MAX_EVENT_BATCH,
    UserHistory,
    clean_event,
    record_events,
    search_users,
    user_history,
)
from apps.recommend.models import Event, Item
from apps.recommend.serving import (  # noqa: F401
    MAX_CANDIDATES,
    MAX_CONTEXT_ITEMS,
    MAX_K,
    MAX_TEXT_CHARS,
    MODEL_NAME,
    live_catalogue,
    recommend,
    reset_serving_cache,
    score,
    similar_items,
)
from apps.recommend.training import RecommendTrainConfig, train_and_evaluate

log = logging.getLogger(__name__)


def training_inputs() -> tuple[list[dict], list[dict], np.ndarray]:
    """Every item (removed ones too: they explain history) and event, as plain dicts."""
    items = list(Item.objects.order_by("pk"))
    vecs = ensure_embeddings(items)
    item_rows = [{"id": i.pk, "text": i.text, "category": i.category, "price": i.price,
                  "created_at": i.created_at} for i in items]
    events = [{"user": u, "item": it, "kind": k, "value": v, "at": at}
              for u, it, k, v, at in Event.objects.order_by("at", "pk").values_list(
                  "user_id", "item_id", "kind", "value", "at").iterator(chunk_size=5000)]
    return item_rows, events, vecs


def train_recommender(progress=None, epochs: int | None = None) -> dict:
    """Train, evaluate against the baselines, save to the registry as recommend.model."""
    progress = progress or (lambda pct, msg: None)
    progress(1, "reading the catalogue and events")
    items, events, vecs = training_inputs()
    if not items:
        raise RecommendError("the catalogue is empty: import items first")
    cfg = RecommendTrainConfig()
    if epochs:
        cfg.epochs = int(epochs)
    artifacts, metrics = train_and_evaluate(items, events, cfg, on_progress=progress, text_features=vecs)
    reg = engine.registry()
    version = reg.save(MODEL_NAME, writer=artifacts.save, metrics=metrics, data_hash=artifacts.meta["data_hash"],
                       config=artifacts.meta["config"], promote=True)
    engine.forget(MODEL_NAME)
    return {"version": version.version, "recall@10": metrics.get("recall@10"),
            "baseline_recall@10": metrics.get("systems", {}).get("popularity", {}).get("recall@10"),
            "beats_baselines": metrics.get("baselines", {}).get("ok"),
            "eval_users": metrics.get("eval_users"), "wall_s": metrics.get("wall_s")}


def model_versions() -> list:
    try:
        return list(reversed(engine.registry().versions(MODEL_NAME)))
    except Exception:  # noqa: BLE001 - an unreadable registry shows as "no versions" on the dashboard
        log.exception("could not list %s versions", MODEL_NAME)
        return []
