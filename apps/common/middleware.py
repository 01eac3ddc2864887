"""Turn a database or broker outage into 503 with a message, never a 500 page."""
from __future__ import annotations

import logging

from django.db import DatabaseError
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
            what = "job queue"
        elif isinstance(exception, DatabaseError):
            what = "database"
        else:
            return None
        log.warning("%s unavailable on %s: %s", what, request.path, exception)
        resp = JsonResponse({"detail": f"The {what} is unavailable. Try again shortly."}, status=503)
        resp["Retry-After"] = "5"
        return resp
