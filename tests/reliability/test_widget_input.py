"""Hostile shapes on the public widget endpoints (no login needed) and the support
API: each answers a 4xx with a "detail", never a 500, and writes nothing it
should not."""
from __future__ import annotations

import json

import pytest
from django.core.cache import cache

from apps.support.models import Conversation, Feedback, Message, WidgetKey

pytestmark = pytest.mark.django_db
ORIGIN = "https://shop.example.com"
DEEP = "[" * 3000 + "]" * 3000
DEEP_OBJECT = '{"text": ' + "[" * 3000 + "]" * 3000 + "}"


@pytest.fixture
def widget(db):
    cache.clear()
    yield WidgetKey.objects.create(name="shop", allowed_origins=[ORIGIN], rate_limit_per_minute=1000,
                                   ip_rate_limit_per_minute=10_000)
    cache.clear()


@pytest.fixture
def conv(client, widget):
    r = client.post(f"/support/api/widget/{widget.public_key}/conversations/", "{}",
                    content_type="application/json", HTTP_ORIGIN=ORIGIN)
    return r.json()


@pytest.fixture
def bot_message(conv):
    c = Conversation.objects.get(public_id=conv["conversation_id"])
    return Message.objects.create(conversation=c, role="bot", text="Hello", answer_kind="template")


def paths(widget, conv, bot_message) -> dict[str, str]:
    base = f"/support/api/widget/{widget.public_key}"
    cid = conv["conversation_id"]
    return {"conversations": f"{base}/conversations/", "messages": f"{base}/conversations/{cid}/messages/",
            "agent": f"{base}/conversations/{cid}/agent/", "rating": f"{base}/conversations/{cid}/rating/",
            "feedback": f"{base}/messages/{bot_message.pk}/feedback/"}


def post(client, path, raw, conv, **extra):
    return client.post(path, raw, content_type="application/json", HTTP_ORIGIN=ORIGIN,
                       HTTP_X_VISITOR_ID=conv["visitor_id"], **extra)


def assert_refused(resp, status=400):
    assert resp.status_code == status, (resp.status_code, resp.content[:300])
    assert resp.json()["detail"]


@pytest.mark.parametrize("endpoint", ["conversations", "messages", "agent", "rating", "feedback"])
@pytest.mark.parametrize("raw", [DEEP, DEEP_OBJECT, "[1]", '"text"', "{", b"\xed\xa0\x80", b"\xff\xfe{}"],
                         ids=["deep-array", "deep-in-object", "array", "string", "truncated", "cesu-surrogate",
                              "not-utf8"])
def test_it_refuses_bodies_that_are_not_a_flat_json_object(client, widget, conv, bot_message, endpoint, raw):
    resp = post(client, paths(widget, conv, bot_message)[endpoint], raw, conv)
    assert_refused(resp)


@pytest.mark.parametrize("endpoint,field", [("conversations", "visitor_id"), ("conversations", "page_url"),
                                            ("messages", "text"), ("agent", "page_url"), ("rating", "comment")])
@pytest.mark.parametrize("bad", ["\ud800", "abc\udfffdef", "nul\x00here"], ids=["lone-high", "lone-low", "nul"])
def test_it_refuses_text_the_database_cannot_store(client, widget, conv, bot_message, endpoint, field, bad):
    before = Message.objects.count(), Conversation.objects.count()
    body = {field: bad, "rating": 5} if endpoint == "rating" else {field: bad}
    resp = post(client, paths(widget, conv, bot_message)[endpoint], json.dumps(body), conv)
    assert_refused(resp)
    assert (Message.objects.count(), Conversation.objects.count()) == before


@pytest.mark.parametrize("endpoint,field", [("messages", "text"), ("conversations", "visitor_id"),
                                            ("conversations", "page_url"), ("agent", "page_url")])
@pytest.mark.parametrize("bad", [{}, [1], 7, True], ids=["object", "list", "number", "bool"])
def test_it_refuses_text_fields_of_the_wrong_type(client, widget, conv, bot_message, endpoint, field, bad):
    resp = post(client, paths(widget, conv, bot_message)[endpoint], json.dumps({field: bad}), conv)
    assert_refused(resp)
    assert field in resp.json()["detail"]


@pytest.mark.parametrize("rating", [{}, [1], True, None, "5", 1.5, 0, 6, "up"])
def test_it_refuses_a_csat_rating_that_is_not_1_to_5(client, widget, conv, bot_message, rating):
    Conversation.objects.filter(public_id=conv["conversation_id"]).update(status="closed")
    resp = post(client, paths(widget, conv, bot_message)["rating"], json.dumps({"rating": rating}), conv)
    assert_refused(resp)
    assert Conversation.objects.get(public_id=conv["conversation_id"]).csat_rating is None


@pytest.mark.parametrize("rating", [{}, [1], True, None, 2, "sideways", [["up"]]])
def test_it_refuses_a_message_rating_that_is_not_up_or_down(client, widget, conv, bot_message, rating):
    resp = post(client, paths(widget, conv, bot_message)["feedback"], json.dumps({"rating": rating}), conv)
    assert_refused(resp)
    assert "rating" in resp.json()["detail"] and not Feedback.objects.exists()


@pytest.mark.parametrize("since", ["abc", "-1", "1e9", "9" * 30, "9" * 5000, "１２"])
def test_it_refuses_a_since_that_is_not_a_message_id(client, widget, conv, bot_message, since):
    resp = client.get(paths(widget, conv, bot_message)["messages"] + f"?since={since}", HTTP_ORIGIN=ORIGIN,
                      HTTP_X_VISITOR_ID=conv["visitor_id"])
    assert_refused(resp)


def test_it_answers_404_for_a_message_id_beyond_any_integer_column(client, widget, conv):
    resp = post(client, f"/support/api/widget/{widget.public_key}/messages/{'9' * 25}/feedback/",
                json.dumps({"rating": "up"}), conv)
    assert_refused(resp, 404)


def test_it_refuses_a_body_announced_too_large_without_reading_it(client, widget, conv, bot_message):
    resp = post(client, paths(widget, conv, bot_message)["messages"], json.dumps({"text": "hi"}), conv,
                CONTENT_LENGTH="999999999")
    assert_refused(resp, 413)


def test_it_refuses_an_odd_visitor_header_without_an_error(client, widget, conv, bot_message):
    resp = client.get(paths(widget, conv, bot_message)["messages"], HTTP_ORIGIN=ORIGIN,
                      HTTP_X_VISITOR_ID="\u00ff" * 300)
    assert_refused(resp, 404)


def test_the_support_api_refuses_a_rating_of_the_wrong_shape(support_api, bot_message):
    for rating in ({}, [1], True):
        resp = support_api.post(f"/support/api/messages/{bot_message.pk}/feedback/", {"rating": rating},
                                format="json")
        assert resp.status_code == 400 and resp.json()["detail"], rating
    assert not Feedback.objects.exists()


def test_the_support_api_refuses_an_unknown_inbox_filter(support_api):
    resp = support_api.get("/support/api/conversations/?status=%F0%9F%92%A9")
    assert resp.status_code == 400 and "status" in resp.json()["detail"]
