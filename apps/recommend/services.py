"""Recommend app logic: catalogue import, events, training, serving.

Serving policy (documented for the shop's front end):
- Removed or unavailable items are never recommended: they leave this process's live
  index at once and every answer is filtered against the database at serve time.
- Items a user purchased are never recommended to them again; items they already
  engaged with positively are not recommended either (they are their history).
- An unknown user is a new user, not an error: they get popular items, or items
  matching the session context (``context_item_ids``) when given.
- Unknown item ids are a 400 naming them, never a crash; new items not in the
  catalogue can be scored by their text alone.
- ``score`` is the ranker's logit (higher = better; compare within one answer),
  ``model_score`` the two-tower cosine.
- Bounded work: at most MAX_CANDIDATES candidates per call, texts truncated to
  MAX_TEXT_CHARS (flagged in the answer), k at most MAX_K.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
from django.db import transaction
from django.db.models import Count, Max
from django.utils import timezone

from apps.common import engine
from apps.common.csvparse import CSVInputError, read_csv
from apps.common.jsonparse import JSONInputError, clean_text, parse_json
from apps.recommend.models import Event, Item
from apps.recommend.ranking import FEATURES, ItemTable, Ranker, pair_features
from apps.recommend.training import (
    CONSUMED_KINDS,
    RATING_POSITIVE,
    RecommenderArtifacts,
    RecommendTrainConfig,
    train_and_evaluate,
)

log = logging.getLogger(__name__)

MODEL_NAME = "recommend.model"
MAX_IMPORT_ROWS = 20_000
MAX_EVENT_BATCH = 1_000
MAX_CANDIDATES = 1_000
MAX_TEXT_CHARS = 2_000
MAX_CONTEXT_ITEMS = 50
MAX_K = 100
HISTORY_EVENTS = 200  # most recent events read to build a user's history
RETRIEVE = 200  # nearest items fetched from the index before filtering and re-ranking
POPULAR_CANDIDATES = 50
RECENT_CANDIDATES = 30
REASON_MIN_SIMILARITY = 0.2
POSITIVE_KINDS = {"click", "add_to_cart", "purchase", "rating"}


class RecommendError(ValueError):
    """Bad input to the recommender; ``detail`` is shown to the caller (HTTP 400)."""

    def __init__(self, detail: str, status: int = 400, errors: list | None = None):
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.errors = errors or []


# =====================================================================================
# Catalogue
# =====================================================================================
@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0

    def as_dict(self) -> dict:
        return {"created": self.created, "updated": self.updated, "removed": self.removed,
                "unchanged": self.unchanged}


def parse_catalogue_file(data: bytes, filename: str = "") -> list[dict]:
    """CSV (header row) or JSON (a list, or {"items": [...]}) -> list of row dicts."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RecommendError(f"the file is not UTF-8 text (byte {exc.start})") from exc
    stripped = text.lstrip()
    if filename.lower().endswith(".json") or stripped.startswith(("[", "{")):
        try:
            payload = parse_json(text, where="the file")
        except JSONInputError as exc:
            raise RecommendError(exc.detail) from exc
        rows = payload.get("items") if isinstance(payload, dict) else payload
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise RecommendError('JSON must be a list of item objects or {"items": [...]}')
        return rows
    try:
        fields, rows = read_csv(text)
    except CSVInputError as exc:
        raise RecommendError(exc.detail) from exc
    if not fields:
        raise RecommendError("the CSV file is empty (no header row)")
    missing = {"external_id", "title"} - set(fields)
    if missing and not ({"id", "title"} <= set(fields)):
        raise RecommendError(f"the CSV header lacks {', '.join(sorted(missing))} (found: {', '.join(fields)})")
    return [row for _, row in rows]


def _parse_bool(value, line: str) -> bool:
    if isinstance(value, bool):
        return value
    v = str(value).strip().lower()
    if v in {"1", "true", "yes", "y"}:
        return True
    if v in {"0", "false", "no", "n", ""}:
        return False
    raise RecommendError(f"{line}: '{value}' is not true/false")


def _parse_time(value, line: str, name: str) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise RecommendError(f"{line}: {name} '{value}' is not an ISO 8601 time") from exc
    dt = dt if dt.tzinfo else dt.replace(tzinfo=UTC)
    try:
        utc = dt.astimezone(UTC)  # "0001-01-01T00:00:00+14:00" overflows here
    except OverflowError as exc:
        raise RecommendError(f"{line}: {name} '{value}' is out of range") from exc
    if utc.year < 1900:
        raise RecommendError(f"{line}: {name} '{value}' is before 1900")
    return dt


def clean_item_row(raw: dict, line: str) -> dict:
    """Validate one catalogue row; raises RecommendError naming the row and field."""
    ext = str(raw.get("external_id") or raw.get("id") or "").strip()
    if not ext:
        raise RecommendError(f"{line}: external_id is required")
    if len(ext) > 100:
        raise RecommendError(f"{line}: external_id is longer than 100 characters")
    for name in ("title", "description", "category"):
        if raw.get(name) is not None:  # text, not coerced (a list title is refused, not stored as "[...]")
            try:
                clean_text(raw[name], name)
            except JSONInputError as exc:
                raise RecommendError(f"{line}: {exc.detail}") from exc
    removed = _parse_bool(raw.get("removed", False), line)
    title = str(raw.get("title") or "").strip()
    if not title and not removed:
        raise RecommendError(f"{line}: title is required (item {ext})")
    price = raw.get("price")
    if price in (None, ""):
        price = None
    else:
        try:
            price = float(price)
        except (TypeError, ValueError) as exc:
            raise RecommendError(f"{line}: price '{price}' is not a number") from exc
        if not math.isfinite(price) or price < 0:
            raise RecommendError(f"{line}: price must be a non-negative number")
    tags = raw.get("tags") or []
    if isinstance(tags, str):
        tags = [t.strip() for t in tags.replace("|", ",").split(",") if t.strip()]
    if not isinstance(tags, list):
        raise RecommendError(f"{line}: tags must be a list or a comma/pipe separated string")
    return {
        "external_id": ext,
        "title": title[:300],
        "description": str(raw.get("description") or "")[:20_000],
        "tags": [str(t)[:50] for t in tags][:50],
        "category": str(raw.get("category") or "").strip()[:100],
        "price": price,
        "created_at": _parse_time(raw.get("created_at"), line, "created_at"),
        "available": _parse_bool(raw.get("available", True), line),
        "removed": removed,
    }


def upsert_items(rows: list[dict]) -> ImportResult:
    """Create or update items by external_id, all or nothing. ``removed: true`` removes."""
    if not rows:
        raise RecommendError("no items given")
    if len(rows) > MAX_IMPORT_ROWS:
        raise RecommendError(f"{len(rows)} items in one import; at most {MAX_IMPORT_ROWS}")
    cleaned = [clean_item_row(r, f"row {n}") for n, r in enumerate(rows, start=1)]
    dupes = [k for k, c in Counter(r["external_id"] for r in cleaned).items() if c > 1]
    if dupes:
        raise RecommendError(f"external_id repeated in one import: {', '.join(dupes[:10])}")
    result = ImportResult()
    removed_pks: list[int] = []
    now = timezone.now()
    with transaction.atomic():
        existing = {i.external_id: i for i in Item.objects.select_for_update().filter(
            external_id__in=[r["external_id"] for r in cleaned])}
        for r in cleaned:
            item = existing.get(r["external_id"])
            if r["removed"]:
                if item is None:
                    raise RecommendError(f"cannot remove unknown item {r['external_id']}")
                if item.removed_at is None:
                    item.removed_at = now
                    item.available = False
                    item.save(update_fields=["removed_at", "available", "updated_at"])
                    removed_pks.append(item.pk)
                    result.removed += 1
                else:
                    result.unchanged += 1
                continue
            fields = {k: v for k, v in r.items() if k not in {"removed", "external_id"}}
            if fields["created_at"] is None:
                fields.pop("created_at")
            if item is None:
                Item.objects.create(external_id=r["external_id"], **fields)
                result.created += 1
                continue
            fields["removed_at"] = None  # re-importing a removed item brings it back
            changed = [k for k, v in fields.items() if getattr(item, k) != v]
            if changed:
                for k in changed:
                    setattr(item, k, fields[k])
                item.save()
                result.updated += 1
            else:
                result.unchanged += 1
        transaction.on_commit(lambda: _drop_from_live_index(removed_pks))
    return result


def remove_items(external_ids: list[str]) -> int:
    """Remove items at once: they leave the live index and are never served again."""
    with transaction.atomic():
        items = list(Item.objects.select_for_update().filter(external_id__in=external_ids))
        unknown = sorted(set(external_ids) - {i.external_id for i in items})
        if unknown:
            raise RecommendError(f"unknown item ids: {', '.join(unknown[:20])}", status=404)
        pks = [i.pk for i in items if i.removed_at is None]
        Item.objects.filter(pk__in=pks).update(removed_at=timezone.now(), available=False, updated_at=timezone.now())
        transaction.on_commit(lambda: _drop_from_live_index(pks))
    return len(pks)


def ensure_embeddings(items: list[Item]) -> np.ndarray:
    """Frozen MiniLM vectors for ``items`` (N, 384), computing and caching the missing ones."""
    from aigc_core.retrieval.encoder import encode

    out = np.zeros((len(items), 384), np.float32)
    todo = []
    for n, it in enumerate(items):
        vec = it.cached_vector()
        if vec is None:
            todo.append(n)
        else:
            out[n] = vec
    if todo:
        vecs = encode([items[n].text for n in todo])
        for n, vec in zip(todo, vecs, strict=True):
            it = items[n]
            it.embedding, it.embedding_hash = vec.astype(np.float32).tobytes(), it.text_hash
            out[n] = vec
            # update(): no updated_at bump, so caching a vector does not invalidate the live index
            Item.objects.filter(pk=it.pk).update(embedding=it.embedding, embedding_hash=it.embedding_hash)
    return out


# =====================================================================================
# Events
# =====================================================================================
def clean_event(raw: dict, n: int) -> dict:
    """Validate one event's shape (not its item): raises RecommendError."""
    where = f"event {n}"
    eid = str(raw.get("event_id") or "").strip()
    if not eid or len(eid) > 100:
        raise RecommendError(f"{where}: event_id is required (at most 100 characters)")
    user = str(raw.get("user_id") or "").strip()
    if not user or len(user) > 100:
        raise RecommendError(f"{where} ({eid}): user_id is required (at most 100 characters)")
    item = str(raw.get("item_id") or "").strip()
    if not item:
        raise RecommendError(f"{where} ({eid}): item_id is required")
    kind = raw.get("kind")
    if kind not in Event.Kind.values:
        raise RecommendError(f"{where} ({eid}): kind must be one of {', '.join(Event.Kind.values)}, not {kind!r}")
    value = raw.get("value")
    if value not in (None, ""):
        try:
            value = float(value)
        except (TypeError, ValueError) as exc:
            raise RecommendError(f"{where} ({eid}): value '{value}' is not a number") from exc
        if not math.isfinite(value):
            raise RecommendError(f"{where} ({eid}): value must be finite")
    else:
        value = None
    if kind == "rating" and value is not None and not 0 <= value <= 5:
        raise RecommendError(f"{where} ({eid}): a rating must be between 0 and 5")
    at = _parse_time(raw.get("at"), f"{where} ({eid})", "at") or timezone.now()
    if at > timezone.now() + timedelta(minutes=10):
        raise RecommendError(f"{where} ({eid}): 'at' is in the future")
    return {"event_id": eid, "user_id": user, "item_id": item, "kind": kind, "value": value, "at": at,
            "at_given": raw.get("at") not in (None, "")}


def record_events(rows: list[dict]) -> dict:
    """Store events idempotently by event_id. Each event is accepted, a duplicate (same id
    seen before: a no-op) or rejected with a reason; rejected ones never block the rest.
    Returns {"accepted", "duplicates", "rejected", "results": [{event_id, status, detail?}]}."""
    if not rows:
        raise RecommendError("no events given")
    if len(rows) > MAX_EVENT_BATCH:
        raise RecommendError(f"{len(rows)} events in one batch; at most {MAX_EVENT_BATCH}")
    results: list[dict] = []
    valid: list[dict] = []
    for n, raw in enumerate(rows):
        try:
            ev = clean_event(raw if isinstance(raw, dict) else {}, n)
        except RecommendError as exc:
            results.append({"event_id": str((raw or {}).get("event_id", "")) if isinstance(raw, dict) else "",
                            "status": "rejected", "detail": exc.detail})
            continue
        results.append({"event_id": ev["event_id"], "status": "pending"})
        valid.append((len(results) - 1, ev))
    items = {i.external_id: i.pk for i in Item.objects.filter(external_id__in={e["item_id"] for _, e in valid})}
    with transaction.atomic():
        # A reused id is a duplicate only if it says the same thing; a different payload is refused.
        # (A retry without "at" is stamped anew, so its time is not compared.)
        seen = {e.event_id: (e.user_id, e.item.external_id, e.kind, e.value, _second(e.at))
                for e in Event.objects.filter(event_id__in=[e["event_id"] for _, e in valid]).select_related("item")}
        new: list[Event] = []
        for pos, ev in valid:
            key = (ev["user_id"], ev["item_id"], ev["kind"], ev["value"], _second(ev["at"]))
            if ev["event_id"] in seen:
                if seen[ev["event_id"]][:4] != key[:4] or (ev["at_given"] and seen[ev["event_id"]][4] != key[4]):
                    results[pos] = {"event_id": ev["event_id"], "status": "rejected",
                                    "detail": f"event_id '{ev['event_id']}' was recorded before with a different "
                                              "payload; an event id names one event"}
                else:
                    results[pos] = {"event_id": ev["event_id"], "status": "duplicate"}
                continue
            pk = items.get(ev["item_id"])
            if pk is None:
                results[pos] = {"event_id": ev["event_id"], "status": "rejected",
                                "detail": f"unknown item_id '{ev['item_id']}': import the item first"}
                continue
            seen[ev["event_id"]] = key
            new.append(Event(event_id=ev["event_id"], user_id=ev["user_id"], item_id=pk, kind=ev["kind"],
                             value=ev["value"], at=ev["at"]))
            results[pos] = {"event_id": ev["event_id"], "status": "accepted"}
        # ignore_conflicts: a concurrent request with the same event id cannot fail this one.
        Event.objects.bulk_create(new, ignore_conflicts=True, batch_size=500)
    counts = Counter(r["status"] for r in results)
    return {"accepted": counts["accepted"], "duplicates": counts["duplicate"], "rejected": counts["rejected"],
            "results": results}


def _second(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(microsecond=0)


def _is_positive(kind: str, value) -> bool:
    if kind == "rating":
        return value is None or value >= RATING_POSITIVE
    return kind in POSITIVE_KINDS


@dataclass
class UserHistory:
    user_id: str
    known: bool
    positives: list[Item] = field(default_factory=list)  # oldest first, deduplicated
    consumed: set[int] = field(default_factory=set)  # item pks purchased
    events: list[Event] = field(default_factory=list)  # newest first, for display


def user_history(user_id: str, limit: int = HISTORY_EVENTS) -> UserHistory:
    events = list(Event.objects.filter(user_id=user_id).select_related("item").order_by("-at", "-id")[:limit])
    h = UserHistory(user_id=user_id, known=bool(events), events=events)
    seen: set[int] = set()
    for ev in events:  # newest first
        if ev.kind in CONSUMED_KINDS:
            h.consumed.add(ev.item_id)
        if _is_positive(ev.kind, ev.value) and ev.item_id not in seen:
            seen.add(ev.item_id)
            h.positives.append(ev.item)
    h.positives.reverse()
    # Purchases older than the window still count: never sell the same thing twice.
    h.consumed |= set(Event.objects.filter(user_id=user_id, kind__in=CONSUMED_KINDS)
                      .values_list("item_id", flat=True))
    return h


# =====================================================================================
# Training
# =====================================================================================
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
            "eval_users": metrics.get("eval_users"), "wall_s": metrics.get("wall_s")}


def model_versions() -> list:
    try:
        return list(reversed(engine.registry().versions(MODEL_NAME)))
    except Exception:  # noqa: BLE001 - an unreadable registry shows as "no versions" on the dashboard
        log.exception("could not list %s versions", MODEL_NAME)
        return []


# =====================================================================================
# Serving
# =====================================================================================
class _TextOnlyModel:
    """Stands in before any training: item vector = MiniLM vector, user = mean of history."""

    class config:  # noqa: N801 - mimics TwoTowerConfig's attributes used here
        history = 20
        dim = 384

    def project_items(self, text_vecs: np.ndarray) -> np.ndarray:
        return np.asarray(text_vecs, np.float32)

    def encode_users(self, histories: list[np.ndarray]) -> tuple[np.ndarray, list]:
        out = np.zeros((len(histories), 384), np.float32)
        for n, h in enumerate(histories):
            if len(h):
                m = np.asarray(h, np.float32)[-20:].mean(0)
                out[n] = m / max(float(np.linalg.norm(m)), 1e-9)
        return out, [np.ones(min(len(h), 20)) / max(1, min(len(h), 20)) for h in histories]


@dataclass
class LiveCatalogue:
    """This process's serving state: the model and an index over projected live item vectors."""

    version: int | None
    stamp: tuple
    model: object
    ranker: Ranker
    index: object  # VectorIndex over item pks
    pk_row: dict[int, int]
    items: list[Item]
    vectors: np.ndarray  # (N, dim) projected, unit length
    text_vecs: np.ndarray  # (N, 384) frozen MiniLM vectors
    table: ItemTable
    popularity_days: float | None
    warning: str | None = None


_live_lock = threading.Lock()
_live: LiveCatalogue | None = None
_popularity_cache: dict = {}


def _catalogue_stamp() -> tuple:
    agg = Item.objects.aggregate(n=Count("pk"), changed=Max("updated_at"))
    return agg["n"], agg["changed"]


def _load_artifacts():
    return engine.load_current(MODEL_NAME, RecommenderArtifacts.load)


def live_catalogue() -> LiveCatalogue:
    """The cached live state, rebuilt when the promoted model or the catalogue changed."""
    global _live
    from aigc_core.retrieval.index import IndexConfig, VectorIndex

    loaded = _load_artifacts()
    version = loaded.version if loaded else None
    stamp = (version, *_catalogue_stamp())
    with _live_lock:
        if _live is not None and _live.stamp == stamp:
            return _live
        if loaded:
            model, ranker = loaded.obj.model, loaded.obj.ranker
            pop_days = loaded.obj.meta.get("popularity_days")
        else:
            model, ranker, pop_days = _TextOnlyModel(), Ranker(), 30.0
        items = list(Item.objects.live().order_by("pk"))
        text_vecs = ensure_embeddings(items)
        vecs = model.project_items(text_vecs) if items else np.zeros((0, model.config.dim), np.float32)
        index = VectorIndex(IndexConfig(kind="flat", dim=int(model.config.dim)))
        if items:
            index.add([i.pk for i in items], vecs)
        table = ItemTable(
            ids=[i.pk for i in items], categories=[i.category for i in items],
            log_price=np.array([math.log1p(i.price) if i.price is not None else np.nan for i in items]),
            created_ts=np.array([i.created_at.timestamp() for i in items]),
        )
        _live = LiveCatalogue(version=version, stamp=stamp, model=model, ranker=ranker, index=index,
                              pk_row={i.pk: n for n, i in enumerate(items)}, items=items, vectors=vecs, text_vecs=text_vecs,
                              table=table, popularity_days=pop_days, warning=loaded.warning if loaded else None)
        return _live


def _drop_from_live_index(pks: list[int]) -> None:
    """Removal takes effect at once in this process (others rebuild on the changed stamp)."""
    with _live_lock:
        if _live is not None and pks:
            _live.index.delete(pks)


def reset_serving_cache() -> None:
    global _live
    with _live_lock:
        _live = None
    _popularity_cache.clear()
    engine.forget(MODEL_NAME)


def _reference_time() -> float:
    """'Now' for popularity and recency: the newest event (so replayed/demo data behaves like live data)."""
    latest = Event.objects.aggregate(m=Max("at"))["m"]
    now = time.time()
    return min(now, latest.timestamp()) if latest else now


def _popularity(live: LiveCatalogue, ref: float) -> np.ndarray:
    """Positive events per live item in the popularity window, cached on (newest event, catalogue)."""
    key = (Event.objects.aggregate(m=Max("pk"))["m"], live.stamp, live.popularity_days)
    hit = _popularity_cache.get("v")
    if hit and hit[0] == key:
        return hit[1]
    qs = Event.objects.filter(item_id__in=live.pk_row.keys()).exclude(kind="view")
    if live.popularity_days:
        qs = qs.filter(at__gte=datetime.fromtimestamp(ref - live.popularity_days * 86400, tz=UTC))
    qs = qs.exclude(kind="rating", value__lt=RATING_POSITIVE)
    counts = np.zeros(len(live.items), np.float64)
    for pk, n in qs.values("item_id").annotate(n=Count("pk")).values_list("item_id", "n"):
        counts[live.pk_row[pk]] = n
    _popularity_cache["v"] = (key, counts)
    return counts


def _context_items(context_item_ids: list[str] | None) -> list[Item]:
    if not context_item_ids:
        return []
    ids = [str(i) for i in context_item_ids]
    if len(ids) > MAX_CONTEXT_ITEMS:
        raise RecommendError(f"{len(ids)} context items; at most {MAX_CONTEXT_ITEMS}")
    found = {i.external_id: i for i in Item.objects.filter(external_id__in=ids)}
    unknown = [i for i in ids if i not in found]
    if unknown:
        raise RecommendError(f"unknown context item ids: {', '.join(unknown[:20])}")
    return [found[i] for i in ids]


@dataclass
class UserState:
    history: UserHistory
    items: list[Item]  # history + session context, oldest first, capped
    vector: np.ndarray | None  # (dim,) or None for a cold user
    item_vecs: np.ndarray  # projected vectors of `items`
    shares: dict[str, float]
    mean_log_price: float
    text_mean: np.ndarray | None = None  # (384,) normalised mean MiniLM vector of `items`


def _user_state(live: LiveCatalogue, user_id: str, context: list[Item]) -> UserState:
    hist = user_history(user_id)
    hist_cap = int(live.model.config.history)
    seq = [i for i in hist.positives if i.pk not in {c.pk for c in context}] + context
    seq = seq[-hist_cap:]
    if not seq:
        return UserState(hist, [], None, np.zeros((0, live.vectors.shape[1]), np.float32), {}, float("nan"))
    text_vecs = ensure_embeddings(seq)
    users, _ = live.model.encode_users([text_vecs])
    item_vecs = live.model.project_items(text_vecs)
    cats = Counter(i.category for i in seq)
    prices = [math.log1p(i.price) for i in seq if i.price is not None]
    mean = text_vecs.mean(0)
    return UserState(hist, seq, users[0], item_vecs, {c: n / len(seq) for c, n in cats.items()},
                     float(np.mean(prices)) if prices else float("nan"),
                     mean / max(float(np.linalg.norm(mean)), 1e-9))


def _reason(state: UserState, vec: np.ndarray, source: str, item: Item | None = None) -> str:
    if state.items:
        sims = state.item_vecs @ vec
        j = int(np.argmax(sims))
        if sims[j] >= REASON_MIN_SIMILARITY:
            return f"because you looked at “{state.items[j].title}”"
        if item is not None and state.shares.get(item.category):
            return f"you often browse {item.category}"
    if source == "recent":
        return f"new in {item.category}" if item is not None and item.category else "new in the catalogue"
    return "popular right now"


def recommend(user_id: str, k: int = 10, context_item_ids: list[str] | None = None) -> dict:
    """Top-k live items for a user with a reason each. Unknown users get popular items
    (or items like their session context)."""
    user_id = str(user_id or "").strip()
    if not user_id:
        raise RecommendError("user_id is required")
    if not 1 <= int(k) <= MAX_K:
        raise RecommendError(f"k must be between 1 and {MAX_K}")
    k = int(k)
    context = _context_items(context_item_ids)
    live = live_catalogue()
    ref = _reference_time()
    pop = _popularity(live, ref)
    live.table.popularity = pop
    state = _user_state(live, user_id, context)
    exclude = state.history.consumed | {i.pk for i in state.items}
    sources: dict[int, str] = {}
    if state.vector is not None and len(live.index):
        _, ids = live.index.search(state.vector[None, :], min(RETRIEVE + len(exclude), len(live.index)))
        for pk in ids[0].tolist():
            if pk >= 0:
                sources.setdefault(pk, "similar")
    for r in np.argsort(-pop, kind="stable")[:POPULAR_CANDIDATES].tolist():
        sources.setdefault(live.items[r].pk, "popular")
    for r in np.argsort(-live.table.created_ts, kind="stable")[:RECENT_CANDIDATES].tolist():
        sources.setdefault(live.items[r].pk, "recent")
    cand_pks = [pk for pk in sources if pk not in exclude and pk in live.pk_row]
    # The database has the last word: an item removed by another process is dropped here.
    still_live = set(Item.objects.live().filter(pk__in=cand_pks).values_list("pk", flat=True))
    cand_pks = [pk for pk in cand_pks if pk in still_live]
    rows = np.array([live.pk_row[pk] for pk in cand_pks], np.int64)
    results = []
    if len(rows):
        if state.vector is not None:
            model_s = live.vectors[rows] @ state.vector
            feats = pair_features(model_s, rows, live.table, ref, state.shares, state.mean_log_price,
                                  live.text_vecs[rows] @ state.text_mean)
            final = live.ranker.score(feats)
        else:  # cold user, no context: popularity, newest first on ties
            model_s = np.zeros(len(rows), np.float32)
            final = live.table.pop_norm[rows] + 1e-3 * (-np.log1p(np.clip(ref - live.table.created_ts[rows], 0, None)
                                                                  / 86400.0))
        order = np.argsort(-final, kind="stable")[:k]
        for j in order.tolist():
            item = live.items[rows[j]]
            results.append({
                "item_id": item.external_id, "title": item.title, "category": item.category, "price": item.price,
                "score": round(float(final[j]), 4), "model_score": round(float(model_s[j]), 4),
                "source": sources[item.pk], "reason": _reason(state, live.vectors[rows[j]], sources[item.pk], item),
            })
    out = {"user_id": user_id, "known_user": state.history.known, "cold_start": state.vector is None,
           "model_version": live.version, "items": results}
    if not state.history.known:
        out["notice"] = ("unknown user: treated as new"
                         + (", recommending from the session context" if context else ", recommending popular items"))
    return out


def score(user_id: str, candidates: list, context_item_ids: list[str] | None = None) -> dict:
    """Score candidates for a user, in the order given. Each candidate is an item id
    (string) or {"item_id": ...} or {"text": ..., "category"?, "price"?} for an item not
    in the catalogue (scored by its text alone)."""
    from aigc_core.retrieval.encoder import encode

    user_id = str(user_id or "").strip()
    if not user_id:
        raise RecommendError("user_id is required")
    if not isinstance(candidates, list) or not candidates:
        raise RecommendError("candidates must be a non-empty list of item ids or {\"text\": ...} objects")
    if len(candidates) > MAX_CANDIDATES:
        raise RecommendError(f"{len(candidates)} candidates; at most {MAX_CANDIDATES} per call")
    parsed: list[dict] = []
    for n, c in enumerate(candidates):
        if isinstance(c, str | int) and not isinstance(c, bool):
            parsed.append({"item_id": str(c)})
        elif isinstance(c, dict) and c.get("item_id") not in (None, ""):
            parsed.append({"item_id": str(c["item_id"])})
        elif isinstance(c, dict) and isinstance(c.get("text"), str) and c["text"].strip():
            text = c["text"]
            price = c.get("price")
            try:
                price = None if price in (None, "") else float(price)
            except (TypeError, ValueError) as exc:
                raise RecommendError(f"candidate {n}: price '{price}' is not a number") from exc
            parsed.append({"text": text[:MAX_TEXT_CHARS], "truncated": len(text) > MAX_TEXT_CHARS,
                           "category": str(c.get("category") or "")[:100], "price": price})
        else:
            raise RecommendError(f"candidate {n}: give an item id or an object with a non-empty \"text\"")
    ids = {p["item_id"] for p in parsed if "item_id" in p}
    found = {i.external_id: i for i in Item.objects.filter(external_id__in=ids)}
    unknown = sorted(ids - set(found))
    if unknown:
        raise RecommendError(f"unknown item ids: {', '.join(unknown[:20])}"
                             + (f" (and {len(unknown) - 20} more)" if len(unknown) > 20 else "")
                             + "; send {\"text\": ...} to score items not in the catalogue")
    context = _context_items(context_item_ids)
    live = live_catalogue()
    ref = _reference_time()
    pop = _popularity(live, ref)
    live.table.popularity = pop
    state = _user_state(live, user_id, context)
    # Vectors: catalogue items from their cached text vectors, raw texts encoded now (one batch).
    cat_items = [found[p["item_id"]] for p in parsed if "item_id" in p]
    cat_text = dict(zip([i.pk for i in cat_items], ensure_embeddings(cat_items), strict=True)) if cat_items else {}
    raw_texts = [p["text"] for p in parsed if "text" in p]
    raw_vecs = iter(encode(raw_texts)) if raw_texts else iter(())
    text_vecs = np.stack([cat_text[found[p["item_id"]].pk] if "item_id" in p else next(raw_vecs) for p in parsed])
    vecs = live.model.project_items(text_vecs)
    pop_top = np.log1p(pop.max()) if len(pop) and pop.max() > 0 else 1.0
    results = []
    feats = np.zeros((len(parsed), len(FEATURES)), np.float32)
    for n, p in enumerate(parsed):
        item = found.get(p.get("item_id"))
        ms = float(vecs[n] @ state.vector) if state.vector is not None else 0.0
        # New texts: no popularity, brand new, price and category as given.
        row_table = ItemTable(ids=[0], categories=[item.category if item else p["category"]],
                              log_price=np.array([math.log1p(item.price) if item and item.price is not None
                                                  else (math.log1p(p["price"]) if not item and p.get("price") is not None
                                                        else np.nan)]),
                              created_ts=np.array([item.created_at.timestamp() if item else ref]))
        ts = float(text_vecs[n] @ state.text_mean) if state.text_mean is not None else 0.0
        f = pair_features(np.array([ms]), np.array([0]), row_table, ref, state.shares, state.mean_log_price,
                          np.array([ts]))[0]
        f[1] = (np.log1p(pop[live.pk_row[item.pk]]) / pop_top) if item is not None and item.pk in live.pk_row else 0.0
        feats[n] = f
    final = live.ranker.score(feats) if state.vector is not None else feats[:, 1]
    for n, p in enumerate(parsed):
        item = found.get(p.get("item_id"))
        row = {"item_id": item.external_id if item else None, "text": None if item else p["text"][:80],
               "score": round(float(final[n]), 4), "model_score": round(float(feats[n, 0]), 4)}
        if p.get("truncated"):
            row["truncated"] = True
        if item is not None and not item.is_live:
            row.update(score=None, model_score=None, available=False)
        if item is not None and item.pk in state.history.consumed:
            row["purchased"] = True
        results.append(row)
    order = sorted(range(len(results)), key=lambda n: -(results[n]["score"] if results[n]["score"] is not None
                                                        else -1))
    for rank, n in enumerate(order, start=1):
        results[n]["rank"] = rank
    out = {"user_id": user_id, "known_user": state.history.known, "cold_start": state.vector is None,
           "model_version": live.version, "results": results}
    if state.vector is None:
        out["notice"] = "no history or context for this user: scores reflect popularity only"
    if any(p.get("truncated") for p in parsed):
        out["notice_text"] = f"texts longer than {MAX_TEXT_CHARS} characters were truncated"
    return out


def similar_items(external_id: str, k: int = 10) -> dict:
    """Live items nearest to one item in the model's item space."""
    if not 1 <= int(k) <= MAX_K:
        raise RecommendError(f"k must be between 1 and {MAX_K}")
    item = Item.objects.filter(external_id=external_id).first()
    if item is None:
        raise RecommendError(f"unknown item id '{external_id}'", status=404)
    live = live_catalogue()
    vec = live.model.project_items(ensure_embeddings([item]))[0]
    _, ids = live.index.search(vec[None, :], min(int(k) + 1, max(1, len(live.index))))
    pks = [pk for pk in ids[0].tolist() if pk >= 0 and pk != item.pk]
    still_live = set(Item.objects.live().filter(pk__in=pks).values_list("pk", flat=True))
    out = []
    for pk in pks:
        if pk in still_live and len(out) < int(k):
            other = live.items[live.pk_row[pk]]
            out.append({"item_id": other.external_id, "title": other.title, "category": other.category,
                        "similarity": round(float(live.vectors[live.pk_row[pk]] @ vec), 4)})
    return {"item": {"item_id": item.external_id, "title": item.title, "category": item.category,
                     "available": item.is_live}, "similar": out, "model_version": live.version}


def catalogue_summary() -> dict:
    return {
        "items": Item.objects.count(),
        "live": Item.objects.live().count(),
        "events": Event.objects.count(),
        "users": Event.objects.values("user_id").distinct().count(),
        "by_kind": dict(Event.objects.values_list("kind").annotate(n=Count("pk")).values_list("kind", "n")),
    }
