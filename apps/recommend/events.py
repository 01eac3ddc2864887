"""Behaviour events: validated, stored idempotently by event_id, read back as a user's history."""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from apps.recommend.catalogue import _parse_time
from apps.recommend.errors import RecommendError
from apps.recommend.models import Event, Item
from apps.recommend.training import CONSUMED_KINDS, POSITIVE_KINDS, RATING_POSITIVE

MAX_EVENT_BATCH = 1_000
HISTORY_EVENTS = 200  # most recent events read to build a user's history


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


def search_users(query: str, limit: int = 20) -> list[dict]:
    """User ids containing ``query``, most active first, with their event counts and last event."""
    query = (query or "").strip()
    if not query:
        return []
    rows = (Event.objects.filter(Q(user_id__icontains=query)).values("user_id")
            .annotate(n=Count("pk"), last=Max("at")).order_by("-n", "user_id")[:limit])
    return [{"user_id": r["user_id"], "events": r["n"], "last": r["last"]} for r in rows]
