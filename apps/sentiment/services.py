"""News in, labels on, trends up: ingest (API batch, CSV, feeds), ticker
extraction, classification with the registry's model, trend buckets,
staff corrections."""
from __future__ import annotations

import hashlib
import logging
import math
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.common.csvparse import CSVInputError, read_csv
from apps.common.jsonparse import clean_text
from apps.sentiment import conf
from apps.sentiment.models import (
    BUCKET_SECONDS,
    SENTIMENT_SCORE,
    SENTIMENTS,
    Classification,
    Company,
    NewsItem,
    NewsSource,
    Scope,
    TrendBucket,
    bucket_start,
)

log = logging.getLogger(__name__)
Progress = Callable[[float, str], None]


def _noop(pct: float, msg: str = "") -> None:
    return None


# --- ingest -------------------------------------------------------------------

class IngestError(ValueError):
    """The whole input is unusable (not one bad item: those are reported per item)."""


@dataclass
class IngestResult:
    created: list[int] = field(default_factory=list)        # new NewsItem ids
    duplicates: list[dict] = field(default_factory=list)    # {"index", "reason", "id"}
    rejected: list[dict] = field(default_factory=list)      # {"index", "reason"}

    def as_dict(self) -> dict:
        return {
            "created": len(self.created), "duplicates": len(self.duplicates), "rejected": len(self.rejected),
            "created_ids": self.created, "duplicate_items": self.duplicates, "rejected_items": self.rejected,
        }


def content_hash(headline: str, body: str = "") -> str:
    norm = " ".join(f"{headline}\n{body}".lower().split())
    return hashlib.sha256(norm.encode()).hexdigest()


def parse_published(value) -> datetime:
    """ISO 8601 (a bare date or naive time counts as UTC), RFC 2822, or epoch seconds."""
    try:
        dt = _parse_published(value)
        if timezone.is_naive(dt):
            dt = dt.replace(tzinfo=UTC)
        dt = dt.astimezone(UTC)
    except (OverflowError, OSError) as exc:  # 1e20, "0001-01-01T00:00:00+14:00"
        raise ValueError(f"published_at {str(value)[:40]!r} is out of range") from exc
    if dt.year < PUBLISHED_MIN_YEAR:
        raise ValueError(f"published_at {str(value)[:40]!r} is before {PUBLISHED_MIN_YEAR}")
    return dt


PUBLISHED_MIN_YEAR = 1900  # older than any news archive we ingest: a typo or an attack


def _parse_published(value) -> datetime:
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError("published_at must be a finite number of epoch seconds")
        dt = datetime.fromtimestamp(float(value), tz=UTC)
    elif isinstance(value, str) and value.strip():
        raw = value.strip()
        dt = parse_datetime(raw.replace(" ", "T", 1) if len(raw) > 10 and raw[10] == " " else raw)
        if dt is None and re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            dt = datetime.fromisoformat(raw)
        if dt is None:
            try:
                dt = parsedate_to_datetime(raw)
            except (TypeError, ValueError):
                dt = None
        if dt is None:
            raise ValueError(f"published_at {raw[:40]!r} is not an ISO 8601 or RFC 2822 time")
    else:
        raise ValueError("published_at must be a time string or epoch seconds")
    return dt


_CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z]{1,6}(?:\.[A-Za-z]{1,2})?)\b")


class TickerExtractor:
    """Cashtags ($ACME) plus the names and aliases in the company list."""

    def __init__(self, companies: Iterable[Company] | None = None):
        companies = list(Company.objects.all() if companies is None else companies)
        self.known = {c.ticker.upper() for c in companies}
        names: dict[str, str] = {}
        for c in companies:
            for name in [c.name, *(c.aliases or [])]:
                if name and len(name) >= 2:
                    names[name] = c.ticker.upper()
        self.names = names
        self.pattern = (
            re.compile(r"\b(" + "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)) + r")\b")
            if names else None
        )

    def extract(self, text: str) -> list[str]:
        found: list[str] = []
        for m in _CASHTAG.finditer(text):
            t = m.group(1).upper()
            if t not in found:
                found.append(t)
        if self.pattern is not None:
            for m in self.pattern.finditer(text):
                t = self.names[m.group(1)]
                if t not in found:
                    found.append(t)
        return found


@dataclass
class _Clean:
    index: int
    url: str
    headline: str
    body: str
    published_at: datetime
    gold_topic: str
    gold_sentiment: str
    hash: str


def _clean_item(index: int, raw, labelled: bool, topics: list[str], now: datetime) -> _Clean:
    if not isinstance(raw, dict):
        raise ValueError("an item must be an object with url, headline, published_at")
    for name in ("url", "headline", "title", "body", "topic", "sentiment", "source"):
        if raw.get(name) is not None:  # text, not coerced: ``headline: [...]`` is refused
            clean_text(raw[name], name)
    url = str(raw.get("url") or "").strip()
    parts = urlsplit(url)
    if not url:
        raise ValueError("url is required")
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError(f"url {url[:80]!r} is not an http(s) URL")
    if len(url) > 1000:
        raise ValueError("url is longer than 1000 characters")
    headline = " ".join(str(raw.get("headline") or raw.get("title") or "").split())
    if not headline:
        raise ValueError("headline is required")
    if len(headline) > 500:
        raise ValueError("headline is longer than 500 characters")
    body = str(raw.get("body") or "").strip()
    if len(body) > 20000:
        raise ValueError("body is longer than 20000 characters")
    published = raw.get("published_at")
    published_at = now if published in (None, "") else parse_published(published)
    if published_at > now + timedelta(days=1):
        raise ValueError("published_at is more than a day in the future")
    gold_topic = gold_sentiment = ""
    if labelled:
        gold_topic = str(raw.get("topic") or "").strip().lower()
        gold_sentiment = str(raw.get("sentiment") or "").strip().lower()
        if gold_topic and gold_topic not in topics:
            raise ValueError(f"topic {gold_topic!r} is not one of {', '.join(topics)}")
        if gold_sentiment and gold_sentiment not in SENTIMENTS:
            raise ValueError(f"sentiment {gold_sentiment!r} is not one of {', '.join(SENTIMENTS)}")
    return _Clean(index, url, headline, body, published_at, gold_topic, gold_sentiment, content_hash(headline, body))


def ingest_items(raw_items: list, source: NewsSource, *, labelled: bool = False,
                 extractor: TickerExtractor | None = None) -> IngestResult:
    """Validate, deduplicate (by url and by content hash) and store news items.

    Idempotent: sending the same items again stores nothing new. A bad item is
    reported with its index and reason; the others go in."""
    if not isinstance(raw_items, list):
        raise IngestError("items must be a list")
    result = IngestResult()
    now = timezone.now()
    topics = conf.topics()
    clean: list[_Clean] = []
    seen_urls: dict[str, int] = {}
    seen_hashes: dict[str, int] = {}
    for i, raw in enumerate(raw_items):
        try:
            item = _clean_item(i, raw, labelled, topics, now)
        except ValueError as exc:
            result.rejected.append({"index": i, "reason": str(exc)})
            continue
        if item.url in seen_urls:
            result.duplicates.append({"index": i, "reason": f"same url as item {seen_urls[item.url]}", "id": None})
            continue
        if item.hash in seen_hashes:
            result.duplicates.append({"index": i, "reason": f"same content as item {seen_hashes[item.hash]}",
                                      "id": None})
            continue
        seen_urls[item.url] = i
        seen_hashes[item.hash] = i
        clean.append(item)

    existing_url: dict[str, int] = {}
    existing_hash: dict[str, int] = {}
    for start in range(0, len(clean), 500):
        chunk = clean[start:start + 500]
        existing_url.update(NewsItem.objects.filter(url__in=[c.url for c in chunk]).values_list("url", "id"))
        existing_hash.update(NewsItem.objects.filter(content_hash__in=[c.hash for c in chunk])
                             .values_list("content_hash", "id"))
    fresh: list[_Clean] = []
    for c in clean:
        if c.url in existing_url:
            result.duplicates.append({"index": c.index, "reason": "url already stored", "id": existing_url[c.url]})
        elif c.hash in existing_hash:
            result.duplicates.append({"index": c.index, "reason": "same headline and body already stored",
                                      "id": existing_hash[c.hash]})
        else:
            fresh.append(c)

    extractor = extractor or TickerExtractor()
    with transaction.atomic():  # one commit for the batch; each insert is its own savepoint
        for c in fresh:
            obj = NewsItem(source=source, url=c.url, headline=c.headline, body=c.body,
                           published_at=c.published_at, ingested_at=now, content_hash=c.hash,
                           tickers=extractor.extract(f"{c.headline} {c.body}"),
                           gold_topic=c.gold_topic, gold_sentiment=c.gold_sentiment)
            try:
                with transaction.atomic():
                    obj.save()
            except IntegrityError:
                # Another ingest stored the same url or content between our check and our insert.
                result.duplicates.append({"index": c.index, "reason": "stored concurrently by another ingest",
                                          "id": None})
                continue
            result.created.append(obj.pk)
    result.duplicates.sort(key=lambda d: d["index"])
    return result


CSV_COLUMNS = {"url", "headline"}


def parse_csv(data: bytes) -> tuple[list[dict], bool]:
    """Rows of a news CSV (columns url, headline, body, published_at[, source, topic, sentiment]).
    Returns (rows, labelled) where labelled says topic/sentiment columns are present."""
    if len(data) > conf.MAX_CSV_BYTES:
        raise IngestError(f"the CSV is larger than {conf.MAX_CSV_BYTES // (1024 * 1024)} MB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IngestError(f"the CSV is not UTF-8 (byte {exc.start})") from exc
    try:
        fieldnames, parsed = read_csv(text)
    except CSVInputError as exc:
        raise IngestError(exc.detail) from exc
    header = {h.lower() for h in fieldnames}
    missing = CSV_COLUMNS - header
    if missing:
        raise IngestError(f"the CSV lacks column(s) {', '.join(sorted(missing))}; "
                          "expected url, headline, body, published_at")
    rows = [{(k or "").strip().lower(): v for k, v in row.items()} for _, row in parsed]
    return rows, bool({"topic", "sentiment"} & header)


def ingest_csv(data: bytes, source: NewsSource, progress: Progress = _noop) -> IngestResult:
    """Ingest a news CSV; rows with a ``source`` column go to that (CSV) source, others to ``source``.
    Indexes in the result are 0-based data rows (row 0 is the line after the header)."""
    rows, labelled = parse_csv(data)
    extractor = TickerExtractor()
    total = IngestResult()
    step = 500
    sources: dict[str, NewsSource] = {}
    for start in range(0, len(rows), step):
        groups: dict[str, list[int]] = defaultdict(list)
        for i in range(start, min(len(rows), start + step)):
            groups[(rows[i].get("source") or "").strip()].append(i)
        for name, idx in groups.items():
            src = source if not name else sources.setdefault(name, source_named(name, NewsSource.Kind.CSV))
            part = ingest_items([rows[i] for i in idx], src, labelled=labelled, extractor=extractor)
            total.created += part.created
            total.duplicates += [{**d, "index": idx[d["index"]]} for d in part.duplicates]
            total.rejected += [{**r, "index": idx[r["index"]]} for r in part.rejected]
        progress(100 * min(len(rows), start + step) / max(1, len(rows)), f"{start + step} of {len(rows)} rows")
    total.duplicates.sort(key=lambda d: d["index"])
    total.rejected.sort(key=lambda r: r["index"])
    return total


# --- CSV imports run as jobs ---------------------------------------------------------

def upload_dir():
    from pathlib import Path

    from django.conf import settings

    path = Path(settings.AIGC_ARTIFACTS_DIR) / "sentiment-uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def queue_csv_import(data: bytes, source_name: str, user=None):
    """Check the CSV now (a clear 400 before anything is queued: size, encoding, columns),
    store it where the workers read it, and queue its import as a job."""
    import uuid

    from apps.common.jobs import enqueue
    from apps.sentiment.tasks import import_csv

    rows, _ = parse_csv(data)
    name = f"{uuid.uuid4().hex}.csv"
    tmp = upload_dir() / f".{name}.tmp"
    tmp.write_bytes(data)
    tmp.replace(upload_dir() / name)
    job = enqueue(import_csv, "sentiment.import", user=user,
                  params={"rows": len(rows), "bytes": len(data), "source": source_name},
                  upload=name, source=source_name)
    return job, len(rows)


def import_csv_upload(name: str, source_name: str, progress: Progress = _noop) -> dict:
    """The job body: ingest a stored CSV, ask for classification, drop the file."""
    from pathlib import Path

    path = upload_dir() / Path(name).name
    if not path.exists():
        raise IngestError(f"the upload {name} is gone")
    source = source_named(source_name or "csv upload", NewsSource.Kind.CSV)
    with transaction.atomic():
        result = ingest_csv(path.read_bytes(), source, progress)
        if result.created:
            from apps.sentiment.tasks import queue_classification

            job = queue_classification()
        else:
            job = None
    path.unlink(missing_ok=True)
    out = result.as_dict()
    out.pop("created_ids")
    out["classify_job"] = job.pk if job else None
    return out


def source_named(name: str, kind: str = NewsSource.Kind.API) -> NewsSource:
    name = (name or "").strip()[:200] or ("api" if kind == NewsSource.Kind.API else kind)
    src, _ = NewsSource.objects.get_or_create(name=name, defaults={"kind": kind})
    return src


# --- feeds --------------------------------------------------------------------

def feed_entries(data: bytes) -> list[dict]:
    """RSS/Atom bytes → item dicts (url, headline, body, published_at)."""
    import feedparser

    parsed = feedparser.parse(data)
    if parsed.bozo and not parsed.entries:
        raise IngestError(f"not a readable RSS/Atom feed: {parsed.get('bozo_exception')}")
    items = []
    for e in parsed.entries:
        when = e.get("published_parsed") or e.get("updated_parsed")
        items.append({
            "url": e.get("link") or e.get("id") or "",
            "headline": e.get("title") or "",
            "body": re.sub(r"<[^>]+>", " ", e.get("summary") or "")[:20000],
            "published_at": datetime(*when[:6], tzinfo=UTC) if when else None,
        })
    return items


def poll_source(source: NewsSource) -> IngestResult:
    """Fetch one feed through the outbound wrapper, ingest its entries, note the outcome."""
    from apps.common.http import OutboundError, request

    now = timezone.now()
    try:
        resp = request("GET", source.url, headers={"Accept": "application/rss+xml, application/atom+xml, */*"})
        if not resp.ok:
            raise IngestError(f"the feed answered HTTP {resp.status}")
        result = ingest_items(feed_entries(resp.body), source)
    except (OutboundError, IngestError) as exc:
        NewsSource.objects.filter(pk=source.pk).update(last_polled_at=now, last_status=f"error: {exc}"[:300])
        raise
    NewsSource.objects.filter(pk=source.pk).update(
        last_polled_at=now,
        last_status=f"ok: {len(result.created)} new, {len(result.duplicates)} seen, {len(result.rejected)} bad",
    )
    return result


def due_sources(now=None) -> list[NewsSource]:
    return [s for s in NewsSource.objects.filter(kind=NewsSource.Kind.RSS, enabled=True) if s.is_due(now)]


# --- trends -------------------------------------------------------------------

def trend_keys(topic: str, tickers: list[str] | None) -> list[tuple[str, str]]:
    """The (scope, key) series an item with this topic and these tickers counts in."""
    return [(Scope.TOPIC, topic)] + [(Scope.COMPANY, t) for t in (tickers or [])]


def apply_trends(rows: Iterable[tuple[datetime, str, str, list[str]]], sign: int = 1) -> int:
    """Add (sign=+1) or remove (-1) items to the trend buckets: each row is
    (published_at, topic, sentiment, tickers). Returns the buckets touched."""
    agg: dict[tuple[str, str, str, datetime], list[int]] = defaultdict(lambda: [0, 0, 0])
    for published_at, topic, sentiment, tickers in rows:
        keys = trend_keys(topic, tickers)
        for size in BUCKET_SECONDS:
            start = bucket_start(published_at, size)
            for scope, key in keys:
                a = agg[(scope, key, size, start)]
                a[0] += sign
                a[1] += sign if sentiment == "negative" else 0
                a[2] += sign * SENTIMENT_SCORE.get(sentiment, 0)
    if sign > 0:
        _upsert_buckets([(scope, key[:40], size, start, n, neg, s) for (scope, key, size, start), (n, neg, s)
                         in agg.items()])
        return len(agg)
    # Removing: the buckets exist (the item was counted); an insert row with negative counts
    # would trip the non-negative checks before ON CONFLICT is considered, so plain updates.
    with transaction.atomic():
        for (scope, key, size, start), (n, neg, s) in agg.items():
            TrendBucket.objects.filter(scope=scope, key=key[:40], size=size, start=start).update(
                count=F("count") + n, negative_count=F("negative_count") + neg, sentiment_sum=F("sentiment_sum") + s)
    return len(agg)


def _upsert_buckets(rows: list[tuple[str, str, str, datetime, int, int, int]]) -> None:
    """One INSERT … ON CONFLICT DO UPDATE per bucket that adds to the stored counts:
    atomic per row on PostgreSQL and SQLite alike, so concurrent classifiers never lose a count."""
    if not rows:
        return
    qn = connection.ops.quote_name
    table = qn(TrendBucket._meta.db_table)
    cols = ", ".join(qn(c) for c in ["scope", "key", "size", "start", "count", "negative_count", "sentiment_sum"])
    sql = (
        f"INSERT INTO {table} ({cols}) VALUES (%s, %s, %s, %s, %s, %s, %s) "
        f"ON CONFLICT ({qn('scope')}, {qn('key')}, {qn('size')}, {qn('start')}) DO UPDATE SET "
        + ", ".join(f"{qn(c)} = {table}.{qn(c)} + excluded.{qn(c)}" for c in ["count", "negative_count",
                                                                            "sentiment_sum"])
    )
    adapt = connection.ops.adapt_datetimefield_value
    with transaction.atomic(), connection.cursor() as cur:
        # In key order: two classifiers upserting overlapping buckets then lock them in the
        # same order and one waits for the other, where any other order can deadlock them.
        cur.executemany(sql, [(sc, k, sz, adapt(st), n, neg, s) for sc, k, sz, st, n, neg, s in sorted(rows)])


# --- classification -----------------------------------------------------------

class NoModelError(RuntimeError):
    pass


def load_model():
    """The promoted sentiment.news classifier, cached per process; None if none is trained."""
    from apps.common import engine

    def loader(path):
        from aigc_core.models.classifier import EncoderClassifier

        return EncoderClassifier.load(path)

    return engine.load_current(conf.MODEL_NAME, loader)


def classify_texts(model, texts: list[str]) -> list[dict]:
    """Per text: topic, sentiment, confidences and the full probability tables."""
    probs = model.predict_proba(texts)
    heads = model.config.heads
    out = []
    for i in range(len(texts)):
        row: dict = {"probabilities": {}}
        for head in ("topic", "sentiment"):
            if head not in probs:
                continue
            p = probs[head][i]
            labels = heads[head]
            j = int(p.argmax())
            row[head] = labels[j]
            row[f"{head}_confidence"] = float(p[j])
            row["probabilities"][head] = {lab: round(float(x), 4) for lab, x in zip(labels, p, strict=True)}
        out.append(row)
    return out


def pending_items():
    """News items with no classification yet (oldest news first)."""
    return NewsItem.objects.filter(pending=True).order_by("published_at", "id")


_depth_cache: dict[str, float] = {"at": -1e9, "n": 0}


def pending_depth(max_age_s: float = 1.0) -> int:
    """How many items wait for classification, re-counted at most every ``max_age_s``
    per process (ingest asks on every call)."""
    now = time.monotonic()
    if now - _depth_cache["at"] > max_age_s:
        _depth_cache["n"] = pending_items().count()
        _depth_cache["at"] = now
    return int(_depth_cache["n"])


def classify_pending(progress: Progress = _noop, limit: int | None = None, max_run_s: float | None = None,
                     batch_size: int | None = None, after_batch=None) -> dict:
    """Drain the pending items in batches until none is left (or ``limit`` items, or
    ``max_run_s`` seconds), storing classifications and trend counts.

    Several workers may drain at once and never classify the same row: each batch is
    claimed with ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL (rows another
    worker holds are skipped, not waited for) and classified and stored inside that
    transaction. SQLite has no row locks: there every transaction is BEGIN IMMEDIATE
    (settings), which takes the database's one write lock at its start, so the
    claim-classify-store of one worker is serialised against the other's and the
    second sees the first's rows as classified. The "already classified?" re-check
    before the insert stays as a last guard (a row classified by a transaction that
    committed between our snapshot and our lock).

    ``after_batch(stored, touched)`` is called after each committed batch with the
    (scope, key) pairs whose trend buckets it changed (the classify job evaluates the
    alert rules of those keys from there during a long drain)."""
    loaded = load_model()
    if loaded is None:
        return {"classified": 0, "note": "no sentiment.news model is trained yet"}
    model, version = loaded.obj, loaded.version
    size = batch_size or conf.CLASSIFY_BATCH
    deadline = time.monotonic() + max_run_s if max_run_s else None
    total = pending_items().count()
    if limit is not None:
        total = min(total, limit)
    stored = seen = batches = 0
    infer_s = 0.0
    progress(0, f"{total} items to classify")
    while limit is None or seen < limit:
        if deadline is not None and time.monotonic() > deadline:
            break
        take = size if limit is None else min(size, limit - seen)
        n_seen, n_stored, dt, touched = _classify_one_batch(model, version, take)
        if not n_seen:
            break
        seen += n_seen
        stored += n_stored
        infer_s += dt
        batches += 1
        if after_batch is not None:
            after_batch(n_stored, touched)
        progress(min(99.0, 100 * seen / max(1, total)), f"classified {seen} of about {max(total, seen)}")
    return {"classified": seen, "stored": stored, "batches": batches, "inference_s": round(infer_s, 3),
            "model_version": version, "more_pending": pending_items().exists()}


def _classify_one_batch(model, version, size: int) -> tuple[int, int, float, set[tuple[str, str]]]:
    """Claim up to ``size`` pending rows, classify and store them in one transaction.
    Returns (rows claimed, classifications stored, inference seconds, trend keys touched)."""
    from apps.common import metrics

    with transaction.atomic():
        batch = list(pending_items().select_for_update(skip_locked=True, of=("self",))
                     .only("id", "headline", "body", "published_at", "tickers")[:size])
        if not batch:
            return 0, 0, 0.0, set()
        t0 = time.perf_counter()
        preds = classify_texts(model, [it.text for it in batch])
        dt = time.perf_counter() - t0
        metrics.observe_inference(conf.MODEL_NAME, dt, len(batch))
        # Last guard: rows a transaction classified after our snapshot are skipped (one-to-one).
        taken = set(Classification.objects.filter(item_id__in=[it.pk for it in batch])
                    .values_list("item_id", flat=True))
        objs, rows = [], []
        for it, p in zip(batch, preds, strict=True):
            if it.pk in taken:
                continue
            topic = p.get("topic", "")
            objs.append(Classification(
                item=it, topic=topic, sentiment=p["sentiment"], topic_confidence=p.get("topic_confidence", 0),
                sentiment_confidence=p["sentiment_confidence"], probabilities=p["probabilities"],
                predicted_topic=topic, predicted_sentiment=p["sentiment"], model_version=version,
            ))
            rows.append((it.published_at, topic, p["sentiment"], it.tickers))
        try:
            with transaction.atomic():
                Classification.objects.bulk_create(objs)
        except IntegrityError:
            # Stored by another transaction after the check: keep the rest one by one and
            # count in the trends only what this one stored.
            kept = []
            for obj, row in zip(objs, rows, strict=True):
                try:
                    with transaction.atomic():
                        obj.save(force_insert=True)
                except IntegrityError:
                    continue
                kept.append(row)
            rows = kept
        # Every claimed row has a classification now, ours or (skipped above) another's.
        NewsItem.objects.filter(pk__in=[it.pk for it in batch]).update(pending=False)
        apply_trends(rows)
    touched = {k for _, topic, _, tickers in rows for k in trend_keys(topic, tickers)}
    return len(batch), len(rows), dt, touched


def correct_label(item: NewsItem, user, topic: str | None = None, sentiment: str | None = None) -> Classification:
    """A staff correction: the label becomes gold (next training run uses it) and trends move."""
    topics = conf.topics()
    if topic is not None and topic not in topics:
        raise ValueError(f"topic must be one of {', '.join(topics)}")
    if sentiment is not None and sentiment not in SENTIMENTS:
        raise ValueError(f"sentiment must be one of {', '.join(SENTIMENTS)}")
    with transaction.atomic():
        cls = Classification.objects.select_for_update().filter(item=item).first()
        if cls is None:
            raise ValueError("this item is not classified yet")
        apply_trends([(item.published_at, cls.topic, cls.sentiment, item.tickers)], sign=-1)
        cls.topic = topic or cls.topic
        cls.sentiment = sentiment or cls.sentiment
        cls.corrected_by = user if getattr(user, "pk", None) else None
        cls.corrected_at = timezone.now()
        cls.save()
        apply_trends([(item.published_at, cls.topic, cls.sentiment, item.tickers)])
        NewsItem.objects.filter(pk=item.pk).update(gold_topic=cls.topic, gold_sentiment=cls.sentiment)
    return cls


# --- backlog and metrics (read by /healthz, /jobs/ and /metrics) ------------------------

def classify_backlog() -> dict:
    from django.conf import settings

    return {"depth": pending_depth(), "limit": settings.AIGC_INGEST_PENDING_LIMIT, "unit": "news items"}


def _delivery_outcomes() -> dict[tuple, float]:
    from django.db.models import Count

    from apps.sentiment.models import DeliveryAttempt

    return {(r["status"],): r["n"] for r in DeliveryAttempt.objects.order_by().values("status")
            .annotate(n=Count("id"))}


def register_monitoring() -> None:
    from apps.common import health, metrics

    health.register_backlog("sentiment.classify", classify_backlog)
    metrics.register_gauge("aigc_classify_pending", "News items waiting for classification", (),
                           lambda: {(): pending_depth()})
    metrics.register_gauge("aigc_classify_pending_limit", "Backpressure limit: ingest answers 429 above it", (),
                           lambda: {(): _limit()})
    metrics.register_gauge("aigc_webhook_delivery_attempts", "Webhook delivery attempts kept (retention window), "
                           "by outcome", ("status",), _delivery_outcomes)


def _limit() -> int:
    from django.conf import settings

    return settings.AIGC_INGEST_PENDING_LIMIT
