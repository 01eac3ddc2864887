"""Browser walk of every staff page (the URL list the security test walks, so a page
added later is covered too), at 1366 and 390 px wide, as a staff member with some data
on every page: no console error, no failed request, no horizontal overflow, axe-core
(from npm) finds no serious or critical violation, and any chart on the page was made
by the one chart wrapper. Public pages people land on (login, the widget demo, a 404)
are walked too."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from tests.conftest import ROOT
from tests.reliability.test_staff_security import STAFF_PAGES

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = [(1366, 900), (390, 844)]
EXTRA = ["/account/", "/support/widget-demo/", "/this-page-does-not-exist/"]

# Fragments htmx swaps into a page (no <html>) are checked inside the pages that load them.


def _seed(staff):
    """One of everything, so that /x/1/ detail pages exist and lists are not empty."""
    from apps.common.models import ApiToken, Job
    from apps.sentiment.models import Alert, AlertRule, WebhookSubscription
    from apps.support.models import AnswerTemplate, Conversation, Feedback, IntentCluster, Message, WidgetKey
    from tests.apps.sentiment.conftest import make_item

    Job.objects.create(kind="support.train", state="succeeded", progress=100, message="trained v1",
                       params={"epochs": 3, "lr": 0.0001, "data": {"pairs": 120, "intents": ["order", "refund"]}},
                       result={"version": 1, "metrics": {"recall@1": 0.91, "curve": [{"t": 0.5, "p": 0.9}]}})
    ApiToken.issue(name="shop front end", app="recommend", owner=staff)
    t0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=30)
    for h in range(0, 30, 2):
        make_item(f"Acme bond yields climb {h}", topic="credit", sentiment="negative",
                  published_at=t0 + timedelta(hours=h), tickers=["ACME"])
    rule = AlertRule.objects.create(name="Credit spike", scope="topic", key="credit")
    Alert.objects.create(rule=rule, scope="topic", key="credit", state="firing", started_at=t0 + timedelta(hours=20),
                         fired_at=t0 + timedelta(hours=20), peak_value=5, baseline=1, peak_ratio=6)
    WebhookSubscription.objects.create(url="https://hooks.example.com/aigc", description="risk desk")
    WidgetKey.objects.create(name="demo shop", allowed_origins=["http://localhost"])
    conv = Conversation.objects.create(status="waiting")
    Message.objects.create(conversation=conv, role="customer", text="Where is my order 1234?")
    bot = Message.objects.create(conversation=conv, role="bot", text="It ships today.", intent="order_status",
                                 confidence=0.42)
    Feedback.objects.create(message=bot, rating=-1)
    AnswerTemplate.objects.create(intent="order_status", text="Your order {order_id} ships within two days.",
                                  slots=["order_id"])
    IntentCluster.objects.create(name="", size=3, examples=["can I pay later", "pay in parts", "instalments"])


def _pages(client: Client) -> list[str]:
    pages = []
    for url in [*STAFF_PAGES, *EXTRA]:
        r = client.get(url)
        if r.status_code == 405 or r.status_code in (301, 302):
            continue  # POST-only actions, or redirects to a page walked anyway
        if r.status_code == 404 and url.startswith("/support/versions/"):
            # Model versions live in the artifact registry, not the database, and training one
            # here would cost minutes; their confirm pages are tested in tests/apps/support/test_deploys.py.
            continue
        if "text/html" not in r.get("Content-Type", "") or b"<html" not in r.content[:2000]:
            continue  # JSON, htmx fragments
        pages.append(url)
    return pages


AXE_RUN = """async () => {
    const r = await axe.run(document, {resultTypes: ['violations']});
    return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
        .map(v => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | ')}`);
}"""

PAGE_STATE = """() => ({
    overflow: document.documentElement.scrollWidth - window.innerWidth,
    widest: Array.from(document.querySelectorAll('body *')).filter(e => e.getBoundingClientRect().right >
        window.innerWidth + 1).slice(0, 3).map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
        (e.className && typeof e.className === 'string' ? '.' + e.className.split(' ')[0] : '')),
    unwrapped: window.Chart ? Object.values(Chart.instances).filter(c => !c.$aigc).map(c => c.canvas.id) : [],
})"""


def _walk_at(browser, base: str, pages: list[str], width: int, height: int, axe: str) -> list[str]:
    from tests.e2e.conftest import _CSP_WATCH

    ctx = browser.new_context(viewport={"width": width, "height": height})
    ctx.add_init_script(_CSP_WATCH)  # a CSP violation is a console error, so a problem here too
    page = ctx.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    problems: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: errors.append(f"js: {e}"))
    # ERR_ABORTED: a request the browser itself dropped when the test navigated on (favicon, a poll).
    page.on("requestfailed", lambda r: "ERR_ABORTED" not in (r.failure or "")
            and errors.append(f"failed: {r.url} {r.failure}"))
    page.on("response", lambda r: r.status >= 400 and errors.append(f"HTTP {r.status}: {r.url}"))

    def check(url: str) -> None:
        where = f"{url} @{width}px"
        if url == "/this-page-does-not-exist/":  # the 404 itself is expected; nothing else may fail
            errors[:] = [e for e in errors if not e.endswith(url) and "status of 404" not in e]
        page.wait_for_timeout(150)
        state = page.evaluate(PAGE_STATE)
        page.evaluate(axe)  # through the DevTools protocol: a page's CSP does not block it
        problems.extend(f"{where} {e}" for e in errors)
        if state["overflow"] > 0:
            problems.append(f"{where} overflows by {state['overflow']} px: {state['widest']}")
        problems.extend(f"{where} axe {v}" for v in page.evaluate(AXE_RUN))
        if state["unwrapped"]:
            problems.append(f"{where} charts not made by common/charts.js: {state['unwrapped']}")
        errors.clear()

    page.goto(f"{base}/login/", wait_until="networkidle")
    check("/login/")
    page.fill("input[name=username]", "staff")
    page.fill("input[name=password]", "staff-pass-123")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    errors.clear()
    for url in pages:
        page.goto(f"{base}{url}", wait_until="networkidle")
        check(url)
    ctx.close()
    return problems


@pytest.mark.browser
@pytest.mark.django_db(transaction=True, reset_sequences=True)
def test_every_staff_page_is_clean_at_desktop_and_phone_width(browser, live_server, staff):
    _seed(staff)
    client = Client()
    client.force_login(staff)
    pages = _pages(client)
    assert len(pages) >= 15, pages
    for must in ("/", "/support/", "/sentiment/", "/recommend/", "/jobs/", "/jobs/1/", "/tokens/", "/support/inbox/"):
        assert must in pages, must
    axe = AXE.read_text()
    problems = [p for w, h in WIDTHS for p in _walk_at(browser, live_server.url, pages, w, h, axe)]
    assert not problems, "\n".join(problems)
