"""The public widget endpoints. A widget key (in the URL, so CORS preflights can
be checked too) limits which other sites may call them; the widget server's own
pages (same origin) always may. Each visitor and each IP is rate-limited with
atomic counters (apps/common/ratelimit.py) on the client IP that the
trusted-proxy setting allows (apps/common/client_ip.py); CORS headers for the
allowed sites come from django-cors-headers (apps/support/widget_cors.py); every
error is JSON with "detail" (and a refused origin is logged, since the browser
hides the reason from the page)."""
from __future__ import annotations

import logging
import re
from collections.abc import Callable
from urllib.parse import urlsplit

from asgiref.sync import sync_to_async
from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIRequest
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from apps.common import outages, ratelimit
from apps.common.client_ip import client_ip
from apps.common.jsonparse import JSONInputError, clean_text, parse_json
from apps.support import handoff, services, streaming
from apps.support.models import Conversation, Message, WidgetKey

log = logging.getLogger(__name__)

MAX_BODY = 16 * 1024  # bytes in one widget request body
MAX_ID = 2**63 - 1  # ids above a 64-bit integer cannot exist (and would overflow the query)


class WidgetError(Exception):
    def __init__(self, status: int, detail: str, headers: dict | None = None):
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers or {}


def hit_rate_limit(scope: str, ident: str, limit: int, window_s: int = 60) -> int | None:
    """Count one request; seconds to wait when over ``limit`` in the window, else None (atomic: ratelimit.hit)."""
    return ratelimit.hit(f"support:{scope}", ident, limit, window_s)


def is_same_origin(request: HttpRequest) -> bool:
    """A request from one of this server's own pages (the widget demo, a help page).

    Chromium sends no Origin on a same-origin GET. It sends ``Sec-Fetch-Site`` (which
    page scripts cannot set) to https and localhost pages, and a Referer naming the
    page everywhere else; a POST carries an Origin that names this host. A
    cross-origin fetch always carries its Origin, so only a missing one falls back."""
    origin = request.headers.get("Origin", "")
    try:
        host = request.get_host()
    except DisallowedHost:
        return False
    if origin:
        return urlsplit(origin).netloc == host
    fetch_site = request.headers.get("Sec-Fetch-Site", "")
    if fetch_site:
        return fetch_site == "same-origin"
    referer = request.headers.get("Referer", "")
    return bool(referer) and urlsplit(referer).netloc == host


def _admit(request: HttpRequest, key: str) -> WidgetKey:
    """The key, when this request may use it (its own site or one the key allows)."""
    widget = WidgetKey.objects.filter(public_key=key, active=True).first()
    if widget is None:
        raise WidgetError(404, "Unknown or disabled widget key.")
    origin = request.headers.get("Origin", "")
    if not (is_same_origin(request) or widget.allows_origin(origin)):
        log.warning("widget key %s refused a request from origin %r (Sec-Fetch-Site %r); allowed: %s",
                    widget.name, origin, request.headers.get("Sec-Fetch-Site", ""), widget.allowed_origins)
        raise WidgetError(403, f"Origin {origin or '(none)'} is not allowed for this widget key.")
    return widget


def widget_view(handler: Callable) -> Callable:
    """Key lookup, origin check, CORS, IP rate limit and JSON errors around a widget handler."""

    @csrf_exempt
    def view(request: HttpRequest, key: str, **kwargs):
        try:
            widget = _admit(request, key)
            if request.method == "OPTIONS":  # allowed preflights are answered by django-cors-headers
                return HttpResponse(status=204)
            wait = hit_rate_limit("ip", f"{widget.pk}:{client_ip(request)}", widget.ip_rate_limit_per_minute)
            if wait:
                raise WidgetError(429, "Too many requests from this address; slow down.", {"Retry-After": str(wait)})
            length = request.headers.get("Content-Length", "")
            if (length.isdigit() and int(length) > MAX_BODY) or len(request.body) > MAX_BODY:
                raise WidgetError(413, f"The request body is larger than {MAX_BODY} bytes.")
            response = handler(request, widget, **kwargs)
        except WidgetError as exc:
            response = JsonResponse({"detail": exc.detail}, status=exc.status)
            for k, v in exc.headers.items():
                response[k] = v
        except services.SupportError as exc:
            response = JsonResponse({"detail": str(exc)}, status=400)
        except DatabaseError as exc:
            answer = outages.answer_for(exc, request.path)
            if answer is None:
                raise
            response = JsonResponse(answer.body(), status=answer.status)
            for k, v in answer.headers.items():
                response[k] = v
        return response  # CORS headers for allowed origins: django-cors-headers (widget_cors.py)

    return view


def async_widget_view(handler: Callable) -> Callable:
    """widget_view as an async view: the checks and the handler's database work run in
    a thread, then a streamed body is served from the event loop (under ASGI), so an
    open stream holds no worker thread."""
    sync_view = widget_view(handler)

    @csrf_exempt
    async def view(request: HttpRequest, key: str, **kwargs):
        return await sync_to_async(sync_view)(request, key, **kwargs)

    return view


# -- input ---------------------------------------------------------------------------

def parse_body(request: HttpRequest) -> dict:
    """The request's JSON object, through the project's one parser (apps/common/jsonparse.py):
    too deep, not JSON, NUL or a lone surrogate anywhere, or not an object is a 400 with a detail."""
    if not request.body:
        return {}
    try:
        data = parse_json(request.body)
    except JSONInputError as exc:
        raise WidgetError(400, exc.detail) from exc
    if not isinstance(data, dict):
        raise WidgetError(400, "The body must be a JSON object.")
    return data


def text_field(data: dict, name: str, default: str = "") -> str:
    """A text field of the body: a string or absent (a number or a list is refused, not coerced)."""
    value = data.get(name, default)
    if value is None:
        return default
    try:
        return clean_text(value, name)
    except JSONInputError as exc:
        raise WidgetError(400, exc.detail) from exc


def _visitor_header(request: HttpRequest) -> str:
    return request.headers.get("X-Visitor-Id", "")[:64]


def _conversation(request: HttpRequest, widget: WidgetKey, conversation_id) -> Conversation:
    visitor = _visitor_header(request)
    conv = (Conversation.objects.filter(public_id=conversation_id, widget=widget)
            .select_related("assigned_to", "closed_by").first())
    if conv is None or not visitor or conv.visitor_id != visitor:
        raise WidgetError(404, "No such conversation for this visitor.")
    return conv


def _since(request: HttpRequest) -> int:
    raw = request.GET.get("since") or "0"
    if not re.fullmatch("[0-9]{1,19}", raw) or int(raw) > MAX_ID:
        raise WidgetError(400, "since must be a message id.")
    return int(raw)


# -- output --------------------------------------------------------------------------

def message_json(m: Message) -> dict:
    return {
        "id": m.pk, "role": m.role, "text": m.text, "intent": m.intent, "confidence": m.confidence,
        "sources": m.sources, "handed_off": m.handed_off, "kind": m.answer_kind,
        "author": handoff.agent_name(m.author) if m.role == Message.Role.AGENT and m.author_id else "",
        "created_at": m.created_at.isoformat(),
        "rating": getattr(getattr(m, "feedback", None), "rating", None),
    }


def conversation_json(c: Conversation, since: int = 0) -> dict:
    msgs = c.messages.filter(id__gt=since).select_related("feedback", "author").order_by("id")
    return {"conversation_id": str(c.public_id), "visitor_id": c.visitor_id, **handoff.visitor_state(c),
            "messages": [message_json(m) for m in msgs]}


def _method(request: HttpRequest, *allowed: str) -> None:
    if request.method not in allowed:
        raise WidgetError(405, f"Use {' or '.join(allowed)}.")


# -- endpoints -----------------------------------------------------------------------

@widget_view
def config(request, widget: WidgetKey):
    _method(request, "GET")
    return JsonResponse({"title": widget.title, "greeting": widget.greeting})


@widget_view
def conversations(request, widget: WidgetKey):
    """POST {visitor_id?, page_url?}: start a conversation (or resume the visitor's open one)."""
    _method(request, "POST")
    data = parse_body(request)
    visitor = (text_field(data, "visitor_id") or _visitor_header(request))[:64]
    page_url = text_field(data, "page_url")[:500]
    conv = None
    if visitor:
        conv = (Conversation.objects.filter(widget=widget, visitor_id=visitor)
                .exclude(status=Conversation.Status.CLOSED).order_by("-updated_at").first())
    if conv is None:
        wait = hit_rate_limit("new-conv", f"{widget.pk}:{client_ip(request)}", widget.rate_limit_per_minute)
        if wait:
            raise WidgetError(429, "Too many new conversations; wait a moment.", {"Retry-After": str(wait)})
        kwargs = {"visitor_id": visitor} if visitor.startswith("v_") and len(visitor) >= 12 else {}
        origin = request.headers.get("Origin", "") or (urlsplit(page_url).scheme + "://" + urlsplit(page_url).netloc
                                                       if urlsplit(page_url).netloc else "")
        conv = Conversation.objects.create(widget=widget, origin=origin[:200], page_url=page_url, **kwargs)
        return JsonResponse(conversation_json(conv), status=201)
    return JsonResponse(conversation_json(conv))


def _messages(request, widget: WidgetKey, conversation_id):
    conv = _conversation(request, widget, conversation_id)
    if request.method == "GET":
        return JsonResponse(conversation_json(conv, _since(request)))
    _method(request, "POST")
    wait = hit_rate_limit("visitor", f"{widget.pk}:{conv.visitor_id}", widget.rate_limit_per_minute)
    if wait:
        raise WidgetError(429, "You are sending messages too quickly; wait a moment.", {"Retry-After": str(wait)})
    text = text_field(parse_body(request), "text")
    if "text/event-stream" in request.headers.get("Accept", ""):
        reply = services.answer_message(conv, text, generate=False)
        rs = streaming.ReplyStream(reply, text, conv.pk)
        events = streaming.events_async(rs) if isinstance(request, ASGIRequest) else streaming.events_sync(rs)
        response = StreamingHttpResponse(events, content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        return response
    reply = services.answer_message(conv, text)
    bot_message = Message.objects.filter(pk=reply.message_id).first() if reply.message_id else None
    conv = Conversation.objects.select_related("assigned_to", "closed_by").get(pk=conv.pk)
    return JsonResponse({"reply": reply.as_dict(), "message": message_json(bot_message) if bot_message else None,
                         **handoff.visitor_state(conv)}, status=201)


# GET ?since=<id>: newer messages and the conversation's state (the widget polls it).
# POST {text}: ask; with ``Accept: text/event-stream`` the reply streams as it is produced.
messages = async_widget_view(_messages)


@widget_view
def request_agent(request, widget: WidgetKey, conversation_id):
    """POST {page_url?}: the visitor asks for a person."""
    _method(request, "POST")
    page_url = text_field(parse_body(request), "page_url")
    conv = handoff.request_agent(_conversation(request, widget, conversation_id), page_url)
    return JsonResponse(conversation_json(conv, _since(request)))


@widget_view
def rate_conversation(request, widget: WidgetKey, conversation_id):
    """POST {rating: 1-5, comment?}: the visitor's satisfaction with a closed conversation."""
    _method(request, "POST")
    data = parse_body(request)
    conv = handoff.rate_conversation(_conversation(request, widget, conversation_id), data.get("rating"),
                                     text_field(data, "comment"))
    return JsonResponse(handoff.visitor_state(conv))


@widget_view
def feedback(request, widget: WidgetKey, message_id: int):
    _method(request, "POST")
    msg = (Message.objects.filter(pk=message_id, conversation__widget=widget).select_related("conversation").first()
           if message_id <= MAX_ID else None)
    if msg is None or msg.conversation.visitor_id != _visitor_header(request):
        raise WidgetError(404, "No such message for this visitor.")
    fb = services.rate_message(msg, parse_body(request).get("rating"))
    return JsonResponse({"message_id": msg.pk, "rating": fb.rating})
