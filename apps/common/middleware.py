"""Turn a database or broker outage into 503 with a message, never a 500 page (and a
concurrent duplicate into 409, an unstorable value into 400)."""
from __future__ import annotations

import logging

from django.db import DatabaseError, InterfaceError
from django.http import JsonResponse
from kombu.exceptions import OperationalError as BrokerError

log = logging.getLogger(__name__)


class ServiceUnavailableMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, BrokerError):
            log.warning("job queue unavailable on %s: %s", request.path, exception)
            code, detail = 503, "The job queue is unavailable. Try again shortly."
        elif _is_cache_outage(exception):
            log.warning("cache unavailable on %s: %s", request.path, exception)
            code, detail = 503, "The cache (rate limits, sessions) is unavailable. Try again shortly."
        elif isinstance(exception, DatabaseError | InterfaceError):
            from apps.common.api import database_error_answer

            answer = database_error_answer(exception)
            if answer is None:
                return None  # a bug: Django's 500 handling, logged with its traceback
            code, detail = answer
        else:
            return None
        resp = JsonResponse({"detail": detail}, status=code)
        if code == 503:
            resp["Retry-After"] = "5"
        return resp


def _is_cache_outage(exc: Exception) -> bool:
    """A Redis used as the cache (CACHE_URL) refusing or timing out."""
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # pragma: no cover - redis is installed with celery[redis]
        return False
    return isinstance(exc, RedisConnectionError | RedisTimeoutError)
