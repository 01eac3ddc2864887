"""This app's knobs: a Django setting of the same name wins, else the environment,
else the default. Read at call time so tests can override with ``settings``."""
from __future__ import annotations

from django.conf import settings

from config.env import envint, envlist, envstr

DEFAULT_TOPICS = ["earnings", "m&a", "macro", "regulation", "credit", "markets", "operations"]


def _get(name: str, default):
    return getattr(settings, name, default)


def topics() -> list[str]:
    """The topic label set the classifier is trained on."""
    return list(_get("SENTIMENT_TOPICS", envlist("SENTIMENT_TOPICS", DEFAULT_TOPICS)))


def retry_delays() -> list[float]:
    """Seconds to wait before retry 1, 2, ... of a webhook (5s, 5m, 30m, 2h, 5h, 10h)."""
    raw = _get("SENTIMENT_WEBHOOK_RETRY_DELAYS", envstr("SENTIMENT_WEBHOOK_RETRY_DELAYS", "5,300,1800,7200,18000,36000"))
    if isinstance(raw, str):
        raw = [part for part in raw.split(",") if part.strip()]
    return [float(x) for x in raw]


def disable_after_failures() -> int:
    """A subscription is disabled after this many messages in a row failed every retry."""
    return int(_get("SENTIMENT_WEBHOOK_DISABLE_AFTER", envint("SENTIMENT_WEBHOOK_DISABLE_AFTER", 5)))


def webhook_timeout_s() -> int:
    return int(_get("SENTIMENT_WEBHOOK_TIMEOUT", envint("SENTIMENT_WEBHOOK_TIMEOUT", 10)))


# Retries due within this many seconds are scheduled with a Celery countdown;
# later ones are picked up by the every-minute sweeper (brokers keep long ETAs badly).
COUNTDOWN_LIMIT_S = 90

MAX_BATCH_ITEMS = 1000       # items per JSON batch
MAX_CSV_BYTES = 20 * 1024 * 1024
MAX_FEED_BYTES = 2 * 1024 * 1024
CLASSIFY_BATCH = 256
MODEL_NAME = "sentiment.news"
