"""Error pages that Django itself answers (no URL matched, a malformed or
oversized request, a refused permission, an unexpected crash): under an
``/api/`` path they are JSON with a ``detail`` message like every other API
error; elsewhere Django's plain pages."""
from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import JsonResponse
from django.views import defaults


def _is_api(request) -> bool:
    return "/api/" in request.path


def bad_request(request, exception=None):
    if not _is_api(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return JsonResponse({"detail": f"The request body is larger than {limit} bytes."}, status=413)
    if isinstance(exception, (TooManyFieldsSent, TooManyFilesSent)):
        return JsonResponse({"detail": "The request has too many form fields or files."}, status=400)
    return JsonResponse({"detail": "The request is malformed."}, status=400)


def permission_denied(request, exception=None):
    if not _is_api(request):
        return defaults.permission_denied(request, exception)
    return JsonResponse({"detail": "You do not have permission to do this."}, status=403)


def page_not_found(request, exception=None):
    if not _is_api(request):
        return defaults.page_not_found(request, exception)
    return JsonResponse({"detail": f"No API endpoint matches {request.method} {request.path[:200]}."}, status=404)


def server_error(request):
    if not _is_api(request):
        return defaults.server_error(request)
    return JsonResponse({"detail": "Internal error; it has been logged."}, status=500)
