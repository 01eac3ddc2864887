"""Support logic: training and versions, answering a message, the hand-off to
agents, feedback, uploads and the dashboard's numbers. Views, API views, tasks
and tests all call these functions."""
from __future__ import annotations

import json
import logging
import shutil
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.common import engine
from apps.support import reply_guard
from apps.support import slots as slot_lib
from apps.support.bot import Bot
from apps.support.building import build_bot
from apps.support.models import (
    AnswerTemplate,
    BotSettings,
    Conversation,
    Feedback,
    KBChunk,
    Message,
    ShopSetting,
    TranscriptPair,
)

log = logging.getLogger(__name__)
Progress = Callable[[float, str], None]

MODEL_NAME = "support.bot"
MAX_MESSAGE_CHARS = 2000
LLM_TIMEOUT_S = 20
KB_MARGIN = 0.1


class SupportError(ValueError):
    """A request the support app cannot carry out; the message says why."""


# -- training and versions ---------------------------------------------------------

def training_data() -> tuple[list[dict], dict[int, dict], list[dict]]:
    """Pairs, templates and KB chunks as build_bot takes them.

    Questions of a cluster staff have not named yet train under the cluster's suggested
    name (apps/support/clusters.py), so an unlabelled import gets an intent model at once.
    A staff answer is also a retrieval entry of its own (its text, pointing at its
    template): one written question is a thin net for the paraphrases it must catch."""
    from apps.support import clusters

    rows = list(TranscriptPair.objects.select_related("cluster").order_by("id"))
    provisional = clusters.provisional_labels()
    pairs = []
    for p in rows:
        label = p.label or provisional.get(p.cluster_id, "")
        pairs.append({"question": p.question, "answer": p.answer, "label": label, "template_id": p.template_id})
        if p.batch == "staff" and p.template_id:
            pairs.append({"question": p.answer, "answer": "", "label": label, "template_id": p.template_id})
    votes: dict[int, Counter] = {}
    for p in pairs:
        if p["template_id"] and p["label"]:
            votes.setdefault(p["template_id"], Counter())[p["label"]] += 1
    templates = {t.pk: {"text": t.text, "intent": t.intent or (votes[t.pk].most_common(1)[0][0] if t.pk in votes
                                                              else "")}
                 for t in AnswerTemplate.objects.all()}
    chunks = [
        {"chunk_id": c.pk, "article_id": c.article_id, "title": c.article.title, "slug": c.article.slug,
         "url": c.article.url, "heading": c.heading, "text": c.text}
        for c in KBChunk.objects.select_related("article").order_by("article_id", "ordinal")
    ]
    return pairs, templates, chunks


def train_bot(progress: Progress | None = None, promote: bool | None = None, **build_kwargs) -> dict:
    """Train every part of the bot and save it as the next "support.bot" version.

    ``promote``: None (the default) lets the deploy gate decide: the new version goes live
    only if it is at least as good as the live one on the same calibration questions
    (apps/support/deploys.py), else it stays a candidate staff can promote by hand;
    True / False force it either way."""
    from aigc_core.data import dataset_hash
    from apps.support import deploys

    progress = progress or (lambda pct, msg: None)
    pairs, templates, chunks = training_data()
    if not pairs and not chunks:
        raise SupportError("Nothing to train on yet: import transcripts or knowledge-base articles first.")
    with tempfile.TemporaryDirectory(prefix="support-bot-") as tmp:
        metrics = build_bot(Path(tmp), pairs, templates, chunks, progress, **build_kwargs)
        progress(99, "comparing with the live version")
        gate = deploys.compare_with_live(Bot.load(tmp), metrics, pairs, current_version(), load_bot())
        metrics["gate"] = gate
        go_live = gate["promote"] if promote is None else promote
        data_hash = dataset_hash([json.dumps([p["question"], p["label"], p["template_id"]]) for p in pairs]
                                 + [c["text"] for c in chunks])
        version = engine.registry().save(
            MODEL_NAME, writer=lambda d: shutil.copytree(tmp, d, dirs_exist_ok=True), metrics=metrics,
            data_hash=data_hash, config={"pairs": len(pairs), "templates": len(templates), "chunks": len(chunks)},
            promote=go_live,
        )
    engine.forget(MODEL_NAME)
    if go_live:
        follow_suggested_threshold(metrics)
    summary = {k: v for k, v in metrics.items() if k not in ("curve", "calibration_answers", "gate")}
    return {"version": version.version, "promoted": go_live, "gate_reason": gate["reason"], **summary}


def follow_suggested_threshold(metrics: dict) -> None:
    """Until staff pick a threshold from the curve, follow the live version's suggestion;
    when no threshold reached the aimed precision, keep the value and say so."""
    BotSettings.get()
    not_staff = BotSettings.objects.filter(pk=1).exclude(threshold_source="staff")
    if metrics.get("suggested_threshold") is not None:
        not_staff.update(threshold=metrics["suggested_threshold"], threshold_source="suggested")
    elif "threshold_reached" in metrics:
        not_staff.update(threshold_source="unreached")


def versions() -> list:
    return list(reversed(engine.registry().versions(MODEL_NAME)))


def current_version():
    return engine.registry().current(MODEL_NAME)


class VersionNotFound(SupportError):
    """An unknown version number (the API and the staff page answer 404)."""


def promote_version(version: int):
    try:
        mv = engine.registry().promote(MODEL_NAME, version)
    except LookupError as exc:
        raise VersionNotFound(f"There is no version {version} of the support bot.") from exc
    engine.forget(MODEL_NAME)
    follow_suggested_threshold(mv.metrics or {})
    return mv


def rollback_target():
    """The version a roll back would make live, or None when there is nothing older."""
    cur = current_version()
    if cur is None:
        return None
    older = [mv for mv in engine.registry().versions(MODEL_NAME) if mv.version < cur.version]
    return older[-1] if older else None


def rollback_version():
    cur = current_version()
    if cur is None:
        raise SupportError("Nothing to roll back: no version of the bot is live yet.")
    if rollback_target() is None:
        raise SupportError(f"Nothing to roll back to: version {cur.version} is the oldest version there is.")
    try:
        mv = engine.registry().rollback(MODEL_NAME)
    except LookupError as exc:  # every older version is damaged on disk
        raise SupportError(f"Nothing to roll back to: no older version of the bot is intact ({exc}).") from exc
    engine.forget(MODEL_NAME)
    follow_suggested_threshold(mv.metrics or {})
    return mv


def load_bot() -> Bot | None:
    loaded = engine.load_current(MODEL_NAME, Bot.load)
    return loaded.obj if loaded else None


# -- answering ------------------------------------------------------------------------

@dataclass
class Reply:
    text: str
    intent: str
    confidence: float
    sources: list[dict] = field(default_factory=list)
    handed_off: bool = False
    kind: str = ""  # template | kb | llm | lm | handoff | queued (a person has the conversation)
    customer_message_id: int | None = None
    message_id: int | None = None
    # What a generator (LLM, in-house LM) phrases the reply from, when it was not run yet
    # (compose_reply(generate=False): the widget streams the generation itself).
    context: list[str] = field(default_factory=list)
    # Why the answer found was not sent (reply_guard problems), when the bot handed off instead.
    withheld: list[str] = field(default_factory=list)
    # What a generated text may quote (the customer's words, the shop's values, the context).
    allowed_text: str = ""

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("context")
        d.pop("allowed_text")
        return d


# Said instead of an action-claiming template that has no informational variant: the bot
# cannot look orders up or change them, and says so in words that claim nothing.
ACTION_HANDOFF_TEXT = ("I can't look up or change orders and accounts myself, so I'm passing this to a "
                       "colleague{order}. Someone will reply here shortly.")


@dataclass
class TemplateRules:
    """What staff decided about a template (AnswerTemplate), read at answer time so an edit
    counts at once, without retraining."""

    kind: str
    approved: bool  # staff set the kind: their "informational" overrules the action test
    variant: str
    text: str  # the wording as it stands now (staff may have edited it since training)


def template_rules(template_id: int | None, text: str) -> TemplateRules:
    row = (AnswerTemplate.objects.filter(pk=template_id).values("text", "kind", "kind_set_by", "informational_variant")
           .first() if template_id is not None else None)
    if row is None:  # a template the bot knows but the database no longer holds: judge its text
        return TemplateRules(reply_guard.template_kind(text), False, "", text)
    return TemplateRules(row["kind"], row["kind_set_by"] == "staff", row["informational_variant"].strip(),
                         row["text"])


def _handoff(cfg: BotSettings, cand, withheld: list[str], text: str | None = None) -> Reply:
    return Reply(text or cfg.handoff_text, cand.intent if cand else "", cand.confidence if cand else 0.0, [],
                 True, "handoff", withheld=withheld)


def template_reply(cand, values: dict[str, str], shop: dict[str, str], cfg: BotSettings) -> Reply:
    """The template the bot picked, filled, or a hand-off when it claims an action or a gap
    stays open. An action-claiming template is never sent: the hand-off says what the bot
    cannot do, in the staff-approved informational variant when there is one."""
    rules = template_rules(cand.template_id, cand.template_text)
    if rules.kind == reply_guard.ACTION:
        # What the customer asked for needs a person; the bot says so (in staff's words when
        # they approved some) and the conversation waits for an agent.
        withheld = ["action: the template claims an action"]
        if rules.variant:
            variant, _missing = slot_lib.fill(rules.variant, values, shop)
            if not reply_guard.check_reply(variant, action_approved=True):
                return _handoff(cfg, cand, withheld, variant)
        order = values.get("order_id")
        return _handoff(cfg, cand, withheld,
                        ACTION_HANDOFF_TEXT.format(order=f" with your order number {order}" if order else ""))
    filled, _missing = slot_lib.fill(rules.text, values, shop)
    problems = reply_guard.check_reply(filled, action_approved=rules.approved)
    if problems:
        return _handoff(cfg, cand, [str(p) for p in problems])
    matched = cand.neighbours[0]["question"] if cand.neighbours else ""
    return Reply(filled, cand.intent, cand.confidence,
                 [{"type": "template", "template_id": cand.template_id, "matched_question": matched}],
                 False, "template")


def generated_text_problems(generated: str, reply: Reply) -> list[reply_guard.Problem]:
    """The guard for text a generator wrote: no action, no gap, no value from elsewhere."""
    return reply_guard.check_reply(generated, allowed_text=reply.allowed_text)


def compose_reply(text: str, known_slots: dict[str, str] | None = None, bot: Bot | None = None,
                  bot_settings: BotSettings | None = None, generate: bool = True) -> Reply:
    """The bot's answer to one message, without touching conversations (benchmarks use it).
    ``generate=False`` leaves the LLM out and keeps its context on the reply, for a caller
    that streams the generation (apps/support/streaming.py)."""
    bot = bot if bot is not None else load_bot()
    cfg = bot_settings or BotSettings.get()
    if bot is None:
        return Reply(cfg.handoff_text, "", 0.0, [], True, "handoff")
    cand = bot.candidate(text)
    # Slots come from the customer's own words only; shop values from the shop's settings.
    values = {**(known_slots or {}), **slot_lib.extract_slots(text)}
    shop = ShopSetting.values()
    passages = [p for p in cand.passages if p["score"] >= cfg.kb_min_score]
    # A question nearer to a KB passage than to any past question is a KB question. Passages
    # are longer than questions, so their cosine runs lower: they get KB_MARGIN of credit.
    kb_closer = bool(passages) and passages[0]["score"] + KB_MARGIN > cand.similarity
    if cand.template_id is not None and cand.confidence >= cfg.threshold and not kb_closer:
        reply = template_reply(cand, values, shop, cfg)
        if reply.handed_off:
            return reply
        context = [reply.text]
    elif passages:
        reply = Reply(compose_from_passages(passages), cand.intent, passages[0]["score"],
                      [_source(p) for p in passages], False, "kb")
        # KB text is the shop's own (staff wrote it): only an open placeholder stops it.
        problems = reply_guard.check_reply(reply.text, action_approved=True)
        if problems:
            return _handoff(cfg, cand, [str(p) for p in problems])
        context = [p["text"] for p in passages]
    else:
        return Reply(cfg.handoff_text, cand.intent, cand.confidence, [], True, "handoff")
    reply.allowed_text = "\n".join([text, *(known_slots or {}).values(), *shop.values(), *context])
    if not generate:
        reply.context = context
    elif settings.SUPPORT_LLM_URL:
        generated = llm_reply(text, context)
        problems = generated_text_problems(generated, reply) if generated else []
        if generated and not problems:
            reply.text, reply.kind = generated, "llm"
        elif problems:
            log.warning("LLM reply withheld (%s); the composed reply stands", "; ".join(map(str, problems)))
    return reply


def _source(p: dict) -> dict:
    from django.urls import reverse

    url = p.get("url") or reverse("support:kb-article", args=[p["slug"]])
    return {"type": "kb", "title": p["title"], "slug": p["slug"], "url": url,
            "heading": p.get("heading", ""), "score": p["score"], "chunk_id": p.get("chunk_id")}


def compose_from_passages(passages: list[dict]) -> str:
    """A reply built from KB passages: the best one, and a second from another article if close,
    each under the title of the article it comes from (the sources link to them)."""
    chosen = [passages[0]]
    for p in passages[1:]:
        if p["article_id"] != passages[0]["article_id"] and p["score"] >= passages[0]["score"] - 0.05:
            chosen.append(p)
            break
    parts = [f"From \u201c{p['title']}\u201d: {p['text']}" for p in chosen]
    return "Here is what our help centre says:\n\n" + "\n\n".join(parts)


def llm_endpoint() -> str:
    """SUPPORT_LLM_URL as the full /v1/chat/completions address."""
    url = settings.SUPPORT_LLM_URL.rstrip("/")
    if not url.endswith("/chat/completions"):
        url += "/v1/chat/completions" if not url.endswith("/v1") else "/chat/completions"
    return url


def llm_payload(question: str, context: list[str], stream: bool = False) -> dict:
    """The chat request the LLM phrases an answer from (the widget's streaming path sends the same)."""
    payload = {
        "model": getattr(settings, "SUPPORT_LLM_MODEL", "") or "default",
        "temperature": 0.2,
        "messages": [
            {"role": "system", "content": "You are a shop's support assistant. Answer only from the context. "
                                          "If the context does not answer the question, say so briefly."},
            {"role": "user", "content": "Context:\n" + "\n---\n".join(context) + f"\n\nQuestion: {question}"},
        ],
    }
    if stream:
        payload["stream"] = True
    return payload


def llm_reply(question: str, context: list[str]) -> str:
    """Ask an OpenAI-compatible /v1/chat/completions server to phrase the answer from
    the retrieved context. Returns "" on any failure (the composed reply stands)."""
    from apps.common.http import OutboundError, post_json

    url, payload = llm_endpoint(), llm_payload(question, context)
    try:
        resp = post_json(url, json.dumps(payload).encode(), timeout=LLM_TIMEOUT_S)
        if not resp.ok:
            log.warning("LLM server answered %s", resp.status)
            return ""
        content = json.loads(resp.body)["choices"][0]["message"]["content"]
        return str(content).strip()[:MAX_MESSAGE_CHARS]
    except (OutboundError, ValueError, KeyError, IndexError, TypeError) as exc:
        log.warning("LLM reply failed: %s", exc)
        return ""


def _known_slots(conversation: Conversation) -> dict[str, str]:
    values: dict[str, str] = {}
    for text in conversation.messages.filter(role=Message.Role.CUSTOMER).values_list("text", flat=True):
        values.update(slot_lib.extract_slots(text))
    return values


def clean_message(text: str) -> str:
    text = (text or "").strip()
    if not text:
        raise SupportError("The message is empty.")
    if len(text) > MAX_MESSAGE_CHARS:
        raise SupportError(f"The message is longer than {MAX_MESSAGE_CHARS} characters.")
    return text


def answer_message(conversation: Conversation, text: str, generate: bool = True) -> Reply:
    """Store a customer's message and the bot's reply (or hand-off).

    Once an agent has the conversation (waiting/agent) the bot stays quiet and the
    message is queued for the agent (apps/support/handoff.py). ``generate=False``:
    the composed reply is stored now and a streaming caller replaces it with the
    generated one when that finishes (on any failure the composed reply stands)."""
    from apps.support import handoff

    text = clean_message(text)
    known = _known_slots(conversation)
    if conversation.status in (Conversation.Status.WAITING, Conversation.Status.AGENT):
        return handoff.queue_for_agent(conversation, text)
    reply = compose_reply(text, known, generate=generate)
    with transaction.atomic():
        customer = Message.objects.create(conversation=conversation, role=Message.Role.CUSTOMER, text=text,
                                          intent=reply.intent, confidence=reply.confidence)
        bot_msg = Message.objects.create(
            conversation=conversation, role=Message.Role.BOT, text=reply.text, intent=reply.intent,
            confidence=reply.confidence, sources=reply.sources, handed_off=reply.handed_off,
            answer_kind=reply.kind,
        )
        fields = {"updated_at": timezone.now()}
        if reply.handed_off:
            fields.update(status=Conversation.Status.WAITING, handed_off_at=timezone.now(), handoff_reason="bot",
                          first_agent_reply_at=None)
        elif conversation.status == Conversation.Status.CLOSED:
            fields.update(status=Conversation.Status.BOT)
        Conversation.objects.filter(pk=conversation.pk).update(**fields)
        for k, v in fields.items():
            setattr(conversation, k, v)
    reply.customer_message_id, reply.message_id = customer.pk, bot_msg.pk
    return reply


def rate_message(message: Message, rating) -> Feedback:
    # Only these exact values: a JSON object or list (unhashable) or true (== 1) is refused.
    value = ({"up": 1, "down": -1, 1: 1, -1: -1, "1": 1, "-1": -1}.get(rating)
             if isinstance(rating, (str, int)) and not isinstance(rating, bool) else None)
    if value is None:
        raise SupportError("rating must be 'up' or 'down'.")
    if message.role != Message.Role.BOT:
        raise SupportError("Only the bot's replies can be rated.")
    fb, _ = Feedback.objects.update_or_create(message=message, defaults={"rating": value,
                                                                         "created_at": timezone.now()})
    return fb


# -- agent-assist -----------------------------------------------------------------------

def agent_assist(conversation: Conversation, draft: str = "") -> dict:
    """Suggestions for the whole conversation (Bot.suggest_for_thread: customer turns
    weighted, above the relevance floor chosen on calibration rows), filled with the
    conversation's slots, and the language model's completion of the agent's draft when
    its own likelihood clears the floor. Nothing relevant: empty lists, said by the UI."""
    bot = load_bot()
    if bot is None:
        return {"suggestions": [], "completion": "", "ready": False}
    turns = list(conversation.messages.exclude(role=Message.Role.BOT).order_by("id").values_list("role", "text"))
    known = _known_slots(conversation)
    suggestions = []
    for s in bot.suggest_for_thread(turns[-12:], k=3):
        s["filled"] = slot_lib.fill(s["text"], known)[0]
        suggestions.append(s)
    completion = bot.complete(draft[-300:]) if draft.strip() else ""
    if completion:  # learnt with placeholders: this conversation's own values, else a neutral phrase
        completion = slot_lib.fill(completion, known)[0]
    return {"suggestions": suggestions, "completion": completion, "ready": True}


# -- unanswered questions -> templates / KB ---------------------------------------------

def unanswered_questions(limit: int = 20) -> list[Message]:
    """Customer messages the bot handed off or whose reply was rated down, newest first."""
    bad_bot = Message.objects.filter(role=Message.Role.BOT).filter(Q(handed_off=True) | Q(feedback__rating=-1))
    rows = []
    for b in bad_bot.select_related("conversation").order_by("-id")[: limit * 3]:
        q = Message.objects.filter(conversation_id=b.conversation_id, role=Message.Role.CUSTOMER,
                                   id__lt=b.id).order_by("-id").first()
        if q and q.pk not in {r.pk for r in rows}:
            rows.append(q)
        if len(rows) >= limit:
            break
    return rows


def add_template(question: str, text: str, intent: str = "") -> AnswerTemplate:
    """Staff answer an unanswered question: a new template and a training pair for it.

    Without an intent the answer gets one of its own, named from the question: a pair with
    no intent trains no classifier, and the bot then weighs its template at zero."""
    from django.utils.text import slugify

    question, text = clean_message(question), clean_message(text)
    intent = intent.strip()[:100] or ("faq-" + (slugify(question)[:60].strip("-") or uuid.uuid4().hex[:8]))
    templated, _ = slot_lib.templatize(text)
    with transaction.atomic():
        tpl = AnswerTemplate.objects.create(text=templated, intent=intent,
                                            slots=slot_lib.slots_in(templated), source="staff", uses=1,
                                            kind=reply_guard.template_kind(templated))
        TranscriptPair.objects.create(conversation_ref="staff", question=question, answer=text,
                                      intent=intent, template=tpl, batch="staff")
    return tpl


def add_kb_entry(title: str, body: str, url: str = "") -> dict:
    from apps.support.ingest import Document, ingest_kb

    title = title.strip()
    if not title or not body.strip():
        raise SupportError("A KB entry needs a title and a body.")
    return ingest_kb([Document(name=title, text=body, title=title, url=url)])


# -- uploads (handed to worker jobs through the shared artifacts directory) -----------

def upload_dir() -> Path:
    path = Path(settings.AIGC_ARTIFACTS_DIR) / "support-uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def store_upload(data: bytes, suffix: str) -> str:
    name = f"{uuid.uuid4().hex}{suffix}"
    (upload_dir() / name).write_bytes(data)
    return name


def read_upload(name: str) -> bytes:
    path = upload_dir() / Path(name).name
    if not path.exists():
        raise SupportError(f"the upload {name} is gone")
    return path.read_bytes()


def drop_upload(name: str) -> None:
    (upload_dir() / Path(name).name).unlink(missing_ok=True)


# -- metrics --------------------------------------------------------------------------

def dashboard_metrics(days: int = 14) -> dict:
    since = timezone.now() - timedelta(days=days)
    convs = Conversation.objects.filter(created_at__gte=since)
    talked = convs.filter(messages__role=Message.Role.CUSTOMER).distinct()
    total = talked.count()
    handed = talked.filter(handed_off_at__isnull=False).count()
    bot_msgs = Message.objects.filter(role=Message.Role.BOT, created_at__gte=since)
    up = Feedback.objects.filter(message__in=bot_msgs, rating=1).count()
    down = Feedback.objects.filter(message__in=bot_msgs, rating=-1).count()
    intents = Counter(bot_msgs.exclude(intent="").exclude(handed_off=True).values_list("intent", flat=True))
    day_rows: dict[str, dict] = {}
    for i in range(days - 1, -1, -1):
        d = (timezone.now() - timedelta(days=i)).date().isoformat()
        day_rows[d] = {"conversations": 0, "handoffs": 0}
    for created, handed_at in talked.values_list("created_at", "handed_off_at"):
        d = created.date().isoformat()
        if d in day_rows:
            day_rows[d]["conversations"] += 1
            day_rows[d]["handoffs"] += int(handed_at is not None)
    return {
        "days": days,
        "conversations": total,
        "handoffs": handed,
        "containment": round((total - handed) / total, 4) if total else None,
        "handoff_rate": round(handed / total, 4) if total else None,
        "thumbs_up": up,
        "thumbs_down": down,
        "top_intents": intents.most_common(10),
        "waiting": Conversation.objects.filter(status=Conversation.Status.WAITING).count(),
        "daily": [{"day": d, **v} for d, v in day_rows.items()],
    }
