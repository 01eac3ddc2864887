"""CORS for the public widget, answered by django-cors-headers.

A widget key lists the origins allowed to call it, so the allow-list is not a
setting but a lookup: django-cors-headers asks ``check_request_enabled`` for
each request, and this says yes only for a widget URL whose active key allows
the request's ``Origin``. Preflights of allowed origins are then answered by
the middleware; anything else reaches the widget view, which refuses it
(403) without CORS headers, so a hostile page cannot even read the refusal.
"""
from __future__ import annotations

import logging
import re

from django.db import DatabaseError

log = logging.getLogger(__name__)

WIDGET_PATH = re.compile(r"/api/widget/(?P<key>[^/]+)/")


def widget_origin_allowed(sender, request, **kwargs) -> bool:
    cached = getattr(request, "_widget_cors_allowed", None)
    if cached is not None:
        return cached
    from apps.support.models import WidgetKey

    allowed = False
    match = WIDGET_PATH.search(request.path_info)
    origin = request.headers.get("Origin", "")
    if match and origin:
        try:
            widget = WidgetKey.objects.filter(public_key=match["key"], active=True).first()
        except DatabaseError:  # the view answers the outage with 503
            log.warning("widget CORS check: database unavailable")
            widget = None
        allowed = widget is not None and widget.allows_origin(origin)
    request._widget_cors_allowed = allowed
    return allowed
