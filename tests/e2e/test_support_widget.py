"""The support widget in Debian chromium: on the server's own demo page (same origin:
Chromium sends no Origin on its GETs) and on another site's page, on a desktop and
a 390 px phone; the hand-off seen from both sides (waiting with the expected wait,
messages acknowledged, the agent's name, the close and the visitor's rating);
replies streamed from an LLM as it produces them."""
import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.cache import cache

from apps.support import handoff
from apps.support.models import BotSettings, Conversation, Feedback, Message, WidgetKey
from tests.apps.support.conftest import bot_artifacts, trained_bot  # noqa: F401  (the tiny trained bot)
from tests.apps.support.test_streaming import KB_QUESTION, PIECES, LLMServer
from tests.e2e.conftest import _CSP_WATCH

XSS = '<img src=x onerror="window.__xss=1">'
PHONE = {"width": 390, "height": 844}
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("trained_bot")]


@pytest.fixture(autouse=True)
def _fresh(db):
    cache.clear()
    BotSettings.objects.update_or_create(pk=1, defaults={"threshold": 0.5})
    yield
    cache.clear()


@pytest.fixture
def host_page(tmp_path, live_server):
    """A shop page on its own loopback origin that embeds the widget from the live server."""
    key = WidgetKey.objects.create(name="e2e", allowed_origins=[], rate_limit_per_minute=50)

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    origin = f"http://127.0.0.1:{server.server_port}"
    key.allowed_origins = [origin]
    key.save()
    (tmp_path / "index.html").write_text(
        "<!doctype html><html><head><meta name=viewport content='width=device-width, initial-scale=1'>"
        "<title>Shop</title><style>div{color:red!important}</style></head>"
        f"<body><h1>Shop</h1><script src=\"{live_server.url}/static/support/widget.js\" "
        f"data-key=\"{key.public_key}\" defer></script></body></html>"
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"{origin}/index.html"
    server.shutdown()


@pytest.fixture
def demo_key(db):
    """The demo key with no allowed sites at all: only same-origin use can work."""
    return WidgetKey.objects.create(name="demo", allowed_origins=[], rate_limit_per_minute=50)


@pytest.fixture
def phone(browser):
    """A 390 px phone (touch, mobile viewport), watched for CSP violations like ``page``."""
    ctx = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=3)
    ctx.add_init_script(_CSP_WATCH)
    pg = ctx.new_page()
    pg.set_default_timeout(30_000)
    violations: list[str] = []
    pg.on("console", lambda m: violations.append(m.text) if "CSP violation" in m.text else None)
    yield pg
    ctx.close()
    assert not violations, f"the page reported CSP violations: {violations[:5]}"


def widget_of(page):
    return page.locator("#aigc-support-widget")


def say(widget, text):
    widget.locator("form.compose input").fill(text)
    widget.locator("form.compose input").press("Enter")


def open_chat(page):
    w = widget_of(page)
    w.locator(".launcher").click()
    w.locator(".panel.open").wait_for()
    w.locator(".msg.greeting").wait_for()
    return w


def test_it_works_on_its_own_demo_page_through_a_whole_hand_off(page, live_server, demo_key, staff):
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
    page.goto(f"{live_server.url}/support/widget-demo/")
    w = open_chat(page)
    assert "Ask me anything" in w.locator(".msg.greeting").inner_text()

    say(w, "How can I reset my password?")
    reply = w.locator(".msg.bot[data-id]").first
    reply.wait_for()
    assert "Forgot password" in reply.locator(".text").inner_text()
    conv = Conversation.objects.get()
    assert conv.page_url == f"{live_server.url}/support/widget-demo/" and conv.origin == live_server.url

    # Reload: the conversation comes back from the server (GETs without an Origin header).
    page.reload()
    w = widget_of(page)
    w.locator(".panel.open").wait_for()  # it stays open across the load
    w.locator(".msg.bot[data-id]").first.wait_for()
    assert w.locator(".msg.customer").count() == 1 and "Forgot password" in w.locator(".msg.bot[data-id]").first.inner_text()

    # Ask for a person: different wording from "not sure", a visible waiting state with the wait.
    w.locator("button.human").click()
    w.locator(".banner.waiting").wait_for()
    assert handoff.VISITOR_ASKED_TEXT in w.locator(".msg.bot").last.inner_text()
    assert "Waiting for a person" in w.locator(".banner").inner_text()
    assert "reply here as soon as they can" in w.locator(".banner .wait").inner_text()
    assert not w.locator("button.human").is_visible()

    # A message while waiting is acknowledged and goes to the inbox; the bot stays quiet.
    say(w, "My order number is 55123")
    w.locator(".msg.customer .ack").wait_for()
    assert "Sent to the team" in w.locator(".msg.customer .ack").inner_text()
    assert Message.objects.filter(role="customer", answer_kind="queued", text="My order number is 55123").exists()

    # The agent answers from the inbox (another browser session); the visitor sees the name.
    staff.first_name = "Priya"
    staff.save()
    staff_ctx = page.context.browser.new_context()
    sp = staff_ctx.new_page()
    sp.goto(f"{live_server.url}/login/")
    sp.fill("input[name=username]", "staff")
    sp.fill("input[name=password]", "staff-pass-123")
    sp.click("button[type=submit]")
    sp.goto(f"{live_server.url}/support/inbox/?status=open")
    row = sp.locator(f"tr[data-conversation='{conv.pk}']")
    assert row.get_attribute("data-status") == "waiting"
    assert "/support/widget-demo/" in row.inner_text() and "asked for a person" in row.inner_text()
    row.locator("a").first.click()
    assert "the visitor asked for a person" in sp.locator(".conv-facts").inner_text()
    sp.fill("#reply-text", "Hi, I'm looking at order 55123 now.")
    sp.click("#reply-form button[type=submit]")
    sp.locator(".msg.agent").wait_for()

    agent = w.locator(".msg.agent")
    agent.wait_for(timeout=15_000)
    assert agent.locator(".who").inner_text() == "Priya"
    assert agent.locator(".text").inner_text() == "Hi, I'm looking at order 55123 now."
    w.locator(".banner.agent").wait_for()
    assert "chatting with Priya" in w.locator(".banner").inner_text()

    # The agent resolves it; the visitor sees the close and rates the conversation.
    sp.click("#close-form button[type=submit]")
    sp.wait_for_url(f"{live_server.url}/support/inbox/")
    w.locator(".banner.closed").wait_for(timeout=15_000)
    assert "closed by Priya" in w.locator(".closed-note").inner_text()
    w.locator(".csat .score[data-score='4']").click()
    w.locator(".csat textarea").fill("Quick and kind")
    w.locator(".csat .send-rating").click()
    w.locator(".csat-done").wait_for()
    conv.refresh_from_db()
    assert (conv.status, conv.csat_rating, conv.csat_comment) == ("closed", 4, "Quick and kind")
    sp.goto(f"{live_server.url}/support/inbox/?status=resolved")
    assert "4/5" in sp.locator(f"tr[data-conversation='{conv.pk}']").inner_text()
    staff_ctx.close()
    # Nothing raw reached the visitor, and the widget logged no failure.
    assert not w.locator(".error.on").count() and not [e for e in errors if "support widget" in e]


def test_it_works_on_a_phone_on_another_site(phone, host_page, live_server, staff):
    phone.goto(host_page)
    w = open_chat(phone)
    box = w.locator(".panel").bounding_box()
    assert box["width"] == PHONE["width"] and box["height"] == PHONE["height"]  # full screen on a phone
    say(w, "Where is my order 77123? I'm Zoe")
    reply = w.locator(".msg.bot[data-id]").first
    reply.wait_for()
    # The bot cannot know an order's status: it says so, naming only the visitor's own order, and waits.
    assert "#77123" in reply.inner_text() and "can't look up or change orders" in reply.inner_text()
    assert "shipped" not in reply.inner_text()
    w.locator(".banner.waiting").wait_for()
    conv = Conversation.objects.get()
    assert conv.handoff_reason == "bot" and conv.origin == host_page.rsplit("/", 1)[0]
    handoff.agent_reply(conv, "Hello Zoe, a person here.", staff)
    agent = w.locator(".msg.agent")
    agent.wait_for(timeout=15_000)
    assert agent.locator(".who").inner_text() == "staff" and "a person here" in agent.inner_text()
    # The close button of the full-screen panel brings the launcher back.
    w.locator("button.close").click()
    w.locator(".launcher").wait_for()
    assert not w.locator(".panel.open").count()


def test_it_shows_its_own_demo_page_on_a_phone(phone, live_server, demo_key):
    phone.goto(f"{live_server.url}/support/widget-demo/")
    w = open_chat(phone)
    say(w, "I forgot my password")
    w.locator(".msg.bot[data-id]").first.wait_for()
    assert "Forgot password" in w.locator(".msg.bot[data-id]").first.inner_text()
    assert w.locator("form.compose").bounding_box()["width"] == PHONE["width"]


def test_it_chats_escapes_rates_and_reaches_an_agent_across_origins(browser, page, host_page, live_server, staff):
    page.goto(host_page)
    w = open_chat(page)
    say(w, "How can I reset my password?")
    reply = w.locator(".msg.bot[data-id]").first
    reply.wait_for()
    assert "Forgot password" in reply.locator(".text").inner_text()

    reply.locator(".rate-up").click()
    w.locator(".rate-up.chosen").wait_for()
    assert Feedback.objects.get().rating == 1

    # Hostile text is shown as text and never runs; out of scope, so it is handed off.
    say(w, XSS)
    w.locator(".msg.bot[data-id]").nth(1).wait_for()
    customer = w.locator(".msg.customer").nth(1).locator(".text")
    assert customer.inner_text() == XSS
    assert page.evaluate("document.getElementById('aigc-support-widget').shadowRoot.querySelectorAll('img').length") == 0
    assert page.evaluate("window.__xss") is None
    conv = Conversation.objects.get()
    assert conv.status == "waiting"

    staff_ctx = browser.new_context()
    sp = staff_ctx.new_page()
    sp.goto(f"{live_server.url}/login/")
    sp.fill("input[name=username]", "staff")
    sp.fill("input[name=password]", "staff-pass-123")
    sp.click("button[type=submit]")
    sp.goto(f"{live_server.url}/support/inbox/")
    first = sp.locator("tr[data-conversation]").first
    assert first.get_attribute("data-status") == "waiting"
    assert XSS[:20] in first.inner_text()
    first.locator("a").first.click()
    sp.fill("#reply-text", "Hello from a human <b>agent</b>")
    sp.click("#reply-form button[type=submit]")
    sp.locator(".msg.agent").wait_for()
    assert sp.locator("#reply-text").input_value() == ""  # the box clears after sending
    staff_ctx.close()

    agent_msg = w.locator(".msg.agent .text")
    agent_msg.wait_for(timeout=15_000)
    assert agent_msg.inner_text() == "Hello from a human <b>agent</b>"

    page.reload()
    page.locator("#aigc-support-widget .msg.agent").wait_for()
    assert page.locator("#aigc-support-widget .msg.customer").count() == 2


def test_it_shows_llm_tokens_as_they_are_produced(page, host_page, settings):
    llm = LLMServer()
    settings.SUPPORT_LLM_URL = llm.url
    settings.AIGC_ALLOW_PRIVATE_URLS = True
    try:
        page.goto(host_page)
        w = open_chat(page)
        say(w, KB_QUESTION)
        text = w.locator(".msg.bot:not(.greeting) .text").first
        # The first piece is on screen while the LLM still holds back the rest.
        page.wait_for_function(
            "() => { const r = document.getElementById('aigc-support-widget').shadowRoot;"
            " const t = r.querySelector('.msg.bot:not(.greeting) .text'); return t && t.textContent === 'We ship'; }")
        assert llm.sent == 1 and not w.locator(".msg.bot[data-id]:not(.greeting)").count()
        llm.release.set()
        w.locator(".msg.bot[data-id]").first.wait_for()
        assert text.inner_text() == "".join(PIECES)
        assert Message.objects.get(role="bot").answer_kind == "llm"
    finally:
        llm.release.set()
        llm.server.shutdown()


def test_a_visitor_reads_plain_words_when_the_key_is_refused(page, live_server, tmp_path):
    """A key that does not allow the page's site: the visitor gets a sentence, the console the detail."""
    key = WidgetKey.objects.create(name="elsewhere", allowed_origins=["https://not-this-site.example"])

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    (tmp_path / "index.html").write_text(
        f"<!doctype html><body><script src=\"{live_server.url}/static/support/widget.js\" "
        f"data-key=\"{key.public_key}\" defer></script></body>")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    warnings = []
    page.on("console", lambda m: warnings.append(m.text))
    try:
        page.goto(f"http://127.0.0.1:{server.server_port}/index.html")
        w = widget_of(page)
        w.locator(".launcher").click()
        w.locator(".error.on").wait_for()
        shown = w.locator(".error").inner_text()
        assert shown in ("We can't reach support right now. Please try again in a moment.",
                         "Chat is not available on this page right now.")
        assert "Origin" not in shown and "CORS" not in shown
        assert any("[support widget]" in m for m in warnings)
    finally:
        server.shutdown()
