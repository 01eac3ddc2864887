"""A widget reply streamed as it is produced (server-sent events).

The composed reply (template or KB passages) is ready at once and goes out as one
piece. When a generator phrases it, its pieces go out as they come:

- the LLM: an OpenAI-compatible ``/v1/chat/completions`` with ``stream: true``,
  read with asyncio streams (no thread waits on the socket between tokens);
- the in-house language model (``SUPPORT_REPLY_GENERATOR=lm``): ``aigc_core``'s
  ``stream()``, one token per step, each step run off the event loop.

The composed reply is stored before generation starts and replaced by the
generated one when that finishes whole, so a failure (or a visitor leaving)
keeps the composed reply. Every piece passes the reply guard before it goes out
(apps/support/reply_guard.py): text after an unclosed bracket waits until it is
closed, and the first piece that would complete an action claim, a placeholder
or another customer's value stops the generation; the composed reply replaces
what was shown. Under ASGI (uvicorn) the events come from an async
generator, so an open stream holds no worker thread; under WSGI (runserver,
the live test server) from a plain generator, so it still streams there.
"""
from __future__ import annotations

import asyncio
import codecs
import json
import logging
import ssl
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

from asgiref.sync import sync_to_async
from django.conf import settings

from apps.support import reply_guard, services
from apps.support.models import Message

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 16 * 1024
LM_MAX_TOKENS = 80  # the in-house model's reply length cap


class GenerationError(Exception):
    """A generator failed; the composed reply stands."""


def sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def generator_for(reply: services.Reply) -> str:
    """Which generator phrases this reply: "llm", "lm" or "" (the composed text as is).
    Hand-offs and queued messages are never generated."""
    if reply.message_id is None or reply.kind not in ("template", "kb"):
        return ""
    if settings.SUPPORT_LLM_URL and reply.context:
        return "llm"
    if getattr(settings, "SUPPORT_REPLY_GENERATOR", "") == "lm":
        return "lm"
    return ""


# -- the LLM, streamed -------------------------------------------------------------

async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str], timeout: float) -> AsyncIterator[bytes]:
    """The response body as it arrives (chunked or read to the end)."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size_line = await asyncio.wait_for(reader.readline(), timeout)
            if not size_line:
                raise GenerationError("the LLM server closed the stream mid-way")
            try:
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
            except ValueError as exc:
                raise GenerationError("bad chunk size from the LLM server") from exc
            if size == 0:
                return
            chunk = await asyncio.wait_for(reader.readexactly(size + 2), timeout)
            yield chunk[:-2]
    else:
        left = int(headers["content-length"]) if headers.get("content-length", "").isdigit() else None
        while left is None or left > 0:
            chunk = await asyncio.wait_for(reader.read(4096 if left is None else min(4096, left)), timeout)
            if not chunk:
                return
            if left is not None:
                left -= len(chunk)
            yield chunk


async def llm_tokens(question: str, context: list[str], timeout: float | None = None) -> AsyncIterator[str]:
    """Pieces of the LLM's answer as the server sends them (``stream: true``).
    The target is checked like every outbound call (apps.common.http.validate_url)."""
    from apps.common.http import OutboundError, validate_url

    timeout = timeout or services.LLM_TIMEOUT_S
    url = services.llm_endpoint()
    loop = asyncio.get_running_loop()
    try:
        scheme, host, port, ip = await loop.run_in_executor(None, validate_url, url)
    except OutboundError as exc:
        raise GenerationError(str(exc)) from exc
    parts = urlsplit(url)
    body = json.dumps(services.llm_payload(question, context, stream=True)).encode()
    request = (
        f"POST {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1\r\n"
        f"Host: {parts.netloc}\r\nUser-Agent: aigc-suite/1.0\r\nContent-Type: application/json\r\n"
        f"Accept: text/event-stream\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    tls = ssl.create_default_context() if scheme == "https" else None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(ip, port, ssl=tls, server_hostname=host if tls else None), timeout)
    except (TimeoutError, OSError) as exc:
        raise GenerationError(f"cannot reach the LLM server: {exc!r}") from exc
    produced = 0
    try:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        if len(head) > MAX_HEADER_BYTES:
            raise GenerationError("the LLM server's headers are too long")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        if status != 200:
            raise GenerationError(f"the LLM server answered {status}")
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending = ""
        finished = False  # [DONE] or a finish_reason: a stream cut short is not a whole answer
        async for chunk in _read_body(reader, headers, timeout):
            pending += decoder.decode(chunk).replace("\r\n", "\n")
            *events, pending = pending.split("\n\n")
            for event in events:
                for line in event.split("\n"):
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    try:
                        choice = json.loads(data)["choices"][0]
                        piece = (choice.get("delta") or {}).get("content") or ""
                        finished = finished or bool(choice.get("finish_reason"))
                    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
                        raise GenerationError(f"unexpected stream event from the LLM server: {data[:80]}") from exc
                    if not isinstance(piece, str):
                        raise GenerationError("the LLM server sent non-text content")
                    piece = piece[: services.MAX_MESSAGE_CHARS - produced]
                    if piece:
                        produced += len(piece)
                        yield piece
        if not finished:
            raise GenerationError("the LLM stream ended without [DONE]")
    except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError) as exc:
        raise GenerationError(f"the LLM stream broke off: {exc!r}") from exc
    finally:
        writer.close()


# -- the in-house language model ------------------------------------------------------

def lm_tokens(question: str) -> Iterator[str]:
    """Pieces of the in-house language model's reply (the one agent-assist completes
    with), one per generated token, from ``aigc_core.generation.stream``."""
    from aigc_core.generation import GenerationConfig, stream

    bot = services.load_bot()
    model = None
    if bot is not None:
        preferred = bot.ngram if bot.meta.get("assist_model") == "ngram" else bot.lm
        model = preferred or bot.lm or bot.ngram
    if model is None:
        raise GenerationError("no trained language model")
    cfg = GenerationConfig(max_new_tokens=LM_MAX_TOKENS, top_p=0.9, temperature=0.7, repetition_penalty=1.2,
                           stop=("\n",))
    try:
        yield from stream(model, question.strip() + "\n", cfg)
    except Exception as exc:  # noqa: BLE001 (a model fault of any kind: the composed reply stands)
        raise GenerationError(f"the language model failed: {exc!r}") from exc


_END = object()


async def _to_async(items: Iterator[str]) -> AsyncIterator[str]:
    """A blocking iterator stepped in a worker thread, one item at a time."""
    step = sync_to_async(lambda: next(items, _END), thread_sensitive=False)
    while (item := await step()) is not _END:
        yield item


def _from_async(items: AsyncIterator[str]) -> Iterator[str]:
    """An async iterator driven by a private event loop in this (WSGI) thread."""
    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                yield loop.run_until_complete(items.__anext__())
            except StopAsyncIteration:
                return
    finally:
        loop.run_until_complete(items.aclose())
        loop.close()


# -- one reply, as events -------------------------------------------------------------

class ReplyStream:
    """The events of one reply: start, token..., (replace), done. The drivers below
    feed it pieces; ``finish`` stores what was generated."""

    def __init__(self, reply: services.Reply, question: str, conversation_id: int):
        self.reply, self.question, self.conversation_id = reply, question, conversation_id
        self.mode = generator_for(reply)
        self.pieces: list[str] = []
        self.shown = ""  # what the visitor has been sent of the generated text
        self.failed = False
        self.blocked = False  # the guard refused the generated text: the composed reply stands

    def start(self) -> str:
        return sse("start", {"customer_message_id": self.reply.customer_message_id, "kind": self.reply.kind,
                             "generator": self.mode})

    def token(self, piece: str) -> str:
        """The event for a generated piece: only what the guard lets through so far ("" when
        nothing new may be shown). Sets ``blocked`` when the text went wrong."""
        self.pieces.append(piece)
        visible = reply_guard.streamable_prefix("".join(self.pieces))
        problems = services.generated_text_problems(visible, self.reply)
        if problems:
            self.blocked = True
            log.warning("streamed reply %s: %s generation withheld (%s)", self.reply.message_id, self.mode,
                        "; ".join(map(str, problems)))
            return ""
        new, self.shown = visible[len(self.shown):], visible
        return sse("token", {"t": new}) if new else ""

    def fail(self, exc: Exception) -> None:
        self.failed = True
        log.warning("streamed reply %s: %s generation failed, the composed reply stands: %s",
                    self.reply.message_id, self.mode, exc)

    def tokens_async(self) -> AsyncIterator[str]:
        if self.mode == "llm":
            return llm_tokens(self.question, self.reply.context)
        return _to_async(lm_tokens(self.question))

    def tokens_sync(self) -> Iterator[str]:
        if self.mode == "llm":
            return _from_async(llm_tokens(self.question, self.reply.context))
        return lm_tokens(self.question)

    def finish(self) -> list[str]:
        """Store the generated text (when it came whole) and say how the reply ends."""
        from apps.support import handoff
        from apps.support.models import Conversation
        from apps.support.widget_api import message_json

        events = []
        generated = "".join(self.pieces).strip()
        if self.mode and generated and not (self.failed or self.blocked) and services.generated_text_problems(
                generated, self.reply):  # the whole text (a bracket left open at the end)
            self.blocked = True
        if self.mode and generated and not (self.failed or self.blocked):
            if len(self.shown) < len("".join(self.pieces)):  # the tail that waited on a bracket
                events.append(sse("token", {"t": "".join(self.pieces)[len(self.shown):]}))
            Message.objects.filter(pk=self.reply.message_id).update(text=generated[: services.MAX_MESSAGE_CHARS],
                                                                    answer_kind=self.mode)
        elif self.mode and self.shown:  # broke off or refused part-way: show the composed reply instead
            events.append(sse("replace", {"t": self.reply.text}))
        elif self.reply.message_id:  # composed (or the generator gave nothing): the whole text at once
            events.append(sse("token", {"t": self.reply.text}))
        msg = (Message.objects.filter(pk=self.reply.message_id).select_related("author", "feedback").first()
               if self.reply.message_id else None)
        conv = Conversation.objects.select_related("assigned_to", "closed_by").get(pk=self.conversation_id)
        events.append(sse("done", {"message": message_json(msg) if msg else None,
                                   "handed_off": self.reply.handed_off, "kind": self.reply.kind,
                                   "ack": self.reply.text if self.reply.kind == "queued" else "",
                                   **handoff.visitor_state(conv)}))
        return events


async def events_async(rs: ReplyStream) -> AsyncIterator[str]:
    yield rs.start()
    if rs.mode:
        try:
            async for piece in rs.tokens_async():
                event = rs.token(piece)
                if rs.blocked:
                    break
                if event:
                    yield event
        except GenerationError as exc:
            rs.fail(exc)
    for event in await sync_to_async(rs.finish)():
        yield event


def events_sync(rs: ReplyStream) -> Iterator[str]:
    yield rs.start()
    if rs.mode:
        try:
            for piece in rs.tokens_sync():
                event = rs.token(piece)
                if rs.blocked:
                    break
                if event:
                    yield event
        except GenerationError as exc:
            rs.fail(exc)
    yield from rs.finish()
