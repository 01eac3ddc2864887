"""The streamed reply under a real ASGI server (uvicorn, as production runs it):
the first token reaches the visitor while the LLM still holds the rest back, and
while several streams wait on the LLM the server goes on answering others.
(Under ASGI Django would buffer a plain generator whole; the async view's async
generator is what makes the stream flow here.)"""
from __future__ import annotations

import http.client
import json
import threading
import time

import pytest
import uvicorn
from django.core.cache import cache

from apps.support.models import BotSettings, Message, WidgetKey
from tests.apps.support.test_streaming import KB_QUESTION, PIECES, LLMServer

pytestmark = pytest.mark.django_db(transaction=True)
ORIGIN = "https://shop.example.com"
OPEN_STREAMS = 8


@pytest.fixture
def asgi_server():
    from config.asgi import application

    server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=0, lifespan="off",
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield port
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def llm(settings):
    server = LLMServer()
    settings.SUPPORT_LLM_URL = server.url
    settings.AIGC_ALLOW_PRIVATE_URLS = True
    yield server
    server.release.set()
    server.server.shutdown()


def call(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers={"Origin": ORIGIN, "Content-Type": "application/json", **(headers or {})})
    return conn, conn.getresponse()


def read_event(resp) -> tuple[str, dict]:
    lines = []
    while True:
        line = resp.readline().decode()
        assert line, "the stream ended early"
        if line == "\n":
            break
        lines.append(line.rstrip("\n"))
    return lines[0].removeprefix("event: "), json.loads(lines[1].removeprefix("data: "))


def test_it_streams_under_uvicorn_and_keeps_serving_while_streams_wait(asgi_server, trained_bot, llm):
    cache.clear()
    BotSettings.objects.update_or_create(pk=1, defaults={"threshold": 0.5})
    key = WidgetKey.objects.create(name="asgi", allowed_origins=[ORIGIN], rate_limit_per_minute=100,
                                   ip_rate_limit_per_minute=1000)
    base = f"/support/api/widget/{key.public_key}"
    streams = []
    for _ in range(OPEN_STREAMS):
        conn, resp = call(asgi_server, "POST", f"{base}/conversations/", {})
        conv = json.loads(resp.read())
        conn.close()
        conn, resp = call(asgi_server, "POST", f"{base}/conversations/{conv['conversation_id']}/messages/",
                          {"text": KB_QUESTION},
                          {"X-Visitor-Id": conv["visitor_id"], "Accept": "text/event-stream"})
        assert resp.status == 200 and resp.getheader("Content-Type").startswith("text/event-stream")
        assert read_event(resp)[0] == "start"
        # The first token is here although the LLM has not sent the rest (it waits for release).
        assert read_event(resp) == ("token", {"t": PIECES[0]})
        streams.append((conn, resp))
    assert llm.sent == OPEN_STREAMS and not llm.release.is_set()

    # Every stream is open and waiting on the LLM; the server still answers at once.
    t0 = time.monotonic()
    for _ in range(5):
        conn, resp = call(asgi_server, "GET", f"{base}/config/")
        assert resp.status == 200 and json.loads(resp.read())["title"]
        conn.close()
    assert time.monotonic() - t0 < 5

    llm.release.set()
    for conn, resp in streams:
        events = [read_event(resp) for _ in range(len(PIECES))]
        assert [e for e, _ in events] == ["token"] * (len(PIECES) - 1) + ["done"]
        assert events[-1][1]["message"]["text"] == "".join(PIECES)
        conn.close()
    assert Message.objects.filter(role="bot", answer_kind="llm").count() == OPEN_STREAMS
