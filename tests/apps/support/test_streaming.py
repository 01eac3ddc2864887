"""Widget replies stream as they are produced: from an OpenAI-compatible LLM with
stream=true (a real server on loopback that holds back its later tokens until the
test lets it go) and from the in-house language model's stream(); under WSGI
(the sync test client) and ASGI (the async test client; a real uvicorn server in
tests/apps/support/test_streaming_asgi.py)."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
from asgiref.sync import async_to_sync
from django.core.cache import cache
from django.test import AsyncClient

from apps.support import reply_guard
from apps.support.models import BotSettings, Message, WidgetKey

pytestmark = pytest.mark.django_db
ORIGIN = "https://shop.example.com"
KB_QUESTION = "Do you deliver to Canada, and how long does it take?"
PIECES = ["We ship", " to Canada", " in 7 to 12", " working days."]


class LLMServer:
    """An OpenAI-compatible /v1/chat/completions that streams PIECES as chunked SSE.
    After the first piece it waits for ``release``; ``mode`` "cut" drops the
    connection after the first piece, "error" answers 500."""

    def __init__(self):
        self.release = threading.Event()
        self.sent = 0
        self.requests: list[dict] = []
        self.mode = "ok"
        self.pieces = list(PIECES)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def chunk(self, text: str) -> None:
                data = text.encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def do_POST(self):
                outer.requests.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                if outer.mode == "error":
                    self.send_response(500)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for i, piece in enumerate(outer.pieces):
                    event = {"choices": [{"index": 0, "delta": {"content": piece},
                                          "finish_reason": "stop" if i == len(outer.pieces) - 1 else None}]}
                    outer.sent += 1  # counted before the write: the client may read it before this thread runs on
                    self.chunk(f"data: {json.dumps(event)}\n\n")
                    if i == 0:
                        if outer.mode == "cut":
                            self.wfile.flush()
                            self.connection.shutdown(2)
                            return
                        outer.release.wait(10)
                self.chunk("data: [DONE]\n\n")
                self.wfile.write(b"0\r\n\r\n")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def llm(settings):
    server = LLMServer()
    settings.SUPPORT_LLM_URL = server.url
    settings.AIGC_ALLOW_PRIVATE_URLS = True
    yield server
    server.release.set()
    server.server.shutdown()


@pytest.fixture
def widget(db):
    cache.clear()
    BotSettings.objects.update_or_create(pk=1, defaults={"threshold": 0.5})
    yield WidgetKey.objects.create(name="shop", allowed_origins=[ORIGIN], rate_limit_per_minute=50)
    cache.clear()


def parse(block: str) -> tuple[str, dict]:
    lines = block.strip().split("\n")
    return lines[0].removeprefix("event: "), json.loads(lines[1].removeprefix("data: "))


def start_conversation(client, widget) -> dict:
    r = client.post(f"/support/api/widget/{widget.public_key}/conversations/", "{}",
                    content_type="application/json", HTTP_ORIGIN=ORIGIN)
    return r.json()


def stream_args(widget, conv, text):
    return dict(path=f"/support/api/widget/{widget.public_key}/conversations/{conv['conversation_id']}/messages/",
                data=json.dumps({"text": text}), content_type="application/json",
                headers={"Origin": ORIGIN, "X-Visitor-Id": conv["visitor_id"], "Accept": "text/event-stream"})


def test_it_streams_llm_tokens_as_they_arrive_under_wsgi(client, widget, trained_bot, llm):
    conv = start_conversation(client, widget)
    resp = client.post(**stream_args(widget, conv, KB_QUESTION))
    chunks = iter(resp.streaming_content)
    assert parse(next(chunks).decode())[0] == "start"
    first = parse(next(chunks).decode())
    # The first token is in the visitor's hands while the LLM is still holding the rest back.
    assert first == ("token", {"t": "We ship"}) and llm.sent == 1 and not llm.release.is_set()
    llm.release.set()
    rest = [parse(c.decode()) for c in chunks]
    assert [e for e, _ in rest] == ["token"] * 3 + ["done"]
    done = rest[-1][1]
    assert done["message"]["text"] == "".join(PIECES) and done["message"]["kind"] == "llm"
    assert llm.requests[0]["stream"] is True and "7 to 12 working days" in llm.requests[0]["messages"][-1]["content"]
    stored = Message.objects.get(role="bot")
    assert stored.text == "".join(PIECES) and stored.answer_kind == "llm"


def test_it_streams_llm_tokens_from_the_async_view_under_asgi(client, widget, trained_bot, llm):
    conv = start_conversation(client, widget)

    async def scenario():
        resp = await AsyncClient().post(**stream_args(widget, conv, KB_QUESTION))
        assert resp["Content-Type"].startswith("text/event-stream")
        assert resp["Access-Control-Allow-Origin"] == ORIGIN
        events = aiter(resp.streaming_content)
        got = [parse((await anext(events)).decode()), parse((await anext(events)).decode())]
        assert got[1] == ("token", {"t": "We ship"}) and llm.sent == 1
        llm.release.set()
        return got + [parse(c.decode()) async for c in events]

    events = async_to_sync(scenario)()
    assert [e for e, _ in events] == ["start"] + ["token"] * 4 + ["done"]
    assert events[-1][1]["message"]["text"] == "".join(PIECES)
    assert Message.objects.get(role="bot").answer_kind == "llm"


def test_it_keeps_the_composed_reply_when_the_llm_stream_breaks_off(client, widget, trained_bot, llm):
    llm.mode = "cut"
    conv = start_conversation(client, widget)
    events = [parse(c.decode()) for c in client.post(**stream_args(widget, conv, KB_QUESTION)).streaming_content]
    names = [e for e, _ in events]
    assert names == ["start", "token", "replace", "done"]
    composed = events[2][1]["t"]
    assert "7 to 12 working days" in composed and events[-1][1]["message"]["text"] == composed
    assert Message.objects.get(role="bot").answer_kind == "kb"


def test_it_sends_the_composed_reply_when_the_llm_answers_an_error(client, widget, trained_bot, llm):
    llm.mode = "error"
    conv = start_conversation(client, widget)
    events = [parse(c.decode()) for c in client.post(**stream_args(widget, conv, KB_QUESTION)).streaming_content]
    assert [e for e, _ in events] == ["start", "token", "done"]
    assert "7 to 12 working days" in events[1][1]["t"] and events[-1][1]["message"]["kind"] == "kb"


def test_it_never_generates_a_hand_off(client, widget, trained_bot, llm):
    conv = start_conversation(client, widget)
    events = [parse(c.decode()) for c in client.post(
        **stream_args(widget, conv, "What is the boiling point of mercury in Kelvin?")).streaming_content]
    assert events[-1][1]["handed_off"] and events[-1][1]["status"] == "waiting"
    assert llm.requests == []


def test_it_streams_the_in_house_language_model_token_by_token(client, widget, trained_bot, settings):
    settings.SUPPORT_REPLY_GENERATOR = "lm"
    torch.manual_seed(0)  # the model samples: a fixed draw for the trained model at hand
    conv = start_conversation(client, widget)
    events = [parse(c.decode()) for c in client.post(
        **stream_args(widget, conv, "How can I reset my password?")).streaming_content]
    tokens = [d["t"] for e, d in events if e == "token"]
    assert events[0][1]["generator"] == "lm"
    stored = Message.objects.get(role="bot")
    assert events[-1][1]["message"]["text"] == stored.text
    # The tiny model, trained on agents' replies, samples freely: what it writes either passes
    # the reply guard whole (one event per generated token) or is withheld at the first piece
    # that claims an action or quotes a value from elsewhere, and the template replaces it.
    if stored.answer_kind == "lm":
        assert tokens and stored.text == "".join(tokens).strip()
        # A reply of several words arrives in several events, not as one block at the end.
        assert len(tokens) >= 2 or len(stored.text.split()) == 1
        assert not reply_guard.check_reply(stored.text, allowed_text="How can I reset my password?")
    else:
        assert stored.answer_kind == "template" and "Forgot password" in stored.text
        assert events[-2] in (("replace", {"t": stored.text}), ("token", {"t": stored.text}))


def test_it_acknowledges_a_message_sent_while_waiting(client, widget):
    conv = start_conversation(client, widget)
    client.post(f"/support/api/widget/{widget.public_key}/conversations/{conv['conversation_id']}/agent/", "{}",
                content_type="application/json", HTTP_ORIGIN=ORIGIN, HTTP_X_VISITOR_ID=conv["visitor_id"])
    events = [parse(c.decode()) for c in client.post(**stream_args(widget, conv, "still there?")).streaming_content]
    assert [e for e, _ in events] == ["start", "done"]
    done = events[-1][1]
    assert done["kind"] == "queued" and done["ack"].startswith("Sent to the team") and done["status"] == "waiting"
    assert Message.objects.filter(role="customer", answer_kind="queued").count() == 1
