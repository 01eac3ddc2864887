"""Turn an outage that escaped a plain Django view (not DRF: its exception handler
does the same) into its JSON answer, never a 500 page. The mapping itself is
``apps.common.outages``."""
from __future__ import annotations

from django.http import JsonResponse
from django.utils.deprecation import MiddlewareMixin

from apps.common import outages


class ServiceUnavailableMiddleware(MiddlewareMixin):
    """Sync and async capable (MiddlewareMixin), so under the ASGI server an async
    view (the SSE streams) is not pushed onto a thread by this middleware."""

    def process_exception(self, request, exception):
        answer = outages.answer_for(exception, request.path)
        if answer is None:
            return None  # a bug: Django's 500 handling, logged with its traceback
        resp = JsonResponse(answer.body(), status=answer.status)
        for k, v in answer.headers.items():
            resp[k] = v
        return resp
