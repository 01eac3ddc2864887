"""The hand-off from the bot to a person, as both sides see it: the visitor asks
for a person (or the bot is unsure), waits with an expected wait in view, keeps
writing (each message is acknowledged and lands in the inbox), reads the agent's
replies under the agent's name, sees the close and rates the conversation (CSAT).
The inbox groups conversations the way Chatwoot does: open (a person's turn),
pending (the bot has it), resolved (closed)."""
from __future__ import annotations

import statistics
from datetime import timedelta

from django.db import transaction
from django.db.models import Case, Count, IntegerField, QuerySet, Value, When
from django.utils import timezone

from apps.support import services
from apps.support.models import Conversation, Message

S = Conversation.Status
# Inbox views -> the conversation states they hold.
INBOX_VIEWS: dict[str, list[str]] = {
    "open": [S.WAITING, S.AGENT],
    "pending": [S.BOT],
    "resolved": [S.CLOSED],
}
# Said when the visitor asked for a person; the bot's own hand-off wording
# (when it is unsure) is BotSettings.handoff_text.
VISITOR_ASKED_TEXT = "Sure, I've asked a person from the team to join this conversation."
QUEUED_ACK = "Sent to the team. A person will reply here."
WAIT_SAMPLE = 30  # recent hand-offs the expected wait is the median of
WAIT_WINDOW_DAYS = 14
CSAT_SCALE = (1, 5)
MAX_COMMENT = 500


def agent_name(user) -> str:
    """What the visitor sees as the agent's name: first name, else the username."""
    if user is None:
        return ""
    return (getattr(user, "first_name", "") or "").strip() or user.get_username()


def expected_wait() -> dict:
    """How long the visitor can expect to wait: the median first-reply time of the
    recent hand-offs (None without history) and how many people are waiting."""
    since = timezone.now() - timedelta(days=WAIT_WINDOW_DAYS)
    rows = (Conversation.objects.filter(handed_off_at__gte=since, first_agent_reply_at__isnull=False)
            .order_by("-handed_off_at").values_list("handed_off_at", "first_agent_reply_at")[:WAIT_SAMPLE])
    waits = [max(0.0, (reply - handed).total_seconds()) for handed, reply in rows]
    seconds = round(statistics.median(waits)) if waits else None
    return {"seconds": seconds, "waiting": Conversation.objects.filter(status=S.WAITING).count(),
            "text": wait_text(seconds)}


def wait_text(seconds: int | None) -> str:
    if seconds is None:
        return "A person will reply here as soon as they can."
    if seconds < 90:
        return "The team typically replies in about a minute."
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"The team typically replies in about {minutes} minutes."
    return f"The team typically replies in about {round(minutes / 60)} hours."


def request_agent(conversation: Conversation, page_url: str = "") -> Conversation:
    """The visitor asks for a person: the conversation waits for an agent, and the
    bot says so in words that answer the request (not "I'm not sure")."""
    if conversation.status in (S.BOT, S.CLOSED):
        now = timezone.now()
        with transaction.atomic():
            Message.objects.create(conversation=conversation, role=Message.Role.BOT, text=VISITOR_ASKED_TEXT,
                                   handed_off=True, answer_kind="handoff")
            conversation.status = S.WAITING
            conversation.handed_off_at = conversation.updated_at = now
            conversation.handoff_reason = "visitor"
            conversation.first_agent_reply_at = None
            fields = ["status", "handed_off_at", "updated_at", "handoff_reason", "first_agent_reply_at"]
            if page_url and not conversation.page_url:
                conversation.page_url = page_url[:500]
                fields.append("page_url")
            conversation.save(update_fields=fields)
    return conversation


def queue_for_agent(conversation: Conversation, text: str) -> services.Reply:
    """A message written while a person has the conversation: stored for the inbox
    (the bot stays quiet) and acknowledged to the visitor."""
    text = services.clean_message(text)
    with transaction.atomic():
        msg = Message.objects.create(conversation=conversation, role=Message.Role.CUSTOMER, text=text,
                                     answer_kind="queued")
        Conversation.objects.filter(pk=conversation.pk).update(updated_at=timezone.now())
    return services.Reply(QUEUED_ACK, "", 0.0, [], True, "queued", customer_message_id=msg.pk)


def agent_reply(conversation: Conversation, text: str, user=None) -> Message:
    text = services.clean_message(text)
    author = user if user is not None and getattr(user, "pk", None) else None
    now = timezone.now()
    with transaction.atomic():
        msg = Message.objects.create(conversation=conversation, role=Message.Role.AGENT, text=text, author=author)
        fields = ["status", "updated_at"]
        conversation.status, conversation.updated_at = S.AGENT, now
        if conversation.first_agent_reply_at is None and conversation.handed_off_at is not None:
            conversation.first_agent_reply_at = now
            fields.append("first_agent_reply_at")
        if author and not conversation.assigned_to_id:
            conversation.assigned_to = author
            fields.append("assigned_to")
        conversation.save(update_fields=fields)
    return msg


def close_conversation(conversation: Conversation, user=None) -> Conversation:
    """Resolve: the visitor's widget shows that it is closed and asks for a rating."""
    conversation.status = S.CLOSED
    conversation.updated_at = conversation.closed_at = timezone.now()
    conversation.closed_by = user if user is not None and getattr(user, "pk", None) else None
    conversation.save(update_fields=["status", "updated_at", "closed_at", "closed_by"])
    return conversation


def reopen(conversation: Conversation) -> Conversation:
    """Back to the team's open list (to the agent if one had answered)."""
    if conversation.status == S.CLOSED:
        answered = conversation.messages.filter(role=Message.Role.AGENT).exists()
        conversation.status = S.AGENT if answered else S.WAITING
        conversation.updated_at = timezone.now()
        conversation.save(update_fields=["status", "updated_at"])
    return conversation


def return_to_bot(conversation: Conversation) -> Conversation:
    """Pending: the bot answers again (the agent is done but the visitor may ask more)."""
    conversation.status = S.BOT
    conversation.updated_at = timezone.now()
    conversation.save(update_fields=["status", "updated_at"])
    return conversation


def rate_conversation(conversation: Conversation, rating, comment="") -> Conversation:
    """The visitor's CSAT for a closed conversation: 1-5 and an optional comment."""
    if conversation.status != S.CLOSED:
        raise services.SupportError("A conversation can be rated once it is closed.")
    lo, hi = CSAT_SCALE
    if isinstance(rating, bool) or not isinstance(rating, int) or not lo <= rating <= hi:
        raise services.SupportError(f"rating must be a whole number from {lo} to {hi}.")
    if comment is None:
        comment = ""
    if not isinstance(comment, str):
        raise services.SupportError("comment must be text.")
    if len(comment) > MAX_COMMENT:
        raise services.SupportError(f"comment is longer than {MAX_COMMENT} characters.")
    conversation.csat_rating, conversation.csat_comment = rating, comment.strip()
    conversation.csat_at = timezone.now()
    conversation.save(update_fields=["csat_rating", "csat_comment", "csat_at"])
    return conversation


def inbox_view_of(status: str) -> str:
    for view, states in INBOX_VIEWS.items():
        if status in states:
            return view
    return ""


def inbox(view: str | None = None, origin: str | None = None) -> QuerySet:
    """Conversations for agents: waiting first (oldest hand-off first), then the rest by
    recency. ``view`` is open / pending / resolved or one raw status; ``origin`` filters
    by the site the visitor wrote from."""
    qs = Conversation.objects.annotate(n_messages=Count("messages")).select_related("widget", "assigned_to")
    if view in INBOX_VIEWS:
        qs = qs.filter(status__in=INBOX_VIEWS[view])
    elif view:
        qs = qs.filter(status=view)
    if origin:
        qs = qs.filter(origin=origin)
    return qs.annotate(
        rank=Case(When(status=S.WAITING, then=Value(0)), When(status=S.AGENT, then=Value(1)),
                  When(status=S.BOT, then=Value(2)), default=Value(3), output_field=IntegerField())
    ).order_by("rank", "handed_off_at", "-updated_at")


def inbox_counts() -> dict[str, int]:
    by_status = dict(Conversation.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    return {view: sum(by_status.get(s, 0) for s in states) for view, states in INBOX_VIEWS.items()}


def inbox_origins() -> list[str]:
    return list(Conversation.objects.exclude(origin="").values_list("origin", flat=True).distinct().order_by("origin"))


def visitor_state(conversation: Conversation) -> dict:
    """What the widget shows besides the messages: waiting (with the expected wait), who
    answers, and the close with its rating."""
    state: dict = {"status": conversation.status, "handoff_reason": conversation.handoff_reason}
    if conversation.status == S.WAITING:
        state["wait"] = expected_wait()
    if conversation.assigned_to_id:
        state["agent"] = agent_name(conversation.assigned_to)
    if conversation.status == S.CLOSED:
        state["closed"] = {"at": conversation.closed_at.isoformat() if conversation.closed_at else None,
                           "by": agent_name(conversation.closed_by) if conversation.closed_by_id else "",
                           "rating": conversation.csat_rating, "comment": conversation.csat_comment}
    return state
