"""Support app records: conversations with the bot and agents, what was learned
from past transcripts (pairs, answer templates, intent clusters), the knowledge
base, visitor feedback and the widget's public keys."""
from __future__ import annotations

import secrets
import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


def new_public_key() -> str:
    return "pk_" + secrets.token_urlsafe(18)


def new_visitor_id() -> str:
    return "v_" + secrets.token_urlsafe(16)


class WidgetKey(models.Model):
    """A public key for the embeddable widget: which origins may use it and how fast."""

    name = models.CharField(max_length=100)
    public_key = models.CharField(max_length=64, unique=True, default=new_public_key)
    allowed_origins = models.JSONField(
        default=list, blank=True, help_text='e.g. ["https://shop.example.com"]; "*" allows any origin'
    )
    rate_limit_per_minute = models.PositiveIntegerField(default=20, help_text="messages per visitor per minute")
    ip_rate_limit_per_minute = models.PositiveIntegerField(default=60, help_text="requests per IP per minute")
    greeting = models.CharField(max_length=300, default="Hi! Ask me anything about your order.")
    title = models.CharField(max_length=80, default="Support")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.name} ({self.public_key[:10]}…)"

    def allows_origin(self, origin: str | None) -> bool:
        """Whether a page on ``origin`` may use this key. The widget server's own pages are
        allowed by the view (same-origin), not here: this list is for other sites."""
        if not origin:
            return False
        origin = origin.rstrip("/")
        allowed = [o.rstrip("/") for o in (self.allowed_origins or [])]
        return "*" in allowed or origin in allowed


class BotSettings(models.Model):
    """Per-deployment knobs (one row): the confidence threshold staff pick from the curve."""

    threshold = models.FloatField(default=0.5, help_text="below this confidence the bot hands over")
    threshold_source = models.CharField(
        max_length=16, default="default",
        help_text="default | suggested (95% precision on the last training's held-out curve) | staff",
    )
    kb_min_score = models.FloatField(default=0.45, help_text="least KB similarity to answer from passages")
    handoff_text = models.CharField(
        max_length=300,
        default="I'm not sure about that one, so I'm handing you over to a colleague. "
        "Someone will reply here shortly.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    @classmethod
    def get(cls) -> BotSettings:
        obj, _ = cls.objects.get_or_create(pk=1)
        return obj


class Conversation(models.Model):
    class Status(models.TextChoices):
        BOT = "bot"  # the bot is answering
        WAITING = "waiting"  # handed off, no agent reply yet
        AGENT = "agent"  # an agent has answered
        CLOSED = "closed"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    widget = models.ForeignKey(WidgetKey, null=True, blank=True, on_delete=models.SET_NULL)
    visitor_id = models.CharField(max_length=64, db_index=True, default=new_visitor_id)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.BOT, db_index=True)
    origin = models.CharField(max_length=200, blank=True)
    assigned_to = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(default=timezone.now, db_index=True)
    handed_off_at = models.DateTimeField(null=True, blank=True)
    # The hand-off, as the visitor and the inbox see it (apps/support/handoff.py).
    page_url = models.CharField(max_length=500, blank=True, help_text="the page the visitor wrote from")
    handoff_reason = models.CharField(max_length=16, blank=True, help_text="visitor (asked for a person) | bot (unsure)")
    first_agent_reply_at = models.DateTimeField(null=True, blank=True, help_text="measures the expected wait")
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, related_name="+",
                                  on_delete=models.SET_NULL)
    csat_rating = models.PositiveSmallIntegerField(null=True, blank=True, help_text="1-5, the visitor's rating")
    csat_comment = models.CharField(max_length=500, blank=True)
    csat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return f"conversation {self.pk} ({self.status})"

    @property
    def last_customer_text(self) -> str:
        return self.messages.filter(role="customer").order_by("-id").values_list("text", flat=True).first() or ""


class Message(models.Model):
    class Role(models.TextChoices):
        CUSTOMER = "customer"
        BOT = "bot"
        AGENT = "agent"

    conversation = models.ForeignKey(Conversation, related_name="messages", on_delete=models.CASCADE)
    role = models.CharField(max_length=16, choices=Role.choices)
    text = models.TextField()
    intent = models.CharField(max_length=100, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    sources = models.JSONField(default=list, blank=True)
    handed_off = models.BooleanField(default=False)
    answer_kind = models.CharField(max_length=16, blank=True, help_text="template | kb | llm | handoff")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.role}: {self.text[:40]}"


class Feedback(models.Model):
    """A visitor's thumbs up (+1) or down (-1) on one bot message; the latest vote counts."""

    message = models.OneToOneField(Message, related_name="feedback", on_delete=models.CASCADE)
    rating = models.SmallIntegerField(choices=[(1, "up"), (-1, "down")])
    created_at = models.DateTimeField(default=timezone.now)


class IntentCluster(models.Model):
    """Unlabelled customer questions grouped by meaning; staff give the group a name."""

    name = models.CharField(max_length=100, blank=True, help_text="the intent, once staff name it")
    size = models.PositiveIntegerField(default=0)
    examples = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-size"]

    def __str__(self) -> str:
        return self.name or f"cluster {self.pk} ({self.size})"


class AnswerTemplate(models.Model):
    """A reply agents keep giving, with {slot} placeholders for the customer's values
    (apps/support/slots.py) and {{Name}} ones for the shop's own (ShopSetting)."""

    class Kind(models.TextChoices):
        INFORMATIONAL = "informational", "informational (the bot may send it)"
        ACTION = "action", "action-claiming (the bot hands off or sends the variant)"

    text = models.TextField()
    intent = models.CharField(max_length=100, blank=True, db_index=True)
    slots = models.JSONField(default=list, blank=True)
    kind = models.CharField(
        max_length=16, choices=Kind.choices, default=Kind.INFORMATIONAL,
        help_text="action-claiming: past actions of the agent or a specific order's status; never sent as is")
    kind_set_by = models.CharField(max_length=8, default="auto", help_text="auto (set at ingest) | staff")
    informational_variant = models.TextField(
        blank=True, help_text="what the bot sends instead of an action-claiming template, e.g. \"I can't change "
                              "orders myself; I'm passing this to an agent with your order number {order_id}.\"")
    uses = models.PositiveIntegerField(default=0, help_text="agent replies grouped into it")
    source = models.CharField(max_length=16, default="ingest", help_text="ingest | staff")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-uses", "id"]

    def __str__(self) -> str:
        return self.text[:60]


class TranscriptPair(models.Model):
    """A customer question and the agent reply that answered it."""

    conversation_ref = models.CharField(max_length=100, db_index=True)
    # Conversation id, question and answer hashed: a re-imported pair is known by it.
    content_hash = models.CharField(max_length=64, blank=True, db_index=True)
    question = models.TextField()
    answer = models.TextField()
    intent = models.CharField(max_length=100, blank=True, db_index=True)
    template = models.ForeignKey(AnswerTemplate, null=True, blank=True, related_name="pairs", on_delete=models.SET_NULL)
    cluster = models.ForeignKey(IntentCluster, null=True, blank=True, related_name="pairs", on_delete=models.SET_NULL)
    asked_at = models.DateTimeField(null=True, blank=True)
    batch = models.CharField(max_length=40, blank=True, help_text="ingest run that created it")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    @property
    def label(self) -> str:
        """The intent to train on: the given one, else the cluster's staff-given name."""
        if self.intent:
            return self.intent
        return self.cluster.name if self.cluster_id and self.cluster.name else ""


class KBArticle(models.Model):
    title = models.CharField(max_length=200)
    slug = models.SlugField(max_length=200, unique=True)
    body = models.TextField()
    url = models.CharField(max_length=300, blank=True, help_text="where visitors can read it")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title


class KBChunk(models.Model):
    article = models.ForeignKey(KBArticle, related_name="chunks", on_delete=models.CASCADE)
    ordinal = models.PositiveIntegerField()
    heading = models.CharField(max_length=200, blank=True)
    text = models.TextField()

    class Meta:
        ordering = ["article_id", "ordinal"]
        unique_together = [("article", "ordinal")]


class ShopSetting(models.Model):
    """One of the shop's own values (support phone, opening hours, a URL, an address) that
    templates ask for as {{Name}}; staff keep them on the shop settings page."""

    name = models.CharField(max_length=80, help_text='as templates name it, e.g. "Customer Support Phone Number"')
    key = models.CharField(max_length=80, unique=True, editable=False)
    value = models.CharField(max_length=500)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        from apps.support.slots import shop_key, shop_value_name

        self.name = shop_value_name(self.name)
        self.key = shop_key(self.name)
        super().save(*args, **kwargs)

    @classmethod
    def values(cls) -> dict[str, str]:
        """{shop_key(name): value} for slots.fill."""
        return {k: v for k, v in cls.objects.values_list("key", "value") if v.strip()}
