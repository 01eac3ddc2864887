"""What the suite sends with every answer: a Content-Security-Policy on every
page (staff pages walked from the URL configuration, the API, the widget and
its demo page, Swagger UI, static files), no inline script a CSP would block,
and a deployment check (`manage.py check --deploy`) that is clean with the
production settings. The browser side (no CSP violation reported by chromium
on any page) is tests/e2e/test_csp_walk.py and every other browser test."""
from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.reliability.test_staff_security import STAFF_PAGES

ORIGIN = "https://shop.example.com"
SCRIPT_TAG = re.compile(r"<script\b([^>]*)>", re.I)


def _csp(resp) -> dict[str, str]:
    header = resp.headers.get("Content-Security-Policy", "")
    return {d.split()[0]: d for d in (p.strip() for p in header.split(";")) if d}


def _assert_strict(resp, where: str) -> None:
    policy = _csp(resp)
    assert policy, f"no Content-Security-Policy on {where}"
    script = policy.get("script-src", "")
    assert "'self'" in script and "'unsafe-inline'" not in script and "'unsafe-eval'" not in script, where
    assert policy.get("object-src") == "object-src 'none'" and policy.get("frame-ancestors") == "frame-ancestors 'none'"


@pytest.fixture
def pages(db, staff_client):
    from apps.sentiment.models import AlertRule, WebhookSubscription
    from apps.support.models import Conversation, WidgetKey

    widget = WidgetKey.objects.create(name="shop", allowed_origins=[ORIGIN])
    # row 1 of each, so the detail pages in the walk render instead of 404
    Conversation.objects.create(widget=widget)
    AlertRule.objects.create(name="credit", scope="topic", key="credit")
    WebhookSubscription.objects.create(url="https://hooks.example.com/x")
    return widget


def test_every_staff_page_sends_a_strict_csp_and_has_no_inline_script(pages, staff_client):
    rendered = 0
    for url in STAFF_PAGES:
        r = staff_client.get(url)
        _assert_strict(r, url)
        if r.status_code == 200 and "text/html" in r.get("Content-Type", ""):
            rendered += 1
            for attrs in SCRIPT_TAG.findall(r.content.decode()):
                assert "src=" in attrs or 'type="application/json"' in attrs or "nonce=" in attrs, (url, attrs)
    assert rendered > 15


@pytest.mark.parametrize("url", ["/login/", "/api/docs/", "/api/schema/", "/healthz", "/admin/login/",
                                 "/static/support/widget.js", "/sentiment/api/news/", "/nowhere/"])
def test_public_pages_api_and_static_files_send_the_csp_too(client, db, url):
    _assert_strict(client.get(url), url)


def test_swagger_ui_has_no_inline_script(client, db):
    html = client.get("/api/docs/").content.decode()
    assert "SwaggerUIBundle" not in html  # started from a script file (the split view)
    for attrs in SCRIPT_TAG.findall(html):
        assert "src=" in attrs


def test_the_widget_and_its_demo_page_send_the_csp(client, pages):
    _assert_strict(client.get(f"/support/api/widget/{pages.public_key}/config/", HTTP_ORIGIN=ORIGIN), "widget")
    _assert_strict(client.get("/support/widget-demo/"), "widget demo")


def test_other_security_headers(client, db):
    r = client.get("/login/")
    assert r["X-Frame-Options"] == "DENY" and r["X-Content-Type-Options"] == "nosniff"
    assert r["Referrer-Policy"] == "same-origin" and r["Cross-Origin-Opener-Policy"] == "same-origin"


def test_manage_py_check_deploy_is_clean_with_production_settings(tmp_path):
    env = {**os.environ, "DATABASE_URL": "postgres://aigc@db.invalid:5432/aigc", "SECRET_KEY": secrets.token_urlsafe(60),
           "ALLOWED_HOSTS": "aigc.example.com", "AIGC_HTTPS": "1", "AIGC_TRUSTED_PROXIES": "10.0.0.1",
           "DEBUG": "0", "AIGC_VAR_DIR": str(tmp_path), "CELERY_BROKER_URL": "redis://redis.invalid:6379/0"}
    env.pop("SECURE_COOKIES", None)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # set by the browser tests for their own process only
    proc = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no issues (0 silenced)" in proc.stdout


def test_https_mode_redirects_and_sends_hsts(tmp_path):
    """The same settings module under AIGC_HTTPS=1, in a subprocess (settings are read once)."""
    code = ("import django; django.setup(); from django.conf import settings as s; "
            "print(s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
            "s.SECURE_PROXY_SSL_HEADER)")
    env = {**os.environ, "AIGC_HTTPS": "1", "AIGC_TRUSTED_PROXIES": "10.0.0.1", "AIGC_VAR_DIR": str(tmp_path),
           "DJANGO_SETTINGS_MODULE": "config.settings"}
    env.pop("DATABASE_URL", None)
    env.pop("SECURE_COOKIES", None)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # set by the browser tests for their own process only
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120).stdout.strip().splitlines()[-1]
    assert out == "True 31536000 True True ('HTTP_X_FORWARDED_PROTO', 'https')", out
