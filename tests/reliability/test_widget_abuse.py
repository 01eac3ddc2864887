"""Abuse of the public widget endpoints beyond what tests/apps/support covers:
a key used from a page it was not issued for, per-IP limits that say when to
come back, and a visitor reaching into another visitor's conversation.
(Hostile HTML shown as text: tests/e2e/test_support_widget.py in a real browser;
per-visitor limits: tests/apps/support/test_widget_api.py.)"""
from __future__ import annotations

import json

import pytest
from django.core.cache import cache

from apps.support.models import Conversation, WidgetKey

ORIGIN = "https://shop.example.com"


@pytest.fixture
def widget(db):
    cache.clear()
    yield WidgetKey.objects.create(name="shop", allowed_origins=[ORIGIN], rate_limit_per_minute=50,
                                   ip_rate_limit_per_minute=4)
    cache.clear()


def url(widget, path):
    return f"/support/api/widget/{widget.public_key}/{path}"


@pytest.mark.parametrize("origin", ["https://evil.example", "https://shop.example.com.evil.example",
                                    "http://shop.example.com", "null", ""])
def test_it_refuses_a_key_used_from_another_origin(client, widget, origin):
    headers = {"HTTP_ORIGIN": origin} if origin else {}
    for method, path in [("options", "conversations/"), ("post", "conversations/"), ("get", "config/")]:
        kw = {} if method == "get" else {"data": "{}", "content_type": "application/json"}
        r = getattr(client, method)(url(widget, path), **kw, **headers)
        assert r.status_code == 403 and "not allowed" in r.json()["detail"]
        assert "Access-Control-Allow-Origin" not in r  # the hostile page cannot even read the refusal
    assert not Conversation.objects.exists()


def test_it_limits_each_ip_with_retry_after_and_keeps_others_going(client, widget):
    codes = [client.get(url(widget, "config/"), HTTP_ORIGIN=ORIGIN).status_code for _ in range(5)]
    assert codes == [200] * 4 + [429]
    r = client.get(url(widget, "config/"), HTTP_ORIGIN=ORIGIN)
    assert r.status_code == 429 and 1 <= int(r["Retry-After"]) <= 61 and r.json()["detail"]
    assert r["Access-Control-Allow-Origin"] == ORIGIN
    other = client.get(url(widget, "config/"), HTTP_ORIGIN=ORIGIN, REMOTE_ADDR="10.9.8.7")
    assert other.status_code == 200


def test_it_keeps_one_visitor_out_of_anothers_conversation(client, widget):
    r = client.post(url(widget, "conversations/"), "{}", content_type="application/json", HTTP_ORIGIN=ORIGIN)
    conv = r.json()
    for visitor in ["", "v_someone_else_123", conv["visitor_id"] + "x"]:
        for method in ("get", "post"):
            kw = {} if method == "get" else {"data": json.dumps({"text": "hi"}), "content_type": "application/json"}
            r2 = getattr(client, method)(url(widget, f"conversations/{conv['conversation_id']}/messages/"), **kw,
                                         HTTP_ORIGIN=ORIGIN, HTTP_X_VISITOR_ID=visitor,
                                         REMOTE_ADDR=f"10.0.0.{len(visitor)}")
            assert r2.status_code == 404 and "messages" not in r2.json(), (visitor, method)
