import json

import pytest
from django.core.cache import cache

from apps.support.models import BotSettings, Conversation, Feedback, WidgetKey
from tests.apps.support.factories import OUT_OF_SCOPE

pytestmark = pytest.mark.django_db
ORIGIN = "https://shop.example.com"


@pytest.fixture(autouse=True)
def _clean_cache(db):
    cache.clear()
    BotSettings.objects.update_or_create(pk=1, defaults={"threshold": 0.5})
    yield
    cache.clear()


@pytest.fixture
def widget():
    return WidgetKey.objects.create(name="shop", allowed_origins=[ORIGIN], rate_limit_per_minute=5,
                                    ip_rate_limit_per_minute=100)


def url(widget, path):
    return f"/support/api/widget/{widget.public_key}/{path}"


def start(client, widget):
    resp = client.post(url(widget, "conversations/"), "{}", content_type="application/json", HTTP_ORIGIN=ORIGIN)
    assert resp.status_code == 201, resp.content
    return resp.json()


def send(client, widget, conv, text, **extra):
    return client.post(url(widget, f"conversations/{conv['conversation_id']}/messages/"), json.dumps({"text": text}),
                       content_type="application/json", HTTP_ORIGIN=ORIGIN, HTTP_X_VISITOR_ID=conv["visitor_id"],
                       **extra)


def test_it_runs_the_full_flow_to_an_agent_and_back(client, widget, trained_bot, support_api):
    conv = start(client, widget)
    ok = send(client, widget, conv, "I'm Zoe and I forgot my password")
    assert ok.status_code == 201 and ok.json()["reply"]["kind"] == "template"
    assert "Forgot password" in ok.json()["reply"]["text"]
    handoff = send(client, widget, conv, OUT_OF_SCOPE).json()
    assert handoff["reply"]["handed_off"] and handoff["status"] == "waiting"
    last_id = handoff["message"]["id"]

    waiting = support_api.get("/support/api/conversations/?status=waiting").json()["results"]
    assert [c["public_id"] for c in waiting] == [conv["conversation_id"]]
    pk = waiting[0]["id"]
    r = support_api.post(f"/support/api/conversations/{pk}/reply/", {"text": "Hi Zoe, 234 K. Anything else?"},
                         format="json")
    assert r.status_code == 201 and r.json()["status"] == "agent"

    seen = client.get(url(widget, f"conversations/{conv['conversation_id']}/messages/?since={last_id}"),
                      HTTP_ORIGIN=ORIGIN, HTTP_X_VISITOR_ID=conv["visitor_id"]).json()
    assert [(m["role"], m["text"]) for m in seen["messages"]] == [("agent", "Hi Zoe, 234 K. Anything else?")]
    assert seen["status"] == "agent"


def test_it_streams_a_reply_as_server_sent_events(client, widget, trained_bot):
    conv = start(client, widget)
    resp = send(client, widget, conv, "How can I reset my password?", HTTP_ACCEPT="text/event-stream")
    assert resp["Content-Type"].startswith("text/event-stream")
    assert resp["Access-Control-Allow-Origin"] == ORIGIN
    body = b"".join(resp.streaming_content).decode()
    events = [block.split("\n") for block in body.strip().split("\n\n")]
    names = [e[0].removeprefix("event: ") for e in events]
    # The composed reply is ready at once, so it goes out at once (no generator configured).
    assert names == ["start", "token", "done"]
    tokens = "".join(json.loads(e[1].removeprefix("data: "))["t"] for e in events if e[0] == "event: token")
    done = json.loads(events[-1][1].removeprefix("data: "))
    assert tokens == done["message"]["text"] and "Forgot password" in tokens
    assert done["status"] == "bot" and done["kind"] == "template"


def test_it_answers_preflight_for_allowed_origins_only(client, widget):
    ok = client.options(url(widget, "conversations/"), HTTP_ORIGIN=ORIGIN,
                        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")
    assert ok.status_code in {200, 204} and ok["Access-Control-Allow-Origin"] == ORIGIN  # django-cors-headers: 200
    assert "X-Visitor-Id" in ok["Access-Control-Allow-Headers"]
    bad = client.options(url(widget, "conversations/"), HTTP_ORIGIN="https://evil.example")
    assert bad.status_code == 403 and "Access-Control-Allow-Origin" not in bad
    post = client.post(url(widget, "conversations/"), "{}", content_type="application/json",
                       HTTP_ORIGIN="https://evil.example")
    assert post.status_code == 403 and "not allowed" in post.json()["detail"]
    assert Conversation.objects.count() == 0


def test_it_refuses_unknown_keys_and_other_visitors(client, widget):
    resp = client.post("/support/api/widget/pk_nope/conversations/", "{}", content_type="application/json",
                       HTTP_ORIGIN=ORIGIN)
    assert resp.status_code == 404
    conv = start(client, widget)
    other = client.get(url(widget, f"conversations/{conv['conversation_id']}/messages/"), HTTP_ORIGIN=ORIGIN,
                       HTTP_X_VISITOR_ID="v_someone_else_123")
    assert other.status_code == 404


def test_it_rate_limits_a_visitor_with_retry_after(client, widget, trained_bot):
    conv = start(client, widget)
    codes = [send(client, widget, conv, f"password reset please {i}").status_code for i in range(6)]
    assert codes == [201] * 5 + [429]
    limited = send(client, widget, conv, "again")
    assert limited.status_code == 429 and 1 <= int(limited["Retry-After"]) <= 61
    assert limited["Access-Control-Allow-Origin"] == ORIGIN  # the widget can read the error


def test_it_rate_limits_an_ip(client, widget):
    widget.ip_rate_limit_per_minute = 3
    widget.save()
    codes = [client.get(url(widget, "config/"), HTTP_ORIGIN=ORIGIN).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]


def test_it_records_a_rating_and_resumes_the_visitors_conversation(client, widget, trained_bot):
    conv = start(client, widget)
    msg = send(client, widget, conv, "I forgot my password").json()["message"]
    r = client.post(url(widget, f"messages/{msg['id']}/feedback/"), json.dumps({"rating": "down"}),
                    content_type="application/json", HTTP_ORIGIN=ORIGIN, HTTP_X_VISITOR_ID=conv["visitor_id"])
    assert r.status_code == 200 and Feedback.objects.get().rating == -1
    bad = client.post(url(widget, f"messages/{msg['id']}/feedback/"), json.dumps({"rating": "meh"}),
                      content_type="application/json", HTTP_ORIGIN=ORIGIN, HTTP_X_VISITOR_ID=conv["visitor_id"])
    assert bad.status_code == 400 and "rating" in bad.json()["detail"]
    again = client.post(url(widget, "conversations/"), json.dumps({"visitor_id": conv["visitor_id"]}),
                        content_type="application/json", HTTP_ORIGIN=ORIGIN)
    assert again.status_code == 200 and again.json()["conversation_id"] == conv["conversation_id"]
    assert len(again.json()["messages"]) == 2


def test_it_rejects_empty_and_oversized_messages(client, widget):
    conv = start(client, widget)
    assert send(client, widget, conv, "   ").json()["detail"] == "The message is empty."
    assert send(client, widget, conv, "x" * 2001).status_code == 400
    assert send(client, widget, conv, "x" * 20000).status_code == 413


def test_it_hands_over_when_the_visitor_asks_for_a_person(client, widget):
    conv = start(client, widget)
    resp = client.post(url(widget, f"conversations/{conv['conversation_id']}/agent/"), "{}",
                       content_type="application/json", HTTP_ORIGIN=ORIGIN, HTTP_X_VISITOR_ID=conv["visitor_id"])
    assert resp.status_code == 200 and resp.json()["status"] == "waiting"
    assert resp.json()["handoff_reason"] == "visitor" and resp.json()["wait"]["waiting"] == 1
    c = Conversation.objects.get()
    assert c.handed_off_at and c.messages.get().handed_off


@pytest.mark.parametrize("headers", [
    {"HTTP_SEC_FETCH_SITE": "same-origin"},  # Chromium's same-origin GET: no Origin at all
    {"HTTP_ORIGIN": "http://testserver"},  # a same-origin POST names this host
    {"HTTP_REFERER": "http://testserver/support/widget-demo/"},  # plain-http hosts get no Sec-Fetch-*
], ids=["sec-fetch-site", "origin-is-this-host", "referer-on-plain-http"])
def test_it_accepts_the_servers_own_pages_whatever_the_key_allows(client, headers):
    key = WidgetKey.objects.create(name="demo", allowed_origins=[])
    r = client.post(url(key, "conversations/"), "{}", content_type="application/json", **headers)
    assert r.status_code == 201, r.content
    conv = r.json()
    got = client.get(url(key, f"conversations/{conv['conversation_id']}/messages/"),
                     HTTP_X_VISITOR_ID=conv["visitor_id"], **headers)
    assert got.status_code == 200 and got.json()["status"] == "bot"


@pytest.mark.parametrize("headers", [
    {},  # no browser signal at all
    {"HTTP_SEC_FETCH_SITE": "cross-site", "HTTP_REFERER": "http://testserver/"},  # Sec-Fetch-Site wins
    {"HTTP_SEC_FETCH_SITE": "same-site"},
    {"HTTP_REFERER": "http://testserver.evil.example/"},
    {"HTTP_ORIGIN": "http://evil.example", "HTTP_SEC_FETCH_SITE": "same-origin"},  # an Origin is checked as sent
], ids=["nothing", "cross-site", "same-site", "lookalike-referer", "foreign-origin"])
def test_it_refuses_other_pages_when_the_key_allows_none(client, headers, caplog):
    key = WidgetKey.objects.create(name="demo", allowed_origins=[])
    r = client.get(url(key, "config/"), **headers)
    assert r.status_code == 403 and "not allowed" in r.json()["detail"]
    assert "refused a request" in caplog.text  # the reason is in the server log


def test_staff_edit_disable_and_delete_a_key(staff_client, client):
    key = WidgetKey.objects.create(name="shop", allowed_origins=[ORIGIN])
    page = staff_client.get("/support/widget-keys/").content.decode()
    assert f'/support/widget-keys/{key.pk}/' in page and key.public_key in page
    bad = staff_client.post(f"/support/widget-keys/{key.pk}/", {"name": "shop", "origins": "javascript:alert(1)"})
    assert bad.status_code == 200 and "is not an origin" in bad.content.decode()
    r = staff_client.post(f"/support/widget-keys/{key.pk}/", {
        "name": "shop2", "origins": "https://a.example\nhttps://B.example:8443/", "title": "Help",
        "greeting": "Hello there", "rate_limit_per_minute": 7, "ip_rate_limit_per_minute": 70})  # active unticked
    assert r.status_code == 302
    key.refresh_from_db()
    assert (key.name, key.allowed_origins, key.title, key.active) == (
        "shop2", ["https://a.example", "https://b.example:8443"], "Help", False)
    assert client.get(url(key, "config/"), HTTP_ORIGIN="https://a.example").status_code == 404  # disabled
    staff_client.post(f"/support/widget-keys/{key.pk}/", {"name": "shop2", "origins": "https://a.example",
                                                          "active": "on"})
    assert client.get(url(key, "config/"), HTTP_ORIGIN="https://a.example").json()["greeting"] == "Hello there"
    assert staff_client.post(f"/support/widget-keys/{key.pk}/delete/").status_code == 302
    assert not WidgetKey.objects.filter(pk=key.pk).exists()
    assert client.get(url(key, "config/"), HTTP_ORIGIN="https://a.example").status_code == 404
