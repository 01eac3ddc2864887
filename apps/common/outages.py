"""The one mapping from "something we depend on is away or full" to an HTTP answer.

The DRF exception handler (``apps.common.api``), the plain-Django middleware
(``apps.common.middleware``) and the support widget all call ``answer_for``,
so a client sees the same status, message and ``Retry-After`` for the same
outage wherever it hit it. This module imports nothing of the others (it used
to live half in api.py and half in middleware.py, which imported each other).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.db import DatabaseError, DataError, IntegrityError, InterfaceError, OperationalError
from kombu.exceptions import OperationalError as BrokerError

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5

BROKER_DOWN = ("The job queue is unavailable. Anything this request saved is kept and its processing starts "
               "once the queue is back; try again shortly.")
CACHE_DOWN = "The cache (rate limits, sessions) is unavailable. Try again shortly."
DATABASE_DOWN = "The database is unavailable. Try again shortly."
CONFLICT = "The request conflicts with data stored meanwhile (a duplicate?). Reload and try again."
UNSTORABLE = "A value does not fit (too long, out of range or not valid text)."


@dataclass(frozen=True)
class Answer:
    status: int
    detail: str
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict:
        return {"detail": self.detail}


class Overloaded(Exception):
    """Raised by an endpoint that refuses new work because its backlog is over a limit
    (backpressure): answered 429 with Retry-After, never queued half-way."""

    def __init__(self, detail: str, retry_after_s: int = RETRY_AFTER_S):
        super().__init__(detail)
        self.detail = detail
        self.retry_after_s = max(1, int(retry_after_s))


def is_cache_outage(exc: BaseException) -> bool:
    """A Redis used as the cache (CACHE_URL) refusing or timing out."""
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # pragma: no cover - redis is installed with celery[redis]
        return False
    return isinstance(exc, RedisConnectionError | RedisTimeoutError)


def _retry(status: int, detail: str, seconds: int = RETRY_AFTER_S) -> Answer:
    return Answer(status, detail, {"Retry-After": str(seconds)})


def answer_for(exc: BaseException, where: str = "") -> Answer | None:
    """The answer for an outage, a conflict or an overload; None for anything else
    (a bug: the caller lets it become a logged 500)."""
    if isinstance(exc, Overloaded):
        log.info("refused under backpressure%s: %s", f" on {where}" if where else "", exc.detail)
        return _retry(429, exc.detail, exc.retry_after_s)
    if isinstance(exc, BrokerError):
        log.warning("job queue unavailable%s: %s", f" on {where}" if where else "", exc)
        return _retry(503, BROKER_DOWN)
    if is_cache_outage(exc):
        log.warning("cache unavailable%s: %s", f" on {where}" if where else "", exc)
        return _retry(503, CACHE_DOWN)
    if isinstance(exc, OperationalError | InterfaceError):
        log.warning("database unavailable%s: %s", f" on {where}" if where else "", exc)
        return _retry(503, DATABASE_DOWN)
    if isinstance(exc, IntegrityError):
        log.warning("integrity conflict%s: %s", f" on {where}" if where else "", exc)
        return Answer(409, CONFLICT)
    if isinstance(exc, DataError):
        log.warning("value refused by the database%s: %s", f" on {where}" if where else "", exc)
        return Answer(400, UNSTORABLE)
    if isinstance(exc, DatabaseError):
        return None  # bad SQL, a missing migration: a bug, not a fake outage
    return None
