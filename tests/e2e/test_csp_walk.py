"""Browser: every staff page, Swagger UI, the admin and the widget's demo page load in
chromium under the Content-Security-Policy with no violation reported (the ``page``
fixture fails a test on any CSP report or console message about one)."""
from __future__ import annotations

import pytest
from django.test import Client

from tests.reliability.test_staff_security import STAFF_PAGES


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_no_page_reports_a_csp_violation(staff_page, live_server, staff):
    from apps.sentiment.models import AlertRule, WebhookSubscription
    from apps.support.models import Conversation, WidgetKey

    widget = WidgetKey.objects.create(name="demo", allowed_origins=[live_server.url])
    Conversation.objects.create(widget=widget)
    AlertRule.objects.create(name="credit", scope="topic", key="credit")
    WebhookSubscription.objects.create(url="https://hooks.example.com/x")
    staff.is_superuser = True
    staff.save()
    probe = Client()
    probe.force_login(staff)
    pages = [u for u in [*STAFF_PAGES, "/api/docs/", "/admin/", "/support/widget-demo/"]
             if (r := probe.get(u)).status_code == 200 and "text/html" in r.get("Content-Type", "")
             and b"<html" in r.content.lower()]  # whole pages, not htmx fragments or POST-only actions
    must = {"/support/", "/support/inbox/", "/sentiment/", "/sentiment/webhooks/", "/recommend/", "/jobs/",
            "/tokens/", "/api/docs/", "/admin/", "/support/widget-demo/"}
    assert must <= set(pages), sorted(must - set(pages))
    for url in pages:
        staff_page.goto(f"{live_server.url}{url}", wait_until="load")
        assert staff_page.evaluate("() => (window.__cspViolations || []).length") == 0, url
    staff_page.goto(f"{live_server.url}/api/docs/")
    staff_page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)  # the UI started and read the schema
    # The watch itself works: an injected inline script is blocked and reported.
    staff_page.evaluate("""() => { const s = document.createElement('script');
        s.textContent = 'window.__ran = 1'; document.body.appendChild(s); }""")
    staff_page.wait_for_function("() => (window.__cspViolations || []).length > 0")
    assert staff_page.evaluate("() => window.__ran") is None
    assert any("script-src" in v for v in staff_page.csp_violations)
    staff_page.csp_violations.clear()
