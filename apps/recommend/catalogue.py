"""The catalogue: import and edit items (all or nothing), remove them, and keep their
frozen MiniLM vectors. Imports and edits write rows at once and leave the slow part
(encoding the texts) to a job, ``embed_items``; serving adds the new vectors to its index
incrementally (apps.recommend.serving), so no request re-embeds or re-indexes the catalogue."""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from apps.common.csvparse import CSVInputError, read_csv
from apps.common.jsonparse import JSONInputError, clean_text, parse_json
from apps.recommend.errors import RecommendError
from apps.recommend.models import Event, Item

MAX_IMPORT_ROWS = 20_000


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    changed_pks: list[int] = field(default_factory=list)  # created or edited: their vectors need (re)computing

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
                    result.removed += 1
                else:
                    result.unchanged += 1
                continue
            fields = {k: v for k, v in r.items() if k not in {"removed", "external_id"}}
            if fields["created_at"] is None:
                fields.pop("created_at")
            if item is None:
                result.changed_pks.append(Item.objects.create(external_id=r["external_id"], **fields).pk)
                result.created += 1
                continue
            fields["removed_at"] = None  # re-importing a removed item brings it back
            changed = [k for k, v in fields.items() if getattr(item, k) != v]
            if changed:
                for k in changed:
                    setattr(item, k, fields[k])
                item.save()
                result.changed_pks.append(item.pk)
                result.updated += 1
            else:
                result.unchanged += 1
    return result


def remove_items(external_ids: list[str]) -> int:
    """Remove items at once: they leave the live index and are never served again."""
    with transaction.atomic():
        items = list(Item.objects.select_for_update().filter(external_id__in=external_ids))
        unknown = sorted(set(external_ids) - {i.external_id for i in items})
        if unknown:
            raise RecommendError(f"unknown item ids: {', '.join(unknown[:20])}", status=404)
        pks = [i.pk for i in items if i.removed_at is None]
        # updated_at moves: every serving process drops them on its next request (serving.sync).
        Item.objects.filter(pk__in=pks).update(removed_at=timezone.now(), available=False, updated_at=timezone.now())
    return len(pks)


def ensure_embeddings(items: list[Item]) -> np.ndarray:
    """Frozen MiniLM vectors for ``items`` (N, 384), computing and caching the missing ones
    (one encoder batch, one bulk write). The write leaves updated_at alone: caching a vector
    of an unchanged text is no catalogue change."""
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
        Item.objects.bulk_update([items[n] for n in todo], ["embedding", "embedding_hash"], batch_size=500)
    return out


def embed_items(pks: list[int], progress=None, batch: int = 256) -> dict:
    """The catalogue job's work: vectors for the given (new or edited) items, encoded in
    batches and written in bulk with updated_at moved, so every serving process adds them to
    its index on its next request (no rebuild)."""
    from aigc_core.retrieval.encoder import encode

    progress = progress or (lambda pct, msg: None)
    items = [i for i in Item.objects.filter(pk__in=pks).order_by("pk") if i.cached_vector() is None]
    for start in range(0, len(items), batch):
        chunk = items[start:start + batch]
        vecs = encode([i.text for i in chunk])
        now = timezone.now()
        for it, vec in zip(chunk, vecs, strict=True):
            it.embedding, it.embedding_hash, it.updated_at = vec.astype(np.float32).tobytes(), it.text_hash, now
        Item.objects.bulk_update(chunk, ["embedding", "embedding_hash", "updated_at"], batch_size=500)
        progress(10 + 85 * min(1.0, (start + len(chunk)) / max(1, len(items))), f"embedded {start + len(chunk)} items")
    return {"embedded": len(items), "items": len(pks)}


def import_items(rows: list[dict], user=None) -> dict:
    """Catalogue import or edit: rows written at once (all or nothing), then a job embeds the
    changed items and serving picks them up incrementally. Returns counts and the job id."""
    from apps.common.jobs import enqueue
    from apps.recommend import tasks

    result = upsert_items(rows)
    out = result.as_dict()
    if result.changed_pks:
        job = enqueue(tasks.index_items, "recommend.index", params={"items": len(result.changed_pks)}, user=user,
                      pks=result.changed_pks)
        out["job"] = job.pk
    return out


def search_items(query: str, limit: int = 20) -> list[Item]:
    """Items whose title, external id or category contains ``query`` (case-insensitive)."""
    query = (query or "").strip()
    if not query:
        return []
    return list(Item.objects.filter(Q(title__icontains=query) | Q(external_id__icontains=query)
                                    | Q(category__icontains=query)).order_by("title")[:limit])


def catalogue_summary() -> dict:
    return {
        "items": Item.objects.count(),
        "live": Item.objects.live().count(),
        "events": Event.objects.count(),
        "users": Event.objects.values("user_id").distinct().count(),
        "by_kind": dict(Event.objects.values_list("kind").annotate(n=Count("pk")).values_list("kind", "n")),
    }
