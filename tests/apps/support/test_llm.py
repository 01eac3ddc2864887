"""SUPPORT_LLM_URL: the retrieved context goes to an OpenAI-compatible server (a real one on loopback)."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from apps.support import services
from apps.support.models import BotSettings

pytestmark = pytest.mark.django_db


@pytest.fixture
def llm_server():
    seen: list[dict] = []
    state = {"status": 200, "content": "We ship to Canada in 7 to 12 days."}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append({"path": self.path, "body": body})
            payload = json.dumps({"choices": [{"message": {"role": "assistant",
                                                           "content": state["content"]}}]})
            self.send_response(state["status"])
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(payload.encode())

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", seen, state
    server.shutdown()


@pytest.fixture(autouse=True)
def _settings(db, settings):
    BotSettings.objects.update_or_create(pk=1, defaults={"threshold": 0.5})
    settings.AIGC_ALLOW_PRIVATE_URLS = True


def test_it_sends_the_retrieved_context_to_the_llm(trained_bot, llm_server, settings):
    url, seen, _ = llm_server
    settings.SUPPORT_LLM_URL = url
    reply = services.compose_reply("Do you deliver to Canada, and how long does it take?")
    assert reply.kind == "llm" and reply.text == "We ship to Canada in 7 to 12 days."
    assert reply.sources[0]["slug"] == "shipping-abroad"  # sources still come from retrieval
    assert seen[0]["path"] == "/v1/chat/completions"
    prompt = seen[0]["body"]["messages"][-1]["content"]
    assert "7 to 12 working days" in prompt and "Canada" in prompt


def test_it_keeps_the_composed_reply_when_the_llm_fails(trained_bot, llm_server, settings):
    url, seen, state = llm_server
    state["status"] = 500
    settings.SUPPORT_LLM_URL = url
    reply = services.compose_reply("Do you deliver to Canada, and how long does it take?")
    assert reply.kind == "kb" and "7 to 12 working days" in reply.text and len(seen) == 1


def test_it_does_not_call_the_llm_for_a_hand_off(trained_bot, llm_server, settings):
    url, seen, _ = llm_server
    settings.SUPPORT_LLM_URL = url
    assert services.compose_reply("What is the boiling point of mercury in Kelvin?").handed_off
    assert seen == []


@pytest.mark.parametrize("generated", [
    "We have refunded order #123 and shipped your parcel.",
    "Call us on {{Customer Support Phone Number}} about it.",
    "Your order #40013 ships to Canada in 7 to 12 days.",
])
def test_it_never_sends_a_generated_reply_the_guard_refuses(trained_bot, llm_server, settings, generated):
    url, seen, state = llm_server
    state["content"] = generated
    settings.SUPPORT_LLM_URL = url
    reply = services.compose_reply("Do you deliver to Canada, and how long does it take?")
    assert seen and reply.kind == "kb" and reply.text != generated
    assert "7 to 12 working days" in reply.text  # the composed reply stands
