"""Job records for every long task, API tokens, worker heartbeats."""
from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

APP_SCOPES = [("support", "Support"), ("sentiment", "Sentiment"), ("recommend", "Recommend")]


class Job(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    kind = models.CharField(max_length=64, db_index=True, help_text="e.g. support.train, sentiment.ingest")
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED, db_index=True)
    progress = models.PositiveSmallIntegerField(default=0)
    message = models.CharField(max_length=500, blank=True)
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="times a worker started it")
    task_id = models.CharField(max_length=64, blank=True, help_text="the message the job runs (or will run) under")
    sent_at = models.DateTimeField(null=True, blank=True, help_text="when that message was published")
    coalesce_key = models.CharField(
        max_length=100, null=True, blank=True,
        help_text="set on single-flight work (e.g. classification): the database holds at most one queued job "
                  "per (kind, key); NULL for ordinary jobs, which never coalesce")
    worker = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # Single flight: a second "classify what is pending" job while one already waits would do
            # nothing the first does not; the database refuses it (on PostgreSQL and SQLite alike).
            models.UniqueConstraint(fields=["kind", "coalesce_key"], condition=models.Q(state="queued"),
                                    name="common_job_one_queued_per_key"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.state})"

    @property
    def app(self) -> str:
        return self.kind.split(".", 1)[0]

    @property
    def duration_s(self) -> float | None:
        if not self.started_at:
            return None
        end = self.finished_at or timezone.now()
        return (end - self.started_at).total_seconds()

    @property
    def is_done(self) -> bool:
        return self.state in {self.State.SUCCEEDED, self.State.FAILED}


TOKEN_PREFIX = "aigc_"


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiToken(models.Model):
    """A per-client API key, scoped to one app. Only its SHA-256 is stored."""

    name = models.CharField(max_length=100)
    app = models.CharField(max_length=16, choices=APP_SCOPES)
    prefix = models.CharField(max_length=16, db_index=True, help_text="first characters, to recognise a key")
    key_hash = models.CharField(max_length=64, unique=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.app}, {self.prefix}…)"

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @classmethod
    def issue(cls, name: str, app: str, owner=None) -> tuple[ApiToken, str]:
        """Create a token; the raw key is returned once and never stored."""
        raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(name=name, app=app, owner=owner, prefix=raw[:12], key_hash=hash_token(raw))
        return token, raw

    def revoke(self) -> None:
        self.revoked_at = timezone.now()
        self.save(update_fields=["revoked_at"])


class WorkerHeartbeat(models.Model):
    hostname = models.CharField(max_length=200, unique=True)
    queues = models.CharField(max_length=200, blank=True)
    seen_at = models.DateTimeField()


class UserPreference(models.Model):
    """Per-user settings of the staff UI (the timezone dates are shown in)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ui_preference")
    timezone = models.CharField(max_length=64, default="UTC")

    def __str__(self) -> str:
        return f"{self.user} ({self.timezone})"


class RateCounter(models.Model):
    """One fixed-window rate-limit counter (apps/common/ratelimit.py, when the cache is not Redis)."""

    key = models.CharField(max_length=200, unique=True)
    count = models.PositiveIntegerField(default=0)
    window_ends = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.key}: {self.count} until {self.window_ends:%H:%M:%S}"
