"""Browser tests: Debian chromium driven by Playwright (never `playwright install`)."""
from __future__ import annotations

import os
import shutil

import pytest

# Playwright's sync API runs an event loop in this thread; the ORM calls the
# tests make around it are still plain synchronous code.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    exe = shutil.which("chromium")
    if exe is None:
        pytest.fail("Debian chromium is not installed (scripts/test.sh installs it)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


# Records every Content-Security-Policy violation a page reports (the event fires for blocked
# scripts, eval, inline handlers and styles alike), so each browser test also proves the CSP holds.
_CSP_WATCH = """document.addEventListener('securitypolicyviolation', e => {
  (window.__cspViolations = window.__cspViolations || []).push(e.violatedDirective + ' ' + e.blockedURI);
  console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI);
});"""


@pytest.fixture
def page(browser):
    ctx = browser.new_context()
    ctx.add_init_script(_CSP_WATCH)
    pg = ctx.new_page()
    pg.set_default_timeout(30_000)
    violations: list[str] = []
    pg.on("console", lambda m: violations.append(m.text) if (
        "Content Security Policy" in m.text or "CSP violation" in m.text) else None)
    yield pg
    ctx.close()
    assert not violations, f"the page reported CSP violations: {violations[:5]}"


@pytest.fixture
def staff_page(page, live_server, staff):
    """A browser page logged in as the staff persona."""
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", "staff")
    page.fill("input[name=password]", "staff-pass-123")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    return page
