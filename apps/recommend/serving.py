"""Serving: recommend(), score() and similar_items() on an immutable snapshot.

Serving policy (documented for the shop's front end):
- Removed or unavailable items are never recommended: every answer is filtered against the
  database at serve time, and each process drops them from its index on its next request.
- Items a user purchased are never recommended to them again; items they already engaged
  with positively are not recommended either (they are their history).
- An unknown user is a new user, not an error: they get popular items, or items matching
  the session context (``context_item_ids``) when given.
- Unknown item ids are a 400 naming them; texts not in the catalogue are scored by the text path.
- ``score`` is the hybrid ranker's score plus any merchandiser boost (higher = better; compare
  within one answer); ``model_score`` the two-tower cosine, ``collab_score`` the EASE score.
- Merchandiser rules (apps.recommend.models.Rule): exclude drops, boost adds to the score,
  pin places an item at a position; each appears in the item's reason.

One scoring path: ``recommend()`` and ``score()`` both build a ``Candidates`` block and call
``_score_block``, which calls ranking.pair_features (the function training and the benchmark
use). Nothing a request computes is written into shared state: a ``Snapshot`` is immutable; a
catalogue change makes a new snapshot from the old one (copy of the arrays, the FAISS index
updated in place by id under a lock) and swaps the reference; a new model version builds a
whole new snapshot, swapped the same way.
"""
from __future__ import annotations

import itertools
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np
from django.db.models import Count, Max

from apps.common import engine
from apps.recommend.catalogue import ensure_embeddings
from apps.recommend.errors import RecommendError
from apps.recommend.events import UserHistory, user_history
from apps.recommend.models import Event, Item, Rule
from apps.recommend.ranking import Candidates, Ranker, UserSignals, normalise_popularity, pair_features
from apps.recommend.training import RATING_POSITIVE, RecommenderArtifacts

MODEL_NAME = "recommend.model"
MAX_CANDIDATES = 1_000
MAX_TEXT_CHARS = 2_000
MAX_CONTEXT_ITEMS = 50
MAX_K = 100
RETRIEVE = 200  # nearest items fetched from FAISS, and top items of the collaborative model
POPULAR_CANDIDATES = 50
RECENT_CANDIDATES = 30
REASON_MIN_SIMILARITY = 0.2


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


@dataclass(frozen=True)
class ItemInfo:
    pk: int
    external_id: str
    title: str
    category: str
    price: float | None


@dataclass(frozen=True)
class Snapshot:
    """One process's serving state for one model version and catalogue state. Never mutated
    (its index is shared with the snapshots that follow, and changed only by id under _index_lock)."""

    version: int | None
    model: object
    ranker: Ranker
    ease: object | None  # aigc_core.models.ease.Ease over the training catalogue's rows
    ease_row_of_pk: dict  # item pk -> row in the collaborative model
    popularity_days: float | None
    warning: str | None
    index: object  # VectorIndex over item pks (two-tower space)
    items: tuple  # ItemInfo per row
    pk_row: dict  # item pk -> row
    item_vecs: np.ndarray  # (n, dim) two-tower vectors
    text_vecs: np.ndarray  # (n, 384) frozen MiniLM vectors
    log_price: np.ndarray
    created_ts: np.ndarray
    model_row: np.ndarray  # (n,) collaborative model row, -1 = no behaviour
    synced_at: datetime | None  # newest Item.updated_at this snapshot reflects
    built_at: float
    # Caches key on this, not id(): a freed snapshot's id is reused by the next one
    # (``_sync`` replaces them often), and a cached array would then meet the wrong rows.
    serial: int = field(default_factory=lambda: next(_serials), init=False)

    @property
    def categories(self) -> list[str]:
        return [i.category for i in self.items]

    def block(self, rows: np.ndarray, popularity: np.ndarray) -> Candidates:
        rows = np.asarray(rows, np.int64)
        mr = self.model_row[rows]
        return Candidates(model_row=mr, known=mr >= 0, item_vecs=self.item_vecs[rows], text_vecs=self.text_vecs[rows],
                          categories=[self.items[r].category for r in rows.tolist()], log_price=self.log_price[rows],
                          created_ts=self.created_ts[rows], popularity=popularity[rows])


_serials = itertools.count(1)
_build_lock = threading.Lock()  # one snapshot build or catalogue sync at a time
_index_lock = threading.Lock()  # FAISS add/remove/search
_snapshot: Snapshot | None = None
_popularity_lock = threading.Lock()
_popularity_cache: dict = {}


def _load_artifacts():
    return engine.load_current(MODEL_NAME, RecommenderArtifacts.load)


def _info(i: Item) -> ItemInfo:
    return ItemInfo(i.pk, i.external_id, i.title, i.category, i.price)


def _item_arrays(items: list[Item], text_vecs: np.ndarray, model, ease_row_of_pk: dict):
    vecs = model.project_items(text_vecs) if len(items) else np.zeros((0, int(model.config.dim)), np.float32)
    log_price = np.array([math.log1p(i.price) if i.price is not None else np.nan for i in items], np.float64)
    created = np.array([i.created_at.timestamp() for i in items], np.float64)
    model_row = np.array([ease_row_of_pk.get(i.pk, -1) for i in items], np.int64)
    return vecs.astype(np.float32), log_price, created, model_row


def _build(loaded) -> Snapshot:
    """A whole new snapshot: on the first request and on each new model version."""
    from aigc_core.retrieval.index import IndexConfig, VectorIndex

    if loaded:
        art = loaded.obj
        model, ranker, ease = art.model, art.ranker, art.ease
        pop_days = art.meta.get("popularity_days")
        ids = art.meta.get("item_ids") or []
        ease_row_of_pk: dict[int, int] = {}
        if ease is not None:
            covered = ease.covers(np.arange(len(ids)))
            # Rows name item pks (the training job) or external ids (a model trained outside the app).
            by_ext = dict(Item.objects.values_list("external_id", "pk")) if any(isinstance(i, str) for i in ids) else {}
            for r, key in enumerate(ids):
                pk = by_ext.get(key) if isinstance(key, str) else int(key)
                if covered[r] and pk is not None:
                    ease_row_of_pk[pk] = r
    else:
        model, ranker, ease, pop_days, ease_row_of_pk = _TextOnlyModel(), Ranker(), None, 30.0, {}
    synced = Item.objects.aggregate(m=Max("updated_at"))["m"]
    items = list(Item.objects.live().order_by("pk"))
    # Once per model version: vectors the catalogue job has not written yet are computed here (in bulk).
    text_vecs = ensure_embeddings(items) if items else np.zeros((0, 384), np.float32)
    vecs, log_price, created, model_row = _item_arrays(items, text_vecs, model, ease_row_of_pk)
    index = VectorIndex(IndexConfig(kind="flat", dim=int(model.config.dim)))
    if items:
        index.add([i.pk for i in items], vecs)
    return Snapshot(version=loaded.version if loaded else None, model=model, ranker=ranker, ease=ease,
                    ease_row_of_pk=ease_row_of_pk, popularity_days=pop_days,
                    warning=loaded.warning if loaded else None, index=index, items=tuple(_info(i) for i in items),
                    pk_row={i.pk: n for n, i in enumerate(items)}, item_vecs=vecs, text_vecs=text_vecs,
                    log_price=log_price, created_ts=created, model_row=model_row, synced_at=synced,
                    built_at=time.time())


def _sync(snap: Snapshot) -> Snapshot:
    """Apply catalogue changes since ``snap.synced_at``: add/replace/remove ids, no rebuild.
    An item whose vector its job has not written yet waits (it joins when the job's write lands)."""
    changed = list(Item.objects.filter(updated_at__gt=snap.synced_at)) if snap.synced_at else []
    if not changed:
        return snap
    synced = max(i.updated_at for i in changed)
    # An edited item keeps serving its old vector until its new one is written; a removed one leaves now.
    drop = {i.pk for i in changed if not i.is_live}
    add = [i for i in changed if i.is_live and i.cached_vector() is not None]
    keep_rows = [r for r, info in enumerate(snap.items) if info.pk not in drop and info.pk not in {i.pk for i in add}]
    if add:
        text_new = np.stack([i.cached_vector() for i in add])
        vecs, lp, cr, mr = _item_arrays(add, text_new, snap.model, snap.ease_row_of_pk)
    else:
        text_new = np.zeros((0, 384), np.float32)
        vecs = np.zeros((0, snap.item_vecs.shape[1]), np.float32)
        lp = cr = np.zeros(0, np.float64)
        mr = np.zeros(0, np.int64)
    kr = np.asarray(keep_rows, np.int64)
    items = tuple(snap.items[r] for r in keep_rows) + tuple(_info(i) for i in add)
    with _index_lock:
        snap.index.delete(sorted(drop))
        if add:
            snap.index.add([i.pk for i in add], vecs)
    return replace(snap, items=items, pk_row={info.pk: n for n, info in enumerate(items)},
                   item_vecs=np.concatenate([snap.item_vecs[kr], vecs]),
                   text_vecs=np.concatenate([snap.text_vecs[kr], text_new]),
                   log_price=np.concatenate([snap.log_price[kr], lp]),
                   created_ts=np.concatenate([snap.created_ts[kr], cr]),
                   model_row=np.concatenate([snap.model_row[kr], mr]), synced_at=synced)


def live_catalogue() -> Snapshot:
    """The current snapshot: rebuilt (and swapped) on a new model version, synced incrementally
    on catalogue changes."""
    global _snapshot
    loaded = _load_artifacts()
    version = loaded.version if loaded else None
    snap = _snapshot
    if snap is not None and snap.version == version:
        latest = Item.objects.aggregate(m=Max("updated_at"))["m"]
        if latest is None or (snap.synced_at is not None and latest <= snap.synced_at):
            return snap
    with _build_lock:
        snap = _snapshot
        if snap is None or snap.version != version:
            snap = _build(loaded)
        else:
            snap = _sync(snap)
        _snapshot = snap
        return snap


def reset_serving_cache() -> None:
    global _snapshot
    with _build_lock:
        _snapshot = None
    with _popularity_lock:
        _popularity_cache.clear()
    engine.forget(MODEL_NAME)


def _reference_time() -> float:
    """'Now' for popularity and recency: the newest event (so replayed/demo data behaves like live data)."""
    latest = Event.objects.aggregate(m=Max("at"))["m"]
    now = time.time()
    return min(now, latest.timestamp()) if latest else now


def _popularity(snap: Snapshot, ref: float) -> tuple[np.ndarray, np.ndarray]:
    """(raw, normalised) positive events per snapshot row in the popularity window. Cached by
    (newest event, snapshot): the cached array is never written again, only replaced."""
    key = (Event.objects.aggregate(m=Max("pk"))["m"], snap.serial, snap.popularity_days)
    with _popularity_lock:
        hit = _popularity_cache.get("v")
        if hit and hit[0] == key:
            return hit[1]
    qs = Event.objects.exclude(kind="view")
    if snap.popularity_days:
        qs = qs.filter(at__gte=datetime.fromtimestamp(ref - snap.popularity_days * 86400, tz=UTC))
    qs = qs.exclude(kind="rating", value__lt=RATING_POSITIVE)
    counts = np.zeros(len(snap.items), np.float64)
    for pk, n in qs.values("item_id").annotate(n=Count("pk")).values_list("item_id", "n"):
        r = snap.pk_row.get(pk)
        if r is not None:
            counts[r] = n
    out = (counts, normalise_popularity(counts))
    with _popularity_lock:
        _popularity_cache["v"] = (key, out)
    return out


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
    signals: UserSignals
    item_vecs: np.ndarray  # two-tower vectors of `items` (for reasons)
    ease_rows: np.ndarray  # collaborative model rows of `items` (-1 = none)

    @property
    def cold(self) -> bool:
        return not self.items


def _user_state(snap: Snapshot, user_id: str, context: list[Item], ref: float) -> UserState:
    hist = user_history(user_id)
    ctx_pks = {c.pk for c in context}
    seq = ([i for i in hist.positives if i.pk not in ctx_pks] + context)[-int(snap.model.config.history):]
    if not seq:
        return UserState(hist, [], UserSignals(None, None, None, {}, float("nan"), ref),
                         np.zeros((0, snap.item_vecs.shape[1]), np.float32), np.zeros(0, np.int64))
    text_vecs = ensure_embeddings(seq)
    users, _ = snap.model.encode_users([text_vecs])
    ease_rows = np.array([snap.ease_row_of_pk.get(i.pk, -1) for i in seq], np.int64)
    collab = None
    if snap.ease is not None and (ease_rows >= 0).any():
        collab = snap.ease.score_user(ease_rows[ease_rows >= 0])
    cats = Counter(i.category for i in seq)
    prices = [math.log1p(i.price) for i in seq if i.price is not None]
    mean = text_vecs.mean(0)
    sig = UserSignals(collab=collab, user_vec=users[0], text_mean=mean / max(float(np.linalg.norm(mean)), 1e-9),
                      category_share={c: n / len(seq) for c, n in cats.items()},
                      mean_log_price=float(np.mean(prices)) if prices else float("nan"), now_ts=ref)
    return UserState(hist, seq, sig, snap.model.project_items(text_vecs), ease_rows)


def _score_block(snap: Snapshot, state: UserState, cand: Candidates) -> tuple[np.ndarray, np.ndarray]:
    """THE scoring function of recommend() and score(): (ranker score, features) of a block.
    A cold user (no history, no context) is ranked by popularity, newest first on ties."""
    feats = pair_features(state.signals, cand)
    if state.cold:
        return feats[:, 4] + 1e-3 * feats[:, 5], feats
    return snap.ranker.score(feats), feats


@dataclass(frozen=True)
class Rules:
    pins: tuple  # (item pk, position, note)
    boost_item: dict  # pk -> (amount, note)
    boost_category: dict  # category -> (amount, note)
    exclude_item: frozenset
    exclude_category: frozenset

    def boost(self, pk: int, category: str) -> tuple[float, str]:
        amount, notes = 0.0, []
        for a, note in (self.boost_item.get(pk, (None, "")), self.boost_category.get(category, (None, ""))):
            if a is not None:
                amount += a
                notes.append(note)
        return amount, "; ".join(n for n in notes if n)

    def excluded(self, pk: int, category: str) -> bool:
        return pk in self.exclude_item or (bool(category) and category in self.exclude_category)


def active_rules() -> Rules:
    pins, bi, bc, ei, ec = [], {}, {}, set(), set()
    for r in Rule.objects.filter(active=True).order_by("position", "pk"):
        note = r.note or ""
        if r.kind == Rule.Kind.PIN and r.item_id:
            pins.append((r.item_id, max(1, int(r.position)), note))
        elif r.kind == Rule.Kind.BOOST:
            if r.item_id:
                bi[r.item_id] = (bi.get(r.item_id, (0.0, ""))[0] + r.amount, note)
            elif r.category:
                bc[r.category] = (bc.get(r.category, (0.0, ""))[0] + r.amount, note)
        elif r.kind == Rule.Kind.EXCLUDE:
            if r.item_id:
                ei.add(r.item_id)
            elif r.category:
                ec.add(r.category)
    return Rules(tuple(pins), bi, bc, frozenset(ei), frozenset(ec))


def _reason(snap: Snapshot, state: UserState, row: int, source: str) -> str:
    info = snap.items[row]
    if state.items:
        if source == "collab" and snap.ease is not None and snap.model_row[row] >= 0 and (state.ease_rows >= 0).any():
            hist_rows = state.ease_rows[state.ease_rows >= 0]
            weights = np.asarray(snap.ease.B[snap.ease._pos[hist_rows]][:, snap.ease._pos[snap.model_row[row]]]
                                 .todense()).ravel()
            if len(weights) and weights.max() > 0:
                j = int(np.argmax(weights))
                liked = [i for i, er in zip(state.items, state.ease_rows, strict=True) if er >= 0][j]
                return f"people who liked “{liked.title}” also liked this"
        sims = state.item_vecs @ snap.item_vecs[row]
        j = int(np.argmax(sims))
        if sims[j] >= REASON_MIN_SIMILARITY:
            return f"because you looked at “{state.items[j].title}”"
        if state.signals.category_share.get(info.category):
            return f"you often browse {info.category}"
    if source == "recent":
        return f"new in {info.category}" if info.category else "new in the catalogue"
    return "popular right now"


def _with_rule(reason: str, boost: float, note: str) -> str:
    if not boost:
        return reason
    label = f"boosted by the merchandiser ({boost:+g}{': ' + note if note else ''})"
    return f"{reason} · {label}"


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
    snap = live_catalogue()
    ref = _reference_time()
    counts, pop = _popularity(snap, ref)
    state = _user_state(snap, user_id, context, ref)
    rules = active_rules()
    exclude = state.history.consumed | {i.pk for i in state.items}
    sources: dict[int, str] = {}  # snapshot row -> first source
    n = len(snap.items)
    if state.signals.collab is not None:
        live_collab = np.full(n, -np.inf, np.float32)
        ok = snap.model_row >= 0
        live_collab[ok] = state.signals.collab[snap.model_row[ok]]
        top = np.argpartition(-live_collab, min(RETRIEVE, n - 1))[:RETRIEVE] if n > 1 else np.arange(n)
        for r in top[np.argsort(-live_collab[top], kind="stable")].tolist():
            if np.isfinite(live_collab[r]) and live_collab[r] > 0:
                sources.setdefault(r, "collab")
    if not state.cold and len(snap.index):
        with _index_lock:
            _, ids = snap.index.search(state.signals.user_vec[None, :], min(RETRIEVE + len(exclude), len(snap.index)))
        for pk in ids[0].tolist():
            if pk >= 0 and pk in snap.pk_row:
                sources.setdefault(snap.pk_row[pk], "similar")
    for r in np.argsort(-counts, kind="stable")[:POPULAR_CANDIDATES].tolist():
        sources.setdefault(r, "popular")
    for r in np.argsort(-snap.created_ts, kind="stable")[:RECENT_CANDIDATES].tolist():
        sources.setdefault(r, "recent")
    pin_rows = {}
    for pk, pos, note in rules.pins:
        if pk in snap.pk_row and pk not in exclude:
            pin_rows[snap.pk_row[pk]] = (pos, note)
            sources.setdefault(snap.pk_row[pk], "pinned")
    rows = [r for r in sources if snap.items[r].pk not in exclude
            and not rules.excluded(snap.items[r].pk, snap.items[r].category)]
    # The database has the last word: an item removed by another process is dropped here.
    still_live = set(Item.objects.live().filter(pk__in=[snap.items[r].pk for r in rows]).values_list("pk", flat=True))
    rows = np.array([r for r in rows if snap.items[r].pk in still_live], np.int64)
    results = []
    if len(rows):
        cand = snap.block(rows, pop)
        final, feats = _score_block(snap, state, cand)
        boosts = [rules.boost(snap.items[r].pk, snap.items[r].category) for r in rows.tolist()]
        final = final + np.array([b for b, _ in boosts], np.float32)
        order = [j for j in np.argsort(-final, kind="stable").tolist() if rows[j] not in pin_rows]
        for j, (pos, _note) in sorted(((j, pin_rows[rows[j]]) for j in range(len(rows)) if rows[j] in pin_rows),
                                      key=lambda x: x[1][0]):
            order.insert(min(pos - 1, len(order)), j)
        for j in order[:k]:
            r = int(rows[j])
            info = snap.items[r]
            reason = _with_rule(_reason(snap, state, r, sources[r]), *boosts[j])
            if r in pin_rows:
                pos, note = pin_rows[r]
                reason = f"pinned by the merchandiser at #{pos}{': ' + note if note else ''} · {reason}"
            results.append({
                "item_id": info.external_id, "title": info.title, "category": info.category, "price": info.price,
                "score": round(float(final[j]), 4), "model_score": round(float(feats[j, 2]), 4),
                "collab_score": round(float(feats[j, 0]), 4), "source": sources[r], "reason": reason,
            })
    out = {"user_id": user_id, "known_user": state.history.known, "cold_start": state.cold,
           "model_version": snap.version, "items": results}
    if not state.history.known:
        out["notice"] = ("unknown user: treated as new"
                         + (", recommending from the session context" if context else ", recommending popular items"))
    return out


def _parse_candidates(candidates) -> list[dict]:
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
            if price is not None and (not math.isfinite(price) or price < 0):
                raise RecommendError(f"candidate {n}: price must be a non-negative number")
            parsed.append({"text": text[:MAX_TEXT_CHARS], "truncated": len(text) > MAX_TEXT_CHARS,
                           "category": str(c.get("category") or "")[:100], "price": price})
        else:
            raise RecommendError(f"candidate {n}: give an item id or an object with a non-empty \"text\"")
    return parsed


def score(user_id: str, candidates: list, context_item_ids: list[str] | None = None) -> dict:
    """Score candidates for a user, in the order given. Each candidate is an item id
    (string) or {"item_id": ...} or {"text": ..., "category"?, "price"?} for an item not
    in the catalogue (scored by its text alone: no behaviour, no popularity, brand new)."""
    from aigc_core.retrieval.encoder import encode

    user_id = str(user_id or "").strip()
    if not user_id:
        raise RecommendError("user_id is required")
    parsed = _parse_candidates(candidates)
    ids = {p["item_id"] for p in parsed if "item_id" in p}
    found = {i.external_id: i for i in Item.objects.filter(external_id__in=ids)}
    unknown = sorted(ids - set(found))
    if unknown:
        raise RecommendError(f"unknown item ids: {', '.join(unknown[:20])}"
                             + (f" (and {len(unknown) - 20} more)" if len(unknown) > 20 else "")
                             + "; send {\"text\": ...} to score items not in the catalogue")
    context = _context_items(context_item_ids)
    snap = live_catalogue()
    ref = _reference_time()
    _, pop = _popularity(snap, ref)
    state = _user_state(snap, user_id, context, ref)
    rules = active_rules()
    # Catalogue items in the snapshot come from it; the others (not live, or their vector not
    # written yet) and raw texts are built the same way from their text vectors.
    off = [found[p["item_id"]] for p in parsed if "item_id" in p and found[p["item_id"]].pk not in snap.pk_row]
    off_vecs = dict(zip([i.pk for i in off], ensure_embeddings(off), strict=True)) if off else {}
    raw = [p["text"] for p in parsed if "text" in p]
    raw_vecs = iter(encode(raw)) if raw else iter(())
    text_vecs, mrow, cats, lps, cts, pops = [], [], [], [], [], []
    for p in parsed:
        item = found.get(p.get("item_id"))
        if item is not None and item.pk in snap.pk_row:
            r = snap.pk_row[item.pk]
            text_vecs.append(snap.text_vecs[r])
            mrow.append(snap.model_row[r])
            pops.append(pop[r])
            lps.append(snap.log_price[r])
            cts.append(snap.created_ts[r])
            cats.append(snap.items[r].category)
            continue
        vec = off_vecs[item.pk] if item is not None else next(raw_vecs)
        price = item.price if item is not None else p.get("price")
        text_vecs.append(vec)
        mrow.append(snap.ease_row_of_pk.get(item.pk, -1) if item is not None else -1)
        pops.append(0.0)
        lps.append(math.log1p(price) if price is not None else np.nan)
        cts.append(item.created_at.timestamp() if item is not None else ref)
        cats.append(item.category if item is not None else p["category"])
    tv = np.stack(text_vecs).astype(np.float32)
    mr = np.asarray(mrow, np.int64)
    cand = Candidates(model_row=mr, known=mr >= 0, item_vecs=snap.model.project_items(tv), text_vecs=tv,
                      categories=cats, log_price=np.asarray(lps, np.float64), created_ts=np.asarray(cts, np.float64),
                      popularity=np.asarray(pops, np.float32))
    final, feats = _score_block(snap, state, cand)
    results = []
    for n, p in enumerate(parsed):
        item = found.get(p.get("item_id"))
        boost, note = rules.boost(item.pk, item.category) if item is not None else (0.0, "")
        row = {"item_id": item.external_id if item else None, "text": None if item else p["text"][:80],
               "score": round(float(final[n] + boost), 4), "model_score": round(float(feats[n, 2]), 4),
               "collab_score": round(float(feats[n, 0]), 4)}
        if boost:
            row["boost"] = boost
        if p.get("truncated"):
            row["truncated"] = True
        if item is not None and (not item.is_live or rules.excluded(item.pk, item.category)):
            row.update(score=None, model_score=None, collab_score=None, available=False)
        if item is not None and item.pk in state.history.consumed:
            row["purchased"] = True
        results.append(row)
    order = sorted(range(len(results)), key=lambda i: -(results[i]["score"] if results[i]["score"] is not None
                                                        else -1e9))
    for rank, i in enumerate(order, start=1):
        results[i]["rank"] = rank
    out = {"user_id": user_id, "known_user": state.history.known, "cold_start": state.cold,
           "model_version": snap.version, "results": results}
    if state.cold:
        out["notice"] = "no history or context for this user: scores reflect popularity only"
    if any(p.get("truncated") for p in parsed):
        out["notice_text"] = f"texts longer than {MAX_TEXT_CHARS} characters were truncated"
    return out


def similar_items(external_id: str, k: int = 10) -> dict:
    """Live items nearest to one item: by the text tower (FAISS) and by behaviour (EASE), with why."""
    if not 1 <= int(k) <= MAX_K:
        raise RecommendError(f"k must be between 1 and {MAX_K}")
    item = Item.objects.filter(external_id=external_id).first()
    if item is None:
        raise RecommendError(f"unknown item id '{external_id}'", status=404)
    snap = live_catalogue()
    vec = snap.model.project_items(ensure_embeddings([item]))[0]
    with _index_lock:
        _, ids = snap.index.search(vec[None, :], min(int(k) + 1, max(1, len(snap.index))))
    pks = [pk for pk in ids[0].tolist() if pk >= 0 and pk != item.pk and pk in snap.pk_row]
    out = []
    collab = []
    er = snap.ease_row_of_pk.get(item.pk, -1)
    if snap.ease is not None and er >= 0:
        scores = snap.ease.score_user(np.array([er]))
        ok = snap.model_row >= 0
        live = np.full(len(snap.items), -np.inf, np.float32)
        live[ok] = scores[snap.model_row[ok]]
        for r in np.argsort(-live)[: int(k) + 1].tolist():
            if np.isfinite(live[r]) and live[r] > 0 and snap.items[r].pk != item.pk:
                collab.append((snap.items[r].pk, float(live[r])))
    still_live = set(Item.objects.live().filter(pk__in=pks + [c[0] for c in collab]).values_list("pk", flat=True))
    for pk in pks:
        if pk in still_live and len(out) < int(k):
            r = snap.pk_row[pk]
            other = snap.items[r]
            sim = float(snap.item_vecs[r] @ vec)
            out.append({"item_id": other.external_id, "title": other.title, "category": other.category,
                        "similarity": round(sim, 4), "why": f"similar text (cosine {sim:.2f})"})
    also = []
    for pk, w in collab:
        if pk in still_live and len(also) < int(k):
            other = snap.items[snap.pk_row[pk]]
            also.append({"item_id": other.external_id, "title": other.title, "category": other.category,
                         "weight": round(w, 4), "why": f"liked by the same people (EASE weight {w:.3f})"})
    return {"item": {"item_id": item.external_id, "title": item.title, "category": item.category,
                     "available": item.is_live, "text": item.text, "known_to_model": er >= 0},
            "similar": out, "also_liked": also, "model_version": snap.version}
