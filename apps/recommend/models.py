"""Catalogue items and behaviour events. Users are plain string ids sent by the shop
(no user table): a user exists once one of their events does."""
from __future__ import annotations

import hashlib

import numpy as np
from django.db import models
from django.utils import timezone


class ItemQuerySet(models.QuerySet):
    def live(self) -> ItemQuerySet:
        """Items that may be recommended: available and not removed."""
        return self.filter(available=True, removed_at__isnull=True)


class Item(models.Model):
    external_id = models.CharField(max_length=100, unique=True, help_text="the shop's id for the item")
    title = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    tags = models.JSONField(default=list, blank=True)
    category = models.CharField(max_length=100, blank=True, db_index=True)
    price = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)
    available = models.BooleanField(default=True)
    removed_at = models.DateTimeField(null=True, blank=True, help_text="set when removed; never recommended after")
    # Frozen MiniLM vector of `text`, cached so training and serving encode each text once.
    embedding = models.BinaryField(null=True, blank=True, editable=False)
    embedding_hash = models.CharField(max_length=64, blank=True, editable=False)

    objects = ItemQuerySet.as_manager()

    class Meta:
        ordering = ["external_id"]

    def __str__(self) -> str:
        return f"{self.title} ({self.external_id})"

    @property
    def text(self) -> str:
        """What the encoder reads: title, category, tags, description."""
        parts = [self.title, self.category, ", ".join(str(t) for t in self.tags or []), self.description]
        return ". ".join(p for p in parts if p)

    @property
    def text_hash(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def is_live(self) -> bool:
        return self.available and self.removed_at is None

    def cached_vector(self) -> np.ndarray | None:
        if self.embedding and self.embedding_hash == self.text_hash:
            return np.frombuffer(bytes(self.embedding), dtype=np.float32)
        return None


class Event(models.Model):
    class Kind(models.TextChoices):
        VIEW = "view"
        CLICK = "click"
        ADD_TO_CART = "add_to_cart"
        PURCHASE = "purchase"
        RATING = "rating"

    event_id = models.CharField(max_length=100, unique=True, help_text="client id; resending it is a no-op")
    user_id = models.CharField(max_length=100, db_index=True)
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    value = models.FloatField(null=True, blank=True, help_text="rating value (1-5) or quantity")
    at = models.DateTimeField(db_index=True)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["user_id", "at"]), models.Index(fields=["item", "at"])]

    def __str__(self) -> str:
        return f"{self.user_id} {self.kind} {self.item_id} @ {self.at:%Y-%m-%d %H:%M}"


class Rule(models.Model):
    """A merchandiser's rule, applied at serve time and named in the reasons.

    pin: the item is placed at ``position`` (1 = first) in every list it may appear in;
    boost: ``amount`` is added to the ranker score of the item, or of every item in ``category``;
    exclude: the item (or every item in ``category``) is never recommended."""

    class Kind(models.TextChoices):
        PIN = "pin"
        BOOST = "boost"
        EXCLUDE = "exclude"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    item = models.ForeignKey(Item, null=True, blank=True, on_delete=models.CASCADE, related_name="rules")
    category = models.CharField(max_length=100, blank=True, help_text="instead of an item: every item in it")
    amount = models.FloatField(default=0.0, help_text="boost: added to the ranker score")
    position = models.PositiveSmallIntegerField(default=1, help_text="pin: 1 = first")
    note = models.CharField(max_length=200, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["kind", "position", "-created_at"]

    def __str__(self) -> str:
        target = self.item.title if self.item_id else f"category {self.category}"
        return f"{self.kind} {target}"
