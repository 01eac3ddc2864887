"""The widget on a page of another origin, end to end with the staff inbox."""
import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.cache import cache

from apps.support.models import BotSettings, Conversation, Feedback, Message, WidgetKey
from tests.apps.support.conftest import bot_artifacts, trained_bot  # noqa: F401  (the tiny trained bot)

XSS = '<img src=x onerror="window.__xss=1">'


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
        "<!doctype html><html><head><title>Shop</title><style>div{color:red!important}</style></head>"
        f"<body><h1>Shop</h1><script src=\"{live_server.url}/static/support/widget.js\" "
        f"data-key=\"{key.public_key}\" defer></script></body></html>"
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"{origin}/index.html"
    server.shutdown()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("trained_bot")
def test_it_chats_streams_escapes_rates_and_reaches_an_agent(browser, page, host_page, live_server, staff):
    cache.clear()
    BotSettings.objects.update_or_create(pk=1, defaults={"threshold": 0.5})
    page.goto(host_page)
    widget = page.locator("#aigc-support-widget")
    widget.locator(".launcher").click()
    assert widget.locator(".panel.open").is_visible()

    # Count text changes inside the shadow root: a streamed reply grows word by word.
    page.evaluate("""() => {
        window.__mutations = 0;
        const root = document.getElementById('aigc-support-widget').shadowRoot;
        new MutationObserver(m => { window.__mutations += m.length; })
            .observe(root, {subtree: true, childList: true, characterData: true});
    }""")
    widget.locator("input").fill("How can I reset my password?")
    widget.locator("input").press("Enter")
    reply = widget.locator(".msg.bot[data-id]").first
    reply.wait_for()
    assert "Forgot password" in reply.locator(".text").inner_text()
    assert page.evaluate("window.__mutations") > 8

    # Rate the reply.
    reply.locator(".rate-up").click()
    widget.locator(".rate-up.chosen").wait_for()
    assert Feedback.objects.get().rating == 1

    # Hostile text is shown as text and never runs; out of scope, so it is handed off.
    widget.locator("input").fill(XSS)
    widget.locator("input").press("Enter")
    widget.locator(".msg.bot[data-id]").nth(1).wait_for()
    customer = widget.locator(".msg.customer").nth(1).locator(".text")
    assert customer.inner_text() == XSS
    assert page.evaluate("document.getElementById('aigc-support-widget').shadowRoot.querySelectorAll('img').length") == 0
    assert page.evaluate("window.__xss") is None
    conv = Conversation.objects.get()
    assert conv.status == "waiting"

    # A staff member answers from the inbox in another browser context.
    staff_ctx = browser.new_context()
    staff_page = staff_ctx.new_page()
    staff_page.goto(f"{live_server.url}/login/")
    staff_page.fill("input[name=username]", "staff")
    staff_page.fill("input[name=password]", "staff-pass-123")
    staff_page.click("button[type=submit]")
    staff_page.goto(f"{live_server.url}/support/inbox/")
    first = staff_page.locator("tr[data-conversation]").first
    assert first.get_attribute("data-status") == "waiting"
    assert XSS[:20] in first.inner_text()
    first.locator("a").first.click()
    staff_page.fill("#reply-text", "Hello from a human <b>agent</b>")
    staff_page.click("#reply-form button[type=submit]")
    staff_page.locator(".msg.agent").wait_for()
    staff_ctx.close()
    assert Message.objects.filter(role="agent").count() == 1

    # The widget polls and shows the agent's answer, as text.
    agent_msg = widget.locator(".msg.agent .text")
    agent_msg.wait_for(timeout=15_000)
    assert agent_msg.inner_text() == "Hello from a human <b>agent</b>"

    # The conversation survives a page load (visitor id and conversation in localStorage).
    page.reload()
    page.locator("#aigc-support-widget .launcher").click()
    page.locator("#aigc-support-widget .msg.agent").wait_for()
    assert page.locator("#aigc-support-widget .msg.customer").count() == 2
