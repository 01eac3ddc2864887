"""Ingest past support transcripts and knowledge-base articles.

Transcripts are CSV or JSONL. One turn per row/line with ``conversation_id``,
``speaker`` (customer/agent), ``text``, optional ``time`` and ``intent``; a
JSONL line may instead hold a whole conversation: ``{"conversation_id": ...,
"turns": [{"speaker": ..., "text": ...}, ...]}``.

Everything is parsed and checked first (errors name the line), then computed
(embeddings, clusters), then written in one transaction: a bad file imports
nothing.
"""
from __future__ import annotations

import hashlib
import re
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.text import slugify

from apps.common.csvparse import CSVInputError, read_csv
from apps.common.jsonparse import JSONInputError, clean_text, parse_json
from apps.support import reply_guard
from apps.support import slots as slot_lib
from apps.support.models import AnswerTemplate, IntentCluster, KBArticle, KBChunk, TranscriptPair

Progress = Callable[[float, str], None]

MAX_ERRORS = 20  # errors listed in one report
MAX_TEXT = 4000  # characters per turn
TEMPLATE_MIN_SIM = 0.9  # replies at least this similar (after slot removal) share a template
CLUSTER_MIN_SIM = 0.6  # unlabelled questions at least this similar (average link) share a cluster
# A phone number, e-mail or amount agents quote in this many different conversations is the
# shop's own (its support line, its shipping fee) and stays in the template as written; one
# quoted in fewer is a customer's and becomes a slot.
SHOP_VALUE_MIN_CONVERSATIONS = 5
SPEAKERS = {
    "customer": "customer", "user": "customer", "visitor": "customer", "client": "customer",
    "agent": "agent", "staff": "agent", "support": "agent", "operator": "agent",
}


class IngestError(ValueError):
    """Bad input; ``errors`` lists 'line N: problem' messages."""

    def __init__(self, errors: list[str]):
        self.errors = errors[:MAX_ERRORS]
        more = f" (and {len(errors) - MAX_ERRORS} more)" if len(errors) > MAX_ERRORS else ""
        super().__init__("; ".join(self.errors) + more)


@dataclass
class Turn:
    conversation: str
    speaker: str  # customer | agent
    text: str
    time: datetime | None
    intent: str
    line: int


@dataclass
class Pair:
    conversation: str
    question: str
    answer: str
    intent: str
    asked_at: datetime | None
    names: set[str] = field(default_factory=set)


@dataclass
class IngestResult:
    turns: int
    pairs: int  # pairs added by this import
    templates_new: int
    templates_total: int
    clusters: int
    batch: str
    pairs_known: int = 0  # pairs of the file imported before (same conversation id and text)
    message: str = ""

    def as_dict(self) -> dict:
        return self.__dict__.copy()


# -- parsing -------------------------------------------------------------------

def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IngestError([f"the file is not UTF-8 text (byte {exc.start})"]) from exc


def detect_format(text: str, filename: str = "") -> str:
    if filename.lower().endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if filename.lower().endswith(".csv"):
        return "csv"
    return "jsonl" if text.lstrip().startswith("{") else "csv"


def _not_text(row: dict, names: tuple[str, ...]) -> str | None:
    for name in names:
        if row.get(name) is not None:
            try:
                clean_text(row[name], name)
            except JSONInputError as exc:
                return exc.detail
    return None


def _turn(row: dict, line: int, conv_default: str | None, errors: list[str]) -> Turn | None:
    if not isinstance(row, dict):
        errors.append(f"line {line}: expected an object with conversation_id, speaker and text")
        return None
    bad = _not_text(row, ("speaker", "role", "text", "intent"))
    if bad:  # a number or a list is refused, not stored as its str()
        errors.append(f"line {line}: {bad}")
        return None
    conv = str(row.get("conversation_id") or row.get("conversation") or conv_default or "").strip()
    speaker_raw = str(row.get("speaker") or row.get("role") or "").strip().lower()
    text = str(row.get("text") or "").strip()
    problems = []
    if not conv:
        problems.append("conversation_id is missing")
    if speaker_raw not in SPEAKERS:
        problems.append(f"speaker must be customer or agent, not {speaker_raw or 'empty'!r}")
    if not text:
        problems.append("text is empty")
    elif len(text) > MAX_TEXT:
        problems.append(f"text is longer than {MAX_TEXT} characters")
    when = None
    raw_time = row.get("time") or row.get("timestamp")
    if raw_time not in (None, ""):
        when = parse_datetime(str(raw_time).strip().replace(" ", "T", 1)) if isinstance(raw_time, str) else None
        if when is None:
            problems.append(f"time {raw_time!r} is not an ISO date-time")
        elif timezone.is_naive(when):
            when = timezone.make_aware(when, UTC)
    if problems:
        errors.append(f"line {line}: " + "; ".join(problems))
        return None
    intent = str(row.get("intent") or "").strip()[:100]
    return Turn(conv[:100], SPEAKERS[speaker_raw], text, when, intent, line)


def parse_transcripts(data: bytes | str, filename: str = "", fmt: str | None = None) -> list[Turn]:
    """All turns of a CSV/JSONL transcript file; raises IngestError naming bad lines."""
    text = _decode(data)
    fmt = fmt or detect_format(text, filename)
    errors: list[str] = []
    turns: list[Turn] = []
    if fmt == "jsonl":
        for n, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                obj = parse_json(raw, where=f"line {n}")
            except JSONInputError as exc:
                errors.append(exc.detail)
                continue
            if isinstance(obj, dict) and "turns" in obj:
                if not isinstance(obj["turns"], list):
                    errors.append(f"line {n}: turns must be a list")
                    continue
                for sub in obj["turns"]:
                    if isinstance(sub, dict) and obj.get("intent") and not sub.get("intent"):
                        sub = {**sub, "intent": obj["intent"]} if SPEAKERS.get(str(sub.get("speaker", "")).lower()) == "customer" else sub
                    t = _turn(sub, n, str(obj.get("conversation_id") or ""), errors)
                    if t:
                        turns.append(t)
            else:
                t = _turn(obj, n, None, errors)
                if t:
                    turns.append(t)
    elif fmt == "csv":
        try:
            header, rows = read_csv(text)
        except CSVInputError as exc:
            raise IngestError([exc.detail]) from exc
        header = [h.lower() for h in header]
        missing = {"conversation_id", "speaker", "text"} - set(header)
        if missing:
            raise IngestError([f"line 1: the CSV header lacks {', '.join(sorted(missing))}"])
        for line, row in rows:
            row = {(k or "").lower() if k is not None else None: v for k, v in row.items()}
            if None in row:
                errors.append(f"line {line}: more fields than the header has")
                continue
            t = _turn(row, line, None, errors)
            if t:
                turns.append(t)
    else:
        raise IngestError([f"unknown format {fmt!r} (csv or jsonl)"])
    if errors:
        raise IngestError(errors)
    if not turns:
        raise IngestError(["the file holds no turns"])
    return turns


def pair_turns(turns: list[Turn]) -> list[Pair]:
    """Pair each run of customer turns with the agent turns that answered it."""
    by_conv: dict[str, list[Turn]] = defaultdict(list)
    for t in turns:
        by_conv[t.conversation].append(t)
    pairs: list[Pair] = []
    for conv, conv_turns in by_conv.items():
        if all(t.time for t in conv_turns):
            conv_turns = sorted(conv_turns, key=lambda t: (t.time, t.line))
        names: set[str] = set()
        question: list[Turn] = []
        answer: list[Turn] = []

        for t in conv_turns:
            if t.speaker == "customer":
                if answer:
                    _flush_pair(pairs, conv, question, answer, names)
                    question, answer = [], []
                question.append(t)
                m = slot_lib.SELF_NAME.search(t.text)
                if m:
                    names.add(m.group("name"))
            elif question:
                answer.append(t)
        _flush_pair(pairs, conv, question, answer, names)
    return pairs


def pair_hash(conversation: str, question: str, answer: str) -> str:
    """What a pair is known by on re-import: its conversation id and both texts."""
    return hashlib.sha256("\x1f".join([conversation, question, answer]).encode()).hexdigest()


def unanswered_conversations(turns: list[Turn]) -> list[str]:
    """'line N: ...' for each conversation where no customer turn got an agent reply
    (nothing can be learned from it, and it is most often a cut-off export). A closing
    "thanks" after the last agent reply is normal and not listed."""
    answered: set[str] = set()
    first_customer: dict[str, Turn] = {}
    asked: set[str] = set()
    for t in turns:
        if t.speaker == "customer":
            first_customer.setdefault(t.conversation, t)
            asked.add(t.conversation)
        elif t.conversation in asked:
            answered.add(t.conversation)
    return [f"line {t.line}: the customer turn of conversation {conv!r} has no agent reply"
            for conv, t in first_customer.items() if conv not in answered]


def validate_transcripts(data: bytes | str, filename: str = "", fmt: str | None = None) -> tuple[list[Turn], list[Pair]]:
    """Everything a job would refuse, checked before it is queued: parsing (lone surrogates,
    bad fields), conversations without a reply, a file with nothing to learn."""
    turns = parse_transcripts(data, filename, fmt)
    errors = unanswered_conversations(turns)
    if errors:
        raise IngestError(errors)
    pairs = pair_turns(turns)
    if not pairs:
        raise IngestError(["no customer message is followed by an agent reply, so nothing can be learned"])
    return turns, pairs


def known_pairs(pairs: list[Pair]) -> set[str]:
    """Hashes of these pairs that are already stored."""
    hashes = [pair_hash(p.conversation, p.question, p.answer) for p in pairs]
    known: set[str] = set()
    for start in range(0, len(hashes), 500):
        known.update(TranscriptPair.objects.filter(content_hash__in=hashes[start:start + 500])
                     .values_list("content_hash", flat=True))
    return known


def shop_constants(answers_by_conversation: dict[str, list[str]]) -> set[str]:
    """Normalised phone numbers, e-mails and amounts quoted in at least
    SHOP_VALUE_MIN_CONVERSATIONS conversations (the shop's own values)."""
    seen: Counter = Counter()
    for answers in answers_by_conversation.values():
        seen.update({slot_lib.normalise_value(v) for answer in answers
                     for slot, v in slot_lib.slot_values(answer) if slot in ("email", "phone", "amount")})
    return {v for v, n in seen.items() if n >= SHOP_VALUE_MIN_CONVERSATIONS}


def _flush_pair(pairs: list[Pair], conv: str, question: list[Turn], answer: list[Turn], names: set[str]) -> None:
    if question and answer:
        intent = next((t.intent for t in reversed(question) if t.intent), "") or next(
            (t.intent for t in answer if t.intent), ""
        )
        pairs.append(Pair(conv, " ".join(t.text for t in question), " ".join(t.text for t in answer),
                          intent, question[0].time, set(names)))


# -- grouping ------------------------------------------------------------------

def _encode(texts: list[str]) -> np.ndarray:
    from aigc_core.retrieval.encoder import encode

    return encode(texts) if texts else np.zeros((0, 384), np.float32)


def cluster_vectors(vecs: np.ndarray, min_sim: float, linkage: str = "average") -> np.ndarray:
    """Agglomerative clustering on cosine distance; returns a label per row."""
    n = len(vecs)
    if n == 0:
        return np.zeros(0, dtype=int)
    if n == 1:
        return np.zeros(1, dtype=int)
    from sklearn.cluster import AgglomerativeClustering

    model = AgglomerativeClustering(
        n_clusters=None, metric="cosine", linkage=linkage, distance_threshold=1.0 - min_sim
    )
    return model.fit_predict(vecs)


def group_templates(templated: list[str], existing: list[tuple[int, str]]) -> tuple[list[int | str], dict[str, str]]:
    """Assign each templated reply to an existing template id, or to a new group key.

    Returns (assignment per reply: int template id or 'new:<k>', {new key: representative text})."""
    uniques = list(dict.fromkeys(templated))
    counts = Counter(templated)
    vecs = _encode(uniques)
    assign_unique: dict[str, int | str] = {}
    remaining = list(range(len(uniques)))
    if existing:
        ex_vecs = _encode([t for _, t in existing])
        sims = vecs @ ex_vecs.T
        remaining = []
        for i, text in enumerate(uniques):
            j = int(np.argmax(sims[i]))
            if sims[i, j] >= TEMPLATE_MIN_SIM:
                assign_unique[text] = existing[j][0]
            else:
                remaining.append(i)
    labels = cluster_vectors(vecs[remaining], TEMPLATE_MIN_SIM, linkage="complete") if remaining else []
    groups: dict[int, list[str]] = defaultdict(list)
    for i, lab in zip(remaining, labels, strict=True):
        groups[int(lab)].append(uniques[i])
    representatives: dict[str, str] = {}
    for lab, members in groups.items():
        key = f"new:{lab}"
        # The most used wording stands for the group; ties go to the one with most slots.
        representatives[key] = max(members, key=lambda t: (counts[t], t.count("{"), -len(t)))
        for t in members:
            assign_unique[t] = key
    return [assign_unique[t] for t in templated], representatives


# -- transcripts ---------------------------------------------------------------

def ingest_transcripts(data: bytes | str, filename: str = "", fmt: str | None = None,
                       progress: Progress | None = None) -> IngestResult:
    progress = progress or (lambda pct, msg: None)
    progress(2, "parsing")
    turns, all_pairs = validate_transcripts(data, filename, fmt)
    known = known_pairs(all_pairs)
    pairs, seen = [], set(known)
    for p in all_pairs:  # a pair repeated inside the file counts once too
        h = pair_hash(p.conversation, p.question, p.answer)
        if h not in seen:
            seen.add(h)
            pairs.append(p)
    skipped = len(all_pairs) - len(pairs)
    if not pairs:
        progress(100, "already imported")
        return IngestResult(
            turns=len(turns), pairs=0, templates_new=0, templates_total=AnswerTemplate.objects.count(),
            clusters=0, batch="", pairs_known=skipped,
            message=f"Already imported: all {skipped} question/answer pairs of this file are stored; 0 added.")
    progress(15, f"{len(pairs)} new question/answer pairs ({skipped} already imported); finding templates")
    answers: dict[str, list[str]] = defaultdict(list)
    for ref, answer in TranscriptPair.objects.values_list("conversation_ref", "answer"):
        answers[ref].append(answer)
    for p in pairs:
        answers[p.conversation].append(p.answer)
    constants = shop_constants(answers)
    templated = [slot_lib.templatize(p.answer, p.names, constants) for p in pairs]
    existing = list(AnswerTemplate.objects.values_list("id", "text"))
    assignment, reps = group_templates([t for t, _ in templated], existing)
    progress(60, "clustering unlabelled questions")
    unlabelled = [i for i, p in enumerate(pairs) if not p.intent]
    cluster_labels = cluster_vectors(_encode([pairs[i].question for i in unlabelled]), CLUSTER_MIN_SIM)
    progress(85, "saving")
    batch = uuid.uuid4().hex[:12]
    with transaction.atomic():
        new_templates: dict[str, AnswerTemplate] = {}
        for key, text in reps.items():
            new_templates[key] = AnswerTemplate.objects.create(
                text=text, slots=slot_lib.slots_in(text), source="ingest", kind=reply_guard.template_kind(text),
            )
        clusters: dict[int, IntentCluster] = {}
        members: dict[int, list[int]] = defaultdict(list)
        for i, lab in zip(unlabelled, cluster_labels, strict=True):
            members[int(lab)].append(i)
        for lab, idx in members.items():
            clusters[lab] = IntentCluster.objects.create(
                size=len(idx), examples=[pairs[i].question[:200] for i in idx[:8]]
            )
        pair_cluster = {i: clusters[int(lab)] for i, lab in zip(unlabelled, cluster_labels, strict=True)}
        rows = []
        for i, (p, target) in enumerate(zip(pairs, assignment, strict=True)):
            template_id = new_templates[target].pk if isinstance(target, str) else target
            rows.append(TranscriptPair(
                conversation_ref=p.conversation, question=p.question, answer=p.answer, intent=p.intent,
                template_id=template_id, cluster=pair_cluster.get(i), asked_at=p.asked_at, batch=batch,
                content_hash=pair_hash(p.conversation, p.question, p.answer),
            ))
        TranscriptPair.objects.bulk_create(rows, batch_size=500)
        refresh_template_stats()
    progress(100, "done")
    message = f"Added {len(pairs)} question/answer pairs"
    message += f"; {skipped} were already imported and were skipped." if skipped else "."
    return IngestResult(
        turns=len(turns), pairs=len(pairs), templates_new=len(new_templates),
        templates_total=AnswerTemplate.objects.count(), clusters=len(clusters), batch=batch,
        pairs_known=skipped, message=message,
    )


def refresh_template_stats() -> None:
    """Each template's use count and majority intent, from its pairs."""
    votes: dict[int, Counter] = defaultdict(Counter)
    uses: Counter = Counter()
    for tid, intent, cname in TranscriptPair.objects.filter(template__isnull=False).values_list(
        "template_id", "intent", "cluster__name"
    ):
        uses[tid] += 1
        label = intent or cname or ""
        if label:
            votes[tid][label] += 1
    for tpl in AnswerTemplate.objects.all():
        intent = votes[tpl.pk].most_common(1)[0][0] if votes[tpl.pk] else tpl.intent
        if tpl.uses != uses[tpl.pk] or tpl.intent != intent:
            AnswerTemplate.objects.filter(pk=tpl.pk).update(uses=uses[tpl.pk], intent=intent)


def name_cluster(cluster: IntentCluster, name: str) -> IntentCluster:
    """Staff name a cluster: its questions now train under that intent."""
    name = name.strip()[:100]
    if not name:
        raise IngestError(["the intent name is empty"])
    with transaction.atomic():
        cluster.name = name
        cluster.save(update_fields=["name"])
        refresh_template_stats()
    return cluster


# -- knowledge base ------------------------------------------------------------

CHUNK_CHARS = 700  # soft limit per KB chunk; paragraphs are never split mid-sentence below it
HEADING = re.compile(r"^(#{1,6})\s+(.*)$")


@dataclass
class Document:
    name: str  # file name or slug
    text: str
    title: str = ""
    url: str = ""


def split_markdown(text: str) -> tuple[str, list[tuple[str, str]]]:
    """(title, [(heading, chunk text)]) from markdown or plain text."""
    title = ""
    sections: list[tuple[str, list[str]]] = [("", [])]
    for line in text.splitlines():
        m = HEADING.match(line.strip())
        if m:
            if len(m.group(1)) == 1 and not title:
                title = m.group(2).strip()
                continue
            sections.append((m.group(2).strip(), []))
        else:
            sections[-1][1].append(line)
    chunks: list[tuple[str, str]] = []
    for heading, lines in sections:
        paragraphs = [p.strip() for p in re.split(r"\n\s*\n", "\n".join(lines)) if p.strip()]
        current = ""
        for para in paragraphs:
            para = re.sub(r"\s+", " ", para)
            if current and len(current) + len(para) + 1 > CHUNK_CHARS:
                chunks.append((heading, current))
                current = para
            else:
                current = f"{current} {para}".strip()
        if current:
            chunks.append((heading, current))
    return title, chunks


def ingest_kb(documents: list[Document], progress: Progress | None = None) -> dict:
    """Create or replace KB articles (by slug) and their chunks, atomically."""
    progress = progress or (lambda pct, msg: None)
    errors = []
    parsed = []
    for n, doc in enumerate(documents, start=1):
        text = _decode(doc.text) if isinstance(doc.text, bytes) else doc.text
        title, chunks = split_markdown(text or "")
        title = (doc.title or title or re.sub(r"\.(md|txt|markdown)$", "", doc.name).replace("-", " ").strip()).strip()
        slug = slugify(re.sub(r"\.(md|txt|markdown)$", "", doc.name) or title)[:200]
        if not chunks:
            errors.append(f"document {n} ({doc.name or title}): no text")
            continue
        if not slug:
            errors.append(f"document {n}: needs a name or a title")
            continue
        parsed.append((slug, title[:200], text, doc.url, chunks))
    if errors:
        raise IngestError(errors)
    if not parsed:
        raise IngestError(["no documents"])
    with transaction.atomic():
        created = 0
        for i, (slug, title, body, url, chunks) in enumerate(parsed):
            art, was_new = KBArticle.objects.update_or_create(
                slug=slug, defaults={"title": title, "body": body, "url": url, "updated_at": timezone.now()}
            )
            created += int(was_new)
            art.chunks.all().delete()
            KBChunk.objects.bulk_create(
                [KBChunk(article=art, ordinal=j, heading=h[:200], text=t) for j, (h, t) in enumerate(chunks)]
            )
            progress(100 * (i + 1) / len(parsed), f"article {i + 1}/{len(parsed)}")
    return {"articles": len(parsed), "created": created, "chunks": sum(len(p[4]) for p in parsed)}
