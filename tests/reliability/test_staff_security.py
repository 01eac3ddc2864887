"""Abuse: staff pages, sessions, tokens and secrets.

Every staff page (walked from the URL configuration, so a page added later is
covered too) sends an anonymous visitor and a logged-in non-staff "outsider"
to the login page; every staff form refuses a POST without its CSRF token;
the API refuses a session POST without CSRF and outsiders' sessions; cookies
are Secure and HttpOnly outside debug; SECRET_KEY has no default outside the
embedded mode; no key-like secret is committed."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from tests.conftest import ROOT

# Public on purpose: auth pages, health, the API schema, the widget's endpoints
# (key + origin checked), the widget's demo host page (a public key, like any shop page)
# and the help-centre articles the widget links to as sources.
PUBLIC = re.compile(r"^/(admin/|login/|logout/|healthz|api/schema/|api/docs/|static/|\w+/api/widget/"
                    r"|support/widget-demo/|support/kb/)")
API = re.compile(r"^/(\w+/)?api/")
SAMPLE = {"int": "1", "id": "1", "str": "x", "uuid": str(uuid.uuid4()), "slug": "x", "path": "x"}


def _walk(patterns, prefix=""):
    for p in patterns:
        route = str(p.pattern)
        if isinstance(p, URLResolver):
            yield from _walk(p.url_patterns, prefix + route)
        elif isinstance(p, URLPattern):
            full = "/" + prefix + route
            if full.startswith("/^") or "(?P" in full:
                continue  # regex routes: the API status view, covered by the API tests
            yield re.sub(r"<(?:(\w+):)?\w+>", lambda m: SAMPLE[m.group(1) or "str"], full)


STAFF_PAGES = sorted({u for u in _walk(get_resolver().url_patterns) if not PUBLIC.match(u) and not API.match(u)})


def test_it_found_the_staff_pages_of_every_app():
    for app in ("/support/", "/sentiment/", "/recommend/", "/jobs/", "/tokens/"):
        assert any(u.startswith(app) for u in STAFF_PAGES), app
    assert len(STAFF_PAGES) > 30


@pytest.mark.django_db
def test_it_sends_anonymous_visitors_and_outsiders_to_the_login_page(client, outsider):
    leaks = []
    for who in ("anonymous", "outsider"):
        if who == "outsider":
            client.force_login(outsider)
        for url in STAFF_PAGES:
            for method in ("get", "post"):
                r = getattr(client, method)(url)
                if not (r.status_code == 302 and "login" in r["Location"]):
                    leaks.append(f"{who} {method.upper()} {url} -> {r.status_code}")
    assert not leaks, leaks


@pytest.mark.django_db
@pytest.mark.parametrize("url,data", [
    ("/tokens/", {"name": "x", "app": "support"}), ("/jobs/demo/", {}), ("/sentiment/train/", {}),
    ("/sentiment/rules/", {"name": "r"}), ("/support/train/", {}), ("/support/threshold/", {"threshold": "0.5"}),
    ("/recommend/train/", {}), ("/tokens/1/revoke/", {}),
])
def test_it_refuses_a_staff_form_posted_without_its_csrf_token(url, data, staff, django_capture_on_commit_callbacks):
    from apps.common.models import ApiToken, Job

    c = Client(enforce_csrf_checks=True)
    c.force_login(staff)
    with django_capture_on_commit_callbacks(execute=False):
        r = c.post(url, data)
    assert r.status_code == 403 and b"CSRF" in r.content
    assert not Job.objects.exists() and not ApiToken.objects.exists()
    page = c.get("/tokens/")
    token = page.cookies["csrftoken"].value
    with django_capture_on_commit_callbacks(execute=False):
        ok = c.post("/tokens/", {"name": "x", "app": "support", "csrfmiddlewaretoken": token})
    assert ok.status_code == 302 and ApiToken.objects.count() == 1  # the same form with its token works (then PRG)


@pytest.mark.django_db
def test_it_refuses_api_writes_from_a_session_without_csrf_and_outsider_sessions(staff, outsider):
    c = Client(enforce_csrf_checks=True)
    c.force_login(staff)
    r = c.post("/sentiment/api/news/", {"items": [{"url": "https://a.example/1", "headline": "x"}]},
               content_type="application/json")
    assert r.status_code == 403 and "CSRF" in r.json()["detail"]
    c.force_login(outsider)
    for url in ["/sentiment/api/news/", "/support/api/conversations/", "/recommend/api/model/", "/api/jobs/",
                "/api/support/status/"]:
        r = c.get(url)
        assert r.status_code == 403 and r.json()["detail"] and "results" not in r.json(), url


@pytest.mark.django_db
def test_it_never_stores_a_raw_api_token():
    from django.db import connection

    from apps.common.models import ApiToken

    _, raw = ApiToken.issue(name="t", app="support")
    with connection.cursor() as cur:
        cur.execute("SELECT * FROM common_apitoken")
        rows = cur.fetchall()
    assert raw not in repr(rows) and raw[len("aigc_"):] not in repr(rows)


def _settings_in_subprocess(env: dict[str, str], expr: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items()
            if k not in {"DATABASE_URL", "SECRET_KEY", "DEBUG", "SECURE_COOKIES", "CELERY_BROKER_URL"}}
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); from django.conf import settings as s; print({expr})"],
        cwd=ROOT, env={**base, "DJANGO_SETTINGS_MODULE": "config.settings", **env}, capture_output=True,
        text=True, timeout=60)


PG = {"DATABASE_URL": "postgres://u@127.0.0.1:5432/nowhere", "CELERY_BROKER_URL": "redis://127.0.0.1:1/0"}


@pytest.mark.parametrize("env,expected", [
    ({**PG, "SECRET_KEY": "k"}, "True True True"),
    ({**PG, "SECRET_KEY": "k", "DEBUG": "1"}, "False True False"),
    ({}, "False True False"),  # embedded: plain http on localhost
    ({"SECURE_COOKIES": "1"}, "True True True"),  # an embedded install behind HTTPS
])
def test_it_makes_cookies_secure_and_http_only_outside_debug(env, expected, tmp_path):
    p = _settings_in_subprocess({"AIGC_VAR_DIR": str(tmp_path), **env},
                                "s.SESSION_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY, s.CSRF_COOKIE_SECURE")
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.split() == expected.split()


def test_it_requires_secret_key_outside_the_embedded_mode(tmp_path):
    p = _settings_in_subprocess({"AIGC_VAR_DIR": str(tmp_path), **PG}, "len(s.SECRET_KEY)")
    assert p.returncode != 0 and "SECRET_KEY must be set" in p.stderr
    p = _settings_in_subprocess({"AIGC_VAR_DIR": str(tmp_path)}, "len(s.SECRET_KEY)")
    assert p.returncode == 0 and int(p.stdout) >= 50  # embedded: generated, kept under var/, not in the repo
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


KEY_LIKE = re.compile(
    rb"BEGIN [A-Z ]*PRIVATE KEY|AKIA[0-9A-Z]{16}|\bsk-[A-Za-z0-9]{20,}|gh[pousr]_[A-Za-z0-9]{30,}"
    rb"|whsec_[A-Za-z0-9+/=]{20,}|aigc_[A-Za-z0-9_-]{30,}|xox[abpr]-[A-Za-z0-9-]{10,}"
    rb"|SECRET_KEY\s*=\s*['\"][^'\"]{8,}['\"]|django-" rb"insecure-")


def test_it_commits_no_key_like_secrets():
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    found = []
    for name in filter(None, files):
        path = ROOT / name.decode()
        if not path.is_file() or path.stat().st_size > 5_000_000:
            continue
        data = path.read_bytes()
        if b"\0" in data[:4096]:
            continue  # binary
        for m in KEY_LIKE.finditer(data):
            found.append(f"{name.decode()}: {m.group(0)[:24]!r}")
    assert not found, found
    names = [n.decode() for n in files if n]
    assert not [n for n in names if re.search(r"(^|/)(\.env|secret_key|.*\.pem|id_rsa)$", n)]
