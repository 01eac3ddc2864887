"""The public widget endpoints. A widget key (in the URL, so CORS preflights can
be checked too) limits which origins may call them; each visitor and each IP
is rate-limited with atomic counters (apps/common/ratelimit.py) on the client IP
that the trusted-proxy setting allows (apps/common/client_ip.py); CORS comes from
django-cors-headers (apps/support/widget_cors.py); every error is JSON with "detail"."""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from apps.common import ratelimit
from apps.common.client_ip import client_ip
from apps.common.jsonparse import JSONInputError, clean_text, parse_json
from apps.support import services
from apps.support.models import Conversation, Message, WidgetKey

MAX_BODY = 16 * 1024  # bytes in one widget request body
STREAM_DELAY_S = 0.012  # pause between streamed words, so the reply visibly types


class WidgetError(Exception):
    def __init__(self, status: int, detail: str, headers: dict | None = None):
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers or {}


def hit_rate_limit(scope: str, ident: str, limit: int, window_s: int = 60) -> int | None:
    """Count one request; seconds to wait when over ``limit`` in the window, else None (atomic: ratelimit.hit)."""
    return ratelimit.hit(f"support:{scope}", ident, limit, window_s)


def widget_view(handler: Callable) -> Callable:
    """Key lookup, origin check, CORS, IP rate limit and JSON errors around a widget handler."""

    @csrf_exempt
    def view(request: HttpRequest, key: str, **kwargs):
        origin = request.headers.get("Origin", "")
        widget = WidgetKey.objects.filter(public_key=key, active=True).first()
        allowed = widget is not None and widget.allows_origin(origin)
        try:
            if widget is None:
                raise WidgetError(404, "Unknown or disabled widget key.")
            if not allowed:
                raise WidgetError(403, f"Origin {origin or '(none)'} is not allowed for this widget key.")
            if request.method == "OPTIONS":  # allowed preflights are answered by django-cors-headers
                return HttpResponse(status=204)
            wait = hit_rate_limit("ip", f"{widget.pk}:{client_ip(request)}", widget.ip_rate_limit_per_minute)
            if wait:
                raise WidgetError(429, "Too many requests from this address; slow down.", {"Retry-After": str(wait)})
            if len(request.body) > MAX_BODY:
                raise WidgetError(413, f"The request body is larger than {MAX_BODY} bytes.")
            response = handler(request, widget, **kwargs)
        except WidgetError as exc:
            response = JsonResponse({"detail": exc.detail}, status=exc.status)
            for k, v in exc.headers.items():
                response[k] = v
        except services.SupportError as exc:
            response = JsonResponse({"detail": str(exc)}, status=400)
        except DatabaseError:
            response = JsonResponse({"detail": "The database is unavailable. Try again shortly."}, status=503)
            response["Retry-After"] = "5"
        return response  # CORS headers for allowed origins: django-cors-headers (widget_cors.py)

    return view


def _body(request: HttpRequest) -> dict:
    if not request.body:
        return {}
    try:
        data = parse_json(request.body)
    except JSONInputError as exc:
        raise WidgetError(400, exc.detail) from exc
    if not isinstance(data, dict):
        raise WidgetError(400, "The body must be a JSON object.")
    return data


def _conversation(request: HttpRequest, widget: WidgetKey, conversation_id) -> Conversation:
    visitor = request.headers.get("X-Visitor-Id", "")
    conv = Conversation.objects.filter(public_id=conversation_id, widget=widget).first()
    if conv is None or not visitor or conv.visitor_id != visitor:
        raise WidgetError(404, "No such conversation for this visitor.")
    return conv


def message_json(m: Message) -> dict:
    return {
        "id": m.pk, "role": m.role, "text": m.text, "intent": m.intent, "confidence": m.confidence,
        "sources": m.sources, "handed_off": m.handed_off, "kind": m.answer_kind,
        "created_at": m.created_at.isoformat(),
        "rating": getattr(getattr(m, "feedback", None), "rating", None),
    }


def conversation_json(c: Conversation, since: int = 0) -> dict:
    msgs = c.messages.filter(id__gt=since).select_related("feedback").order_by("id")
    return {"conversation_id": str(c.public_id), "visitor_id": c.visitor_id, "status": c.status,
            "messages": [message_json(m) for m in msgs]}


def _method(request: HttpRequest, *allowed: str) -> None:
    if request.method not in allowed:
        raise WidgetError(405, f"Use {' or '.join(allowed)}.")


@widget_view
def config(request, widget: WidgetKey):
    _method(request, "GET")
    return JsonResponse({"title": widget.title, "greeting": widget.greeting})


@widget_view
def conversations(request, widget: WidgetKey):
    """POST: start a conversation (or resume the visitor's open one)."""
    _method(request, "POST")
    data = _body(request)
    visitor = str(data.get("visitor_id") or request.headers.get("X-Visitor-Id") or "")[:64]
    conv = None
    if visitor:
        conv = (Conversation.objects.filter(widget=widget, visitor_id=visitor)
                .exclude(status=Conversation.Status.CLOSED).order_by("-updated_at").first())
    if conv is None:
        wait = hit_rate_limit("new-conv", f"{widget.pk}:{client_ip(request)}", widget.rate_limit_per_minute)
        if wait:
            raise WidgetError(429, "Too many new conversations; wait a moment.", {"Retry-After": str(wait)})
        kwargs = {"visitor_id": visitor} if visitor.startswith("v_") and len(visitor) >= 12 else {}
        conv = Conversation.objects.create(widget=widget, origin=request.headers.get("Origin", "")[:200], **kwargs)
        return JsonResponse(conversation_json(conv), status=201)
    return JsonResponse(conversation_json(conv))


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def _stream_reply(reply: services.Reply, bot_message: Message | None) -> Iterator[str]:
    yield _sse("start", {"customer_message_id": reply.customer_message_id, "kind": reply.kind})
    if bot_message is not None:
        words = bot_message.text.split(" ")
        for i, word in enumerate(words):
            yield _sse("token", {"t": word + (" " if i < len(words) - 1 else "")})
            time.sleep(STREAM_DELAY_S)
    yield _sse("done", {"message": message_json(bot_message) if bot_message else None,
                        "handed_off": reply.handed_off})


@widget_view
def messages(request, widget: WidgetKey, conversation_id):
    """GET ?since=<id>: newer messages (agents' replies after a hand-off). POST {text}: ask;
    with ``Accept: text/event-stream`` the reply streams word by word."""
    conv = _conversation(request, widget, conversation_id)
    if request.method == "GET":
        try:
            since = int(request.GET.get("since") or 0)
        except ValueError as exc:
            raise WidgetError(400, "since must be a message id.") from exc
        return JsonResponse(conversation_json(conv, since))
    _method(request, "POST")
    wait = hit_rate_limit("visitor", f"{widget.pk}:{conv.visitor_id}", widget.rate_limit_per_minute)
    if wait:
        raise WidgetError(429, "You are sending messages too quickly; wait a moment.", {"Retry-After": str(wait)})
    data = _body(request)
    try:
        text = clean_text(data.get("text", ""), "text")  # a number or NUL is refused, not coerced
    except JSONInputError as exc:
        raise WidgetError(400, exc.detail) from exc
    reply = services.answer_message(conv, text)
    bot_message = Message.objects.filter(pk=reply.message_id).first() if reply.message_id else None
    if "text/event-stream" in request.headers.get("Accept", ""):
        response = StreamingHttpResponse(_stream_reply(reply, bot_message), content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        return response
    return JsonResponse({"reply": reply.as_dict(), "message": message_json(bot_message) if bot_message else None,
                         "status": Conversation.objects.get(pk=conv.pk).status}, status=201)


@widget_view
def request_agent(request, widget: WidgetKey, conversation_id):
    _method(request, "POST")
    conv = services.request_agent(_conversation(request, widget, conversation_id))
    return JsonResponse({"status": conv.status})


@widget_view
def feedback(request, widget: WidgetKey, message_id: int):
    _method(request, "POST")
    msg = Message.objects.filter(pk=message_id, conversation__widget=widget).select_related("conversation").first()
    if msg is None or msg.conversation.visitor_id != request.headers.get("X-Visitor-Id", ""):
        raise WidgetError(404, "No such message for this visitor.")
    fb = services.rate_message(msg, _body(request).get("rating"))
    return JsonResponse({"message_id": msg.pk, "rating": fb.rating})
