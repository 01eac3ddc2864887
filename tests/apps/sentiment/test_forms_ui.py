"""Staff forms of the sentiment app: a refused webhook form keeps what was typed and
says why by the field; a created subscription's secret is shown once after a redirect
(reload creates nothing); company keys that match nothing are refused, not saved."""
from __future__ import annotations

import pytest

from apps.sentiment.models import AlertRule, Company, WebhookSubscription

pytestmark = pytest.mark.django_db

RULE = {"name": "Acme drop", "scope": "company", "key": "NOPE", "metric": "negative_share", "window": "1d",
        "direction": "high", "ratio": 2, "history_days": 10, "quantile": 0.99, "rearm_hours": 24, "growth": 2,
        "min_volume": 3, "enabled": "on"}


def test_a_refused_webhook_form_keeps_its_values(staff_client, settings):
    settings.AIGC_ALLOW_PRIVATE_URLS = False
    r = staff_client.post("/sentiment/webhooks/", {
        "url": "http://10.0.0.5/hook", "description": "risk desk pager", "event_types": ["alert.firing"],
        "scopes": "topic:credit"})
    page = r.content.decode()
    assert r.status_code == 400 and not WebhookSubscription.objects.exists()
    assert 'value="http://10.0.0.5/hook"' in page and 'value="risk desk pager"' in page
    assert 'value="topic:credit"' in page and 'value="alert.firing" checked' in page
    assert 'id="wh-url-error"' in page and "private" in page and 'aria-invalid="true"' in page


def test_it_refuses_webhook_scopes_naming_unknown_companies(staff_client, settings):
    settings.AIGC_ALLOW_PRIVATE_URLS = True
    Company.objects.create(ticker="ACME", name="Acme Corp")
    r = staff_client.post("/sentiment/webhooks/", {"url": "http://127.0.0.1:9/hook", "scopes": "company:GLOBEX"})
    page = r.content.decode()
    assert r.status_code == 400 and 'id="wh-scopes-error"' in page and "GLOBEX" in page and "ACME" in page
    assert not WebhookSubscription.objects.exists()
    ok = staff_client.post("/sentiment/webhooks/", {"url": "http://127.0.0.1:9/hook", "scopes": "company:acme"})
    assert ok.status_code == 302 and WebhookSubscription.objects.get().scopes == ["company:ACME"]


def test_it_shows_the_new_secret_once_and_reload_creates_nothing(staff_client, settings):
    settings.AIGC_ALLOW_PRIVATE_URLS = True
    r = staff_client.post("/sentiment/webhooks/", {"url": "http://127.0.0.1:9/hook"})
    assert r.status_code == 302 and r["Location"] == "/sentiment/webhooks/"
    sub = WebhookSubscription.objects.get()
    page = staff_client.get("/sentiment/webhooks/").content.decode()
    assert sub.secret in page and 'data-copy="#new-secret"' in page
    again = staff_client.get("/sentiment/webhooks/").content.decode()
    assert sub.secret not in again and WebhookSubscription.objects.count() == 1


def test_it_refuses_a_rule_on_a_company_that_matches_nothing(staff_client):
    Company.objects.create(ticker="ACME", name="Acme Corp")
    r = staff_client.post("/sentiment/rules/", RULE)
    assert r.status_code == 200 and not AlertRule.objects.exists()
    page = r.content.decode()
    assert "no company NOPE is known" in page and "ACME" in page and 'value="Acme drop"' in page
    r = staff_client.post("/sentiment/rules/", {**RULE, "key": "$acme"})
    assert r.status_code == 302 and AlertRule.objects.get().key == "ACME"


def test_it_asks_before_deleting_a_rule(staff_client):
    AlertRule.objects.create(name="Credit spike", scope="topic", key="credit")
    page = staff_client.get("/sentiment/rules/").content.decode()
    assert 'data-confirm="Delete the rule Credit spike and its alerts?"' in page and "onsubmit" not in page
