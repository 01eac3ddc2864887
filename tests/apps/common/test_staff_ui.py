"""The staff UI's shared parts: one login page, styled error pages, post/redirect/get
on /tokens/, the user's timezone and the one date format, readable job tables, and a
top bar that shows Django admin to superusers only."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from apps.common.models import ApiToken, Job, UserPreference

pytestmark = pytest.mark.django_db


def test_it_sends_anonymous_visitors_to_the_apps_own_login_page(client):
    for url in ("/", "/support/", "/sentiment/rules/", "/jobs/1/", "/admin/"):
        r = client.get(url, follow=True)
        assert r.redirect_chain[-1][0].startswith("/login/?next="), (url, r.redirect_chain)
        assert b"Staff log in" in r.content


def test_it_keeps_the_username_after_a_wrong_password(client, staff):
    r = client.post("/login/", {"username": "staff", "password": "wrong"})
    assert r.status_code == 200
    page = r.content.decode()
    assert 'value="staff"' in page and 'aria-invalid="true"' in page and "role=\"alert\"" in page
    assert 'name="password"' in page and "wrong" not in page.split('name="password"')[1].split(">")[0]


def test_it_answers_unknown_pages_with_a_styled_404_with_navigation(staff_client):
    r = staff_client.get("/no-such-page/")
    page = r.content.decode()
    assert r.status_code == 404 and "Page not found" in page
    assert 'href="/support/"' in page and 'class="topbar"' in page and "<svg" in page


def test_it_has_a_styled_500_page_that_needs_no_database():
    from django.template.loader import get_template

    html = get_template("500.html").render({})
    assert "Something went wrong" in html and "site.css" in html and 'href="/"' in html


def test_it_creates_a_token_once_and_reload_creates_nothing(staff_client):
    r = staff_client.post("/tokens/", {"name": "shop", "app": "support"})
    assert r.status_code == 302 and r["Location"] == "/tokens/"
    shown = staff_client.get("/tokens/").content.decode()
    assert 'id="new-key"' in shown and 'data-copy="#new-key"' in shown and ApiToken.objects.count() == 1
    for _ in range(3):  # reload: a GET, never the POST again
        again = staff_client.get("/tokens/").content.decode()
        assert 'id="new-key"' not in again
    assert ApiToken.objects.count() == 1


def test_it_keeps_the_token_form_values_and_shows_field_errors(staff_client):
    r = staff_client.post("/tokens/", {"name": "  ", "app": "nope"})
    page = r.content.decode()
    assert r.status_code == 400 and not ApiToken.objects.exists()
    assert 'id="token-name-error"' in page and 'id="token-app-error"' in page
    r = staff_client.post("/tokens/", {"name": "kept name", "app": "nope"})
    assert r.status_code == 400 and 'value="kept name"' in r.content.decode()


def test_it_asks_before_revoking_a_token(staff_client):
    ApiToken.issue(name="shop", app="support")
    page = staff_client.get("/tokens/").content.decode()
    assert 'data-confirm="Revoke the token shop?' in page


def test_it_shows_dates_in_the_users_timezone_in_one_format(staff_client, staff):
    Job.objects.create(kind="common.demo", created_at=datetime(2026, 12, 2, 0, 51, tzinfo=UTC))
    page = staff_client.get("/jobs/").content.decode()
    assert "2 Dec 2026, 00:51" in page and 'datetime="2026-12-02T00:51:00+00:00"' in page
    r = staff_client.post("/account/", {"timezone": "America/New_York"})
    assert r.status_code == 302 and UserPreference.objects.get(user=staff).timezone == "America/New_York"
    page = staff_client.get("/jobs/").content.decode()
    assert "1 Dec 2026, 19:51" in page and 'data-tz="America/New_York"' in page
    bad = staff_client.post("/account/", {"timezone": "Mars/Olympus"})
    assert bad.status_code == 400 and "Unknown timezone" in bad.content.decode()


def test_it_remembers_the_timezone_at_the_next_login(client, staff):
    UserPreference.objects.create(user=staff, timezone="Asia/Tokyo")
    client.post("/login/", {"username": "staff", "password": "staff-pass-123"})
    assert 'data-tz="Asia/Tokyo"' in client.get("/jobs/").content.decode()


def test_it_shows_job_parameters_and_results_as_tables(staff_client):
    job = Job.objects.create(kind="support.train", params={"epochs": 3, "data": {"pairs": 120}},
                             result={"version": 2, "metrics": {"recall@1": 0.912345}, "intents": ["a", "b"]})
    page = staff_client.get(f"/jobs/{job.pk}/").content.decode()
    assert "{&#x27;" not in page and "{'" not in page  # no raw Python dicts
    import re

    cells = re.sub(r"\s+", " ", page)
    assert '<th scope="row">epochs</th><td>3</td>' in cells
    assert '<th scope="row">recall@1</th><td>0.9123</td>' in cells and "<td>a, b</td>" in cells


def test_it_shows_django_admin_only_to_superusers(staff_client, client, owner):
    assert "Django admin" not in staff_client.get("/").content.decode()
    client.force_login(owner)
    page = client.get("/").content.decode()
    assert 'class="admin-link" href="/admin/"' in page and "Django admin" in page


def test_it_ships_no_emoji_and_no_inline_script_in_templates():
    import re

    from tests.conftest import ROOT

    emoji = re.compile("[\U0001F300-\U0001FAFF\u2600-\u27BF]")
    inline_js = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/(?:ld\+)?json\")[^>]*>|\son[a-z]+=\"",
                           re.I)
    found = []
    for path in [*ROOT.glob("templates/**/*.html"), *ROOT.glob("apps/*/templates/**/*.html"),
                 *ROOT.glob("apps/*/static/**/*.js")]:
        text = path.read_text()
        if emoji.search(text):
            found.append(f"emoji in {path.relative_to(ROOT)}")
        if path.suffix == ".html" and inline_js.search(text):
            found.append(f"inline script in {path.relative_to(ROOT)}: {inline_js.search(text).group(0)}")
    assert not found, found
