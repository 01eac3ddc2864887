"""Financial-news monitor: sources and items, classifications, trend buckets,
alert rules and alerts, and signed webhook deliveries with their log."""
from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

SENTIMENTS = ["negative", "neutral", "positive"]
SENTIMENT_SCORE = {"negative": -1, "neutral": 0, "positive": 1}


class Scope(models.TextChoices):
    TOPIC = "topic"
    COMPANY = "company"


class BucketSize(models.TextChoices):
    M5 = "5m", "5 minutes"
    H1 = "1h", "1 hour"
    D1 = "1d", "1 day"


BUCKET_SECONDS = {"5m": 300, "1h": 3600, "1d": 86400}


def bucket_start(ts, size: str):
    """The start of the ``size`` bucket holding ``ts`` (aware UTC datetimes)."""
    seconds = BUCKET_SECONDS[size]
    epoch = int(ts.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=UTC)


class Company(models.Model):
    """The company list that ticker extraction matches (besides $cashtags)."""

    ticker = models.CharField(max_length=12, unique=True)
    name = models.CharField(max_length=200)
    aliases = models.JSONField(default=list, blank=True, help_text="other names to match, e.g. short forms")

    class Meta:
        ordering = ["ticker"]
        verbose_name_plural = "companies"

    def __str__(self) -> str:
        return f"{self.ticker} ({self.name})"


class NewsSource(models.Model):
    class Kind(models.TextChoices):
        API = "api", "push API"
        CSV = "csv", "CSV upload"
        RSS = "rss", "RSS/Atom feed"

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.API)
    url = models.URLField(max_length=1000, blank=True, help_text="feed URL (RSS/Atom sources)")
    poll_interval_s = models.PositiveIntegerField(default=300, help_text="seconds between polls (feeds)")
    last_polled_at = models.DateTimeField(null=True, blank=True)
    last_status = models.CharField(max_length=300, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def is_due(self, now=None) -> bool:
        now = now or timezone.now()
        return self.enabled and self.kind == self.Kind.RSS and (
            self.last_polled_at is None or self.last_polled_at + timedelta(seconds=self.poll_interval_s) <= now
        )


class NewsItem(models.Model):
    source = models.ForeignKey(NewsSource, on_delete=models.PROTECT, related_name="items")
    url = models.URLField(max_length=1000, unique=True)
    headline = models.CharField(max_length=500)
    body = models.TextField(blank=True)
    published_at = models.DateTimeField(db_index=True)
    ingested_at = models.DateTimeField(default=timezone.now, db_index=True)
    content_hash = models.CharField(max_length=64, unique=True, help_text="sha256 of normalised headline + body")
    tickers = models.JSONField(default=list, blank=True)
    # Gold labels: from a labelled import or a staff correction; training reads these.
    gold_topic = models.CharField(max_length=40, blank=True)
    gold_sentiment = models.CharField(max_length=10, blank=True)
    # True until a Classification is stored. Workers and the backpressure check find the
    # pending rows through a partial index on this flag; "no classification" was an
    # anti-join over all the news, which grew with the table and, half an hour into a
    # soak, cost more than the classification itself.
    pending = models.BooleanField(default=True, editable=False)

    class Meta:
        ordering = ["-published_at", "-id"]
        indexes = [
            models.Index(fields=["ingested_at", "id"]),
            models.Index(fields=["published_at", "id"], condition=Q(pending=True), name="sentiment_news_pending"),
        ]

    def __str__(self) -> str:
        return self.headline[:80]

    @property
    def text(self) -> str:
        return f"{self.headline}. {self.body}".strip() if self.body else self.headline


class Classification(models.Model):
    item = models.OneToOneField(NewsItem, on_delete=models.CASCADE, related_name="classification")
    topic = models.CharField(max_length=40, db_index=True, help_text="effective label (a correction wins)")
    sentiment = models.CharField(max_length=10, db_index=True)
    topic_confidence = models.FloatField(default=0.0)
    sentiment_confidence = models.FloatField(default=0.0)
    probabilities = models.JSONField(default=dict, help_text='{"topic": {label: p}, "sentiment": {label: p}}')
    predicted_topic = models.CharField(max_length=40, blank=True)
    predicted_sentiment = models.CharField(max_length=10, blank=True)
    model_version = models.PositiveIntegerField(null=True, blank=True)
    classified_at = models.DateTimeField(default=timezone.now)
    corrected_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    corrected_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.topic}/{self.sentiment} for #{self.item_id}"


class TrendBucket(models.Model):
    """Counts per (scope, key, bucket size, bucket start), upserted incrementally."""

    scope = models.CharField(max_length=8, choices=Scope.choices)
    key = models.CharField(max_length=40)
    size = models.CharField(max_length=3, choices=BucketSize.choices)
    start = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)
    negative_count = models.PositiveIntegerField(default=0)
    sentiment_sum = models.IntegerField(default=0, help_text="sum of -1/0/+1 per item")

    class Meta:
        ordering = ["scope", "key", "size", "start"]
        constraints = [
            models.UniqueConstraint(fields=["scope", "key", "size", "start"], name="sentiment_trend_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.scope}:{self.key} {self.size}@{self.start:%Y-%m-%d %H:%M}"

    @property
    def negative_share(self) -> float:
        return self.negative_count / self.count if self.count else 0.0

    @property
    def mean_sentiment(self) -> float:
        return self.sentiment_sum / self.count if self.count else 0.0


class AlertRule(models.Model):
    """A spike (or drop) rule over one metric of the trend buckets; the defaults are
    what ``bench/spikes.py`` scores (``apps/sentiment/detector.py`` explains the detector)."""

    class Metric(models.TextChoices):
        NEGATIVE_COUNT = "negative_count", "negative count"
        NEGATIVE_SHARE = "negative_share", "negative share"
        COUNT = "count", "volume (all items)"

    class Direction(models.TextChoices):
        HIGH = "high", "spike (above the busiest 1%)"
        LOW = "low", "drop (below the quietest 1%: a feed outage)"

    name = models.CharField(max_length=200)
    scope = models.CharField(max_length=8, choices=Scope.choices, default=Scope.TOPIC)
    key = models.CharField(max_length=40, blank=True, help_text="one topic or ticker; blank = every key")
    metric = models.CharField(max_length=16, choices=Metric.choices, default=Metric.NEGATIVE_COUNT)
    direction = models.CharField(max_length=4, choices=Direction.choices, default=Direction.HIGH)
    window = models.CharField(max_length=3, choices=BucketSize.choices, default=BucketSize.M5)
    history_days = models.PositiveIntegerField(default=10, help_text="days of the key's own history in the baseline")
    quantile = models.FloatField(default=0.99, help_text="baseline level: 0.99 = the busiest 1% of windows")
    ratio = models.FloatField(default=2.0, help_text="an alert opens at this many times the baseline level")
    rearm_hours = models.PositiveIntegerField(default=24, help_text="a new alert must top every window of this span")
    growth = models.FloatField(default=2.0, help_text="an open alert is re-notified when it grows by this factor")
    min_volume = models.PositiveIntegerField(default=3, help_text="items in the window before it can alert")
    enabled = models.BooleanField(default=True)
    revision = models.PositiveIntegerField(default=1, help_text="bumped when an edit changes what it detects")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class RuleScopeState(models.Model):
    """The detector's state machine for one rule and one key, and how far it has read."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="states")
    key = models.CharField(max_length=40)
    state = models.JSONField(default=dict)
    last_bucket_start = models.DateTimeField(null=True, blank=True, help_text="last closed window read")
    revision = models.PositiveIntegerField(default=0, help_text="bumped on every write (compare-and-set)")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["rule", "key"], name="sentiment_rule_state_unique")]


class Alert(models.Model):
    class State(models.TextChoices):
        PENDING = "pending"
        FIRING = "firing"
        RESOLVED = "resolved"
        CANCELLED = "cancelled", "withdrawn (the re-evaluated windows no longer meet the rule)"

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    rule_revision = models.PositiveIntegerField(default=1)
    scope = models.CharField(max_length=8, choices=Scope.choices)
    key = models.CharField(max_length=40)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING, db_index=True)
    started_at = models.DateTimeField(help_text="start of the window that opened the alert")
    fired_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    value = models.FloatField(default=0.0, help_text="metric in the window last notified")
    peak_value = models.FloatField(default=0.0)
    baseline = models.FloatField(default=0.0, help_text="the key's busiest-1% level when it opened")
    excess = models.FloatField(default=0.0, help_text="log-excess over the baseline at the last notification")
    peak_ratio = models.FloatField(default=1.0, help_text="peak (value + c) / (baseline + c)")
    notifications = models.PositiveIntegerField(default=0, help_text="firing + updates sent")
    explanation = models.CharField(max_length=300, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="+")
    silenced_until = models.DateTimeField(null=True, blank=True, help_text="no webhooks for this rule and key until")
    items = models.ManyToManyField(NewsItem, blank=True, related_name="alerts")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            # Deduplication: one open alert per rule and key.
            models.UniqueConstraint(fields=["rule", "key"], condition=Q(state__in=["pending", "firing"]),
                                    name="sentiment_one_open_alert"),
        ]

    def __str__(self) -> str:
        return f"{self.rule} {self.scope}:{self.key} {self.state}"

    def is_silenced(self, now=None) -> bool:
        return self.silenced_until is not None and self.silenced_until > (now or timezone.now())


class AlertUpdate(models.Model):
    """The alert's history: each notification, resolution, withdrawal and staff action."""

    class Kind(models.TextChoices):
        FIRING = "firing"
        UPDATED = "updated", "updated (the burst grew)"
        RESOLVED = "resolved"
        REOPENED = "reopened", "re-opened (late or re-labelled news)"
        WITHDRAWN = "withdrawn", "withdrawn (late or re-labelled news)"
        ACKNOWLEDGED = "acknowledged"
        SILENCED = "silenced"

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="updates")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    window_start = models.DateTimeField(null=True, blank=True)
    value = models.FloatField(null=True, blank=True)
    ratio = models.FloatField(null=True, blank=True)
    note = models.CharField(max_length=300, blank=True)
    notified = models.BooleanField(default=False, help_text="a webhook message was published")
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "id"]


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


class WebhookSubscription(models.Model):
    EVENT_TYPES = ["alert.firing", "alert.updated", "alert.resolved"]

    url = models.URLField(max_length=1000)
    description = models.CharField(max_length=200, blank=True)
    # Signing keys are needed in clear to sign, so they are kept, but shown only at creation and on
    # rotation (never by list/detail). After a rotation the previous one also signs until it expires.
    secret = models.CharField(max_length=100, default=new_webhook_secret)
    previous_secret = models.CharField(max_length=100, blank=True, default="")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    secret_rotated_at = models.DateTimeField(null=True, blank=True)
    event_types = models.JSONField(default=list, blank=True, help_text="empty = every event type")
    scopes = models.JSONField(default=list, blank=True, help_text='e.g. ["topic:credit", "company:ACME"]; empty = all')
    enabled = models.BooleanField(default=True)
    consecutive_failures = models.PositiveIntegerField(default=0, help_text="messages in a row that failed")
    disabled_reason = models.CharField(max_length=500, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.url

    def wants(self, event_type: str, scope_key: str | None) -> bool:
        if self.event_types and event_type not in self.event_types:
            return False
        return not self.scopes or scope_key is None or scope_key in self.scopes


def new_message_id() -> str:
    return "msg_" + secrets.token_urlsafe(18)


class WebhookMessage(models.Model):
    """One event; its id is the webhook-id header on every attempt to every subscriber."""

    event_id = models.CharField(max_length=64, unique=True, default=new_message_id)
    event_type = models.CharField(max_length=64)
    scope_key = models.CharField(max_length=60, blank=True, help_text='"topic:credit" etc., for subscription scopes')
    payload = models.JSONField()
    alert = models.ForeignKey(Alert, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.event_id} {self.event_type}"


class Delivery(models.Model):
    """One message to one subscription: its state across retries."""

    class State(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    message = models.ForeignKey(WebhookMessage, on_delete=models.CASCADE, related_name="deliveries")
    subscription = models.ForeignKey(WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    round_attempts = models.PositiveIntegerField(default=0, help_text="attempts since the last (re-)send")
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["message", "subscription"], name="sentiment_delivery_unique")]

    def __str__(self) -> str:
        return f"{self.message.event_id} → {self.subscription.url} ({self.state})"


class DeliveryAttempt(models.Model):
    class Status(models.TextChoices):
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    attempt_no = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices)
    response_code = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    error = models.CharField(max_length=1000, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "id"]
        constraints = [models.UniqueConstraint(fields=["delivery", "attempt_no"], name="sentiment_attempt_unique")]


def _classification_saved(sender, instance: Classification, created: bool, **kwargs) -> None:
    if created:
        NewsItem.objects.filter(pk=instance.item_id, pending=True).update(pending=False)


def _classification_deleted(sender, instance: Classification, **kwargs) -> None:
    NewsItem.objects.filter(pk=instance.item_id).update(pending=True)


# bulk_create (the workers' path) sends no signal; it clears the flag itself.
models.signals.post_save.connect(_classification_saved, sender=Classification)
models.signals.post_delete.connect(_classification_deleted, sender=Classification)
