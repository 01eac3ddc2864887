"""Hostile input, as a demo was attacked with it: JSON nested thousands deep,
lone surrogates and NUL in strings, numbers and lists where text belongs,
dates far outside any sane range, CSV fields over 128 KiB and malformed rows,
and ids in URLs that are unknown or too large for the database.

Each case is sent to every endpoint it reached (the JSON ones are read from
the OpenAPI schema, the ids from the URL configuration, so new endpoints are
covered without editing this file). Every answer is a 4xx with a ``detail``
(or, for one bad item in a batch, that item's reason) and nothing is stored."""
from __future__ import annotations

import json
import re
import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern, URLResolver, get_resolver

from apps.common.models import Job
from apps.recommend.models import Event, Item
from apps.sentiment.models import AlertRule, NewsItem, NewsSource, WebhookSubscription
from apps.support.models import Conversation, KBArticle, Message, TranscriptPair, WidgetKey

pytestmark = pytest.mark.django_db

ORIGIN = "https://shop.example.com"
DEEP = '{"text": ' + "[" * 5000 + "]" * 5000 + "}"
SURROGATE = '{"text": "a\\ud800b", "headline": "a\\ud800b", "title": "a\\ud800b"}'
NUL = '{"text": "a\\u0000b", "headline": "a\\u0000b", "title": "a\\u0000b"}'
STORED = (Conversation, Message, NewsItem, AlertRule, WebhookSubscription, Item, Event, Job, TranscriptPair,
          KBArticle)


def _counts() -> dict[str, int]:
    return {m.__name__: m.objects.count() for m in STORED}


def _detail(resp) -> str:
    body = resp.json()
    assert isinstance(body, dict) and str(body.get("detail") or "").strip(), body
    return body["detail"]


@pytest.fixture
def rows(db):
    widget = WidgetKey.objects.create(name="shop", allowed_origins=[ORIGIN])
    conv = Conversation.objects.create(widget=widget)
    msg = Message.objects.create(conversation=conv, role="bot", text="hello")
    source = NewsSource.objects.create(name="wire")
    item = NewsItem.objects.create(source=source, url="https://news.example.com/1", headline="Profit up",
                                   published_at="2026-01-01T00:00:00Z", content_hash="h1")
    rule = AlertRule.objects.create(name="credit", scope="topic", key="credit")
    sub = WebhookSubscription.objects.create(url="https://hooks.example.com/x")
    return {"widget": widget, "conversations": conv, "messages": msg, "news": item, "rules": rule,
            "webhooks": sub}


def _json_operations() -> list[tuple[str, str]]:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    ops = []
    for path, methods in schema["paths"].items():
        for method, op in methods.items():
            content = (op.get("requestBody") or {}).get("content") or {}
            if "application/json" in content:
                ops.append((method.upper(), path))
    return sorted(ops)


JSON_OPERATIONS = _json_operations()


def _fill(path: str, rows) -> str:
    def one(match):
        before = path[:match.start()].rstrip("/").rsplit("/", 1)[-1]
        return str(rows[before].pk)
    return re.sub(r"\{id\}", one, path)


def _api_for(path: str, request):
    app = path.strip("/").split("/")[0]
    return request.getfixturevalue(f"{app}_api")


def test_the_schema_lists_the_json_endpoints():
    assert len(JSON_OPERATIONS) >= 13, JSON_OPERATIONS  # the 13 the attack reached, and any added since


@pytest.mark.parametrize("body,fragment", [(DEEP, "nests deeper"), (SURROGATE, "surrogate"), (NUL, "NUL")],
                         ids=["deep", "surrogate", "nul"])
@pytest.mark.parametrize("method,path", JSON_OPERATIONS)
def test_every_json_endpoint_refuses_hostile_json_with_400(method, path, body, fragment, rows, request):
    api = _api_for(path, request)
    before = _counts()
    resp = getattr(api, method.lower())(_fill(path, rows), body, content_type="application/json")
    assert resp.status_code == 400, (method, path, resp.status_code, resp.content[:200])
    assert fragment in _detail(resp)
    assert "body" in _detail(resp)  # names where: body.text, body.headline, …
    assert _counts() == before


@pytest.mark.parametrize("body,fragment", [(DEEP, "nests deeper"), (SURROGATE, "surrogate"), (NUL, "NUL"),
                                           ('{"text": 12345}', "text must be a string"),
                                           ('{"text": ["a", "b"]}', "text must be a string")])
def test_the_widget_refuses_hostile_json_with_400(client, rows, body, fragment):
    widget = rows["widget"]
    base = f"/support/api/widget/{widget.public_key}"
    conv = client.post(f"{base}/conversations/", "{}", content_type="application/json", HTTP_ORIGIN=ORIGIN).json()
    before = _counts()
    r = client.post(f"{base}/conversations/{conv['conversation_id']}/messages/", body,
                    content_type="application/json", HTTP_ORIGIN=ORIGIN, HTTP_X_VISITOR_ID=conv["visitor_id"])
    assert r.status_code == 400 and fragment in _detail(r), r.content[:200]
    assert _counts() == before
    if "string" not in fragment:  # the start-a-conversation body too
        r = client.post(f"{base}/conversations/", body, content_type="application/json", HTTP_ORIGIN=ORIGIN)
        assert r.status_code == 400 and fragment in _detail(r)


# --- text, not coerced ---------------------------------------------------------------------

def test_support_text_must_be_a_string(support_api, rows):
    for url in ["/support/api/answer/", f"/support/api/conversations/{rows['conversations'].pk}/messages/"]:
        before = _counts()
        r = support_api.post(url, {"text": 12345}, format="json")
        assert r.status_code == 400 and "text must be a string" in _detail(r)
        assert _counts() == before


def test_a_list_headline_is_refused_not_stored_as_text(sentiment_api, rows):
    r = sentiment_api.post("/sentiment/api/news/", {"items": [
        {"url": "https://a.example/1", "headline": ["Profit", "up"]},
        {"url": "https://a.example/2", "headline": 12345}]}, format="json")
    assert r.status_code < 500
    reasons = [x["reason"] for x in r.json()["rejected_items"]]
    assert reasons == ["headline must be a string, not an array.", "headline must be a string, not a number."]
    assert NewsItem.objects.count() == 1  # the fixture's


def test_a_catalogue_title_that_is_not_a_string_is_refused(recommend_api, rows):
    r = recommend_api.post("/recommend/api/items/", {"items": [{"external_id": "a", "title": ["x"]}]}, format="json")
    assert r.status_code == 400 and "title must be a string" in _detail(r)
    assert not Item.objects.exists()


# --- dates out of range ---------------------------------------------------------------------

@pytest.mark.parametrize("published", [1e20, -1e20, "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",
                                       "1066-10-14T09:00:00Z", 1e308])
def test_an_impossible_published_at_is_a_per_item_reason(sentiment_api, rows, published):
    r = sentiment_api.post("/sentiment/api/news/", {"items": [
        {"url": "https://a.example/bad", "headline": "Bad date", "published_at": published},
        {"url": "https://a.example/good", "headline": "Good date", "published_at": "2026-01-02T00:00:00Z"}]},
        format="json")
    assert r.status_code == 201, r.content[:300]
    (rejected,) = r.json()["rejected_items"]
    assert rejected["index"] == 0 and "published_at" in rejected["reason"]
    assert not NewsItem.objects.filter(url="https://a.example/bad").exists()
    assert NewsItem.objects.filter(url="https://a.example/good").exists()


def test_an_impossible_published_at_in_a_csv_is_a_per_row_reason(sentiment_api, rows):
    csv = b"url,headline,published_at\nhttps://a.example/x,Bad,0001-01-01T00:00:00+14:00\n"
    r = sentiment_api.post("/sentiment/api/news/csv/", {"file": SimpleUploadedFile("n.csv", csv)})
    assert r.status_code < 500 and "published_at" in r.json()["rejected_items"][0]["reason"]


@pytest.mark.parametrize("created", ["0001-01-01T00:00:00+14:00", "1200-01-01T00:00:00Z"])
def test_an_impossible_catalogue_date_is_refused(recommend_api, created):
    r = recommend_api.post("/recommend/api/items/", {"items": [{"external_id": "a", "title": "A",
                                                                "created_at": created}]}, format="json")
    assert r.status_code == 400 and "created_at" in _detail(r)
    assert not Item.objects.exists()


# --- files: JSON inside, CSV shapes, encodings ---------------------------------------------------

BIG = "x" * (128 * 1024 + 10)
CSV_CASES = {
    "sentiment": ("/sentiment/api/news/csv/", "url,headline\n", "https://a.example/{n},Headline {n}\n"),
    "recommend": ("/recommend/api/items/upload/", "external_id,title\n", "sku-{n},Title {n}\n"),
    "support": ("/support/api/ingest/transcripts/", "conversation_id,speaker,text\n", "c{n},customer,hello {n}\n"),
}


@pytest.mark.parametrize("app", list(CSV_CASES))
@pytest.mark.parametrize("shape,bad_row,fragment", [
    ("oversize", 'a,"' + BIG + '"\n', "larger than 128 KiB"),
    ("unclosed quote", 'a,"never closed\n', "malformed CSV row"),
    ("stray quote", 'a,"x"y\n', "malformed CSV row"),
    ("nul", "a,b\x00c\n", "NUL"),
])
def test_every_csv_importer_answers_400_naming_the_line(app, shape, bad_row, fragment, request, rows):
    url, header, good = CSV_CASES[app]
    api = request.getfixturevalue(f"{app}_api")
    text = header + good.format(n=1) + good.format(n=2) + bad_row + good.format(n=3)
    before = _counts()
    r = api.post(url, {"file": SimpleUploadedFile("upload.csv", text.encode())})
    assert r.status_code == 400, (app, shape, r.status_code, r.content[:300])
    assert "line 4" in _detail(r) and fragment in _detail(r)
    assert _counts() == before


@pytest.mark.parametrize("body,fragment", [
    ('[{"external_id": "a", "title": "Mug \\ud800"}]', "surrogate"),
    ('{"items": ' + "[" * 5000 + "]" * 5000 + "}", "nests deeper"),
])
def test_a_catalogue_json_file_with_a_lone_surrogate_or_deep_nesting_is_refused(recommend_api, body, fragment):
    r = recommend_api.post("/recommend/api/items/upload/", {"file": SimpleUploadedFile("cat.json", body.encode())})
    assert r.status_code == 400 and fragment in _detail(r)
    assert not Item.objects.exists()


def test_a_lone_surrogate_in_a_catalogue_title_is_refused_on_every_path(recommend_api):
    r = recommend_api.post("/recommend/api/items/", '{"items": [{"external_id": "a", "title": "Mug \\ud800"}]}',
                           content_type="application/json")
    assert r.status_code == 400 and "surrogate" in _detail(r)
    raw = b"external_id,title\na,Mug \xed\xa0\x80\n"  # a surrogate encoded as UTF-8 bytes: not valid UTF-8
    r = recommend_api.post("/recommend/api/items/upload/", {"file": SimpleUploadedFile("cat.csv", raw)})
    assert r.status_code == 400 and "UTF-8" in _detail(r)
    assert not Item.objects.exists()


@pytest.mark.parametrize("line", [
    '{"conversation_id": "c1", "speaker": "customer", "text": ' + "[" * 5000 + "]" * 5000 + "}",
    '{"conversation_id": "c1", "speaker": "customer", "text": "hi \\ud800"}',
    '{"conversation_id": "c1", "speaker": "customer", "text": 12345}',
])
def test_a_transcript_jsonl_line_that_is_hostile_is_refused_with_its_line(support_api, line):
    body = '{"conversation_id": "c1", "speaker": "agent", "text": "hello"}\n' + line + "\n"
    before = _counts()
    r = support_api.post("/support/api/ingest/transcripts/", {"file": SimpleUploadedFile("t.jsonl", body.encode())})
    assert r.status_code == 400 and "line 2" in _detail(r)
    assert _counts() == before


def test_a_kb_file_in_latin1_is_refused_not_stored_with_replacement_characters(support_api):
    doc = "# Returns\n\nCaf\xe9 orders can be returned within 30 days.\n".encode("latin-1")
    before = _counts()
    r = support_api.post("/support/api/ingest/kb/", {"files": [SimpleUploadedFile("returns.md", doc)]})
    assert r.status_code == 400 and "UTF-8" in _detail(r)
    assert _counts() == before


# --- ids in URLs -----------------------------------------------------------------------------------

def _id_routes() -> list[str]:
    """Every route with an <id:…> parameter, as a string with the converters left in."""
    out: list[str] = []

    def walk(patterns, prefix: str):
        for p in patterns:
            route = str(p.pattern)
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + route)
            elif isinstance(p, URLPattern) and "<id:" in route:
                out.append(prefix + route)

    walk(get_resolver().url_patterns, "/")
    return sorted(out)


ID_ROUTES = _id_routes()


def test_the_url_configuration_has_id_routes():
    assert "/sentiment/api/webhooks/<id:pk>/deliveries/" in ID_ROUTES and len(ID_ROUTES) >= 20


@pytest.mark.parametrize("value", ["999999999999", str(10**30), "9223372036854775808"],
                         ids=["unknown", "huge", "int64+1"])
@pytest.mark.parametrize("route", ID_ROUTES)
def test_every_id_in_a_url_is_404_when_unknown_or_out_of_range(route, value, rows, staff_client, request):
    path = re.sub(r"<id:\w+>", value, route).replace("<str:key>", rows["widget"].public_key)
    path = path.replace("<uuid:conversation_id>", str(uuid.uuid4()))
    assert "<" not in path, path
    if "/api/widget/" in path:
        client, kw = staff_client, {"HTTP_ORIGIN": ORIGIN}
    elif "/api/" in path:
        app = path.strip("/").split("/")[0]
        client, kw = request.getfixturevalue(f"{app}_api" if app != "api" else "sentiment_api"), {}
    else:
        client, kw = staff_client, {}
    before = _counts()
    codes = {}
    for method in ("get", "post"):
        r = getattr(client, method)(path, **kw)
        codes[method] = r.status_code
        assert r.status_code in {404, 405}, (method, path, r.status_code, r.content[:200])
        if "/api/" in path:
            assert r.json()["detail"]
    assert 404 in codes.values(), codes
    assert _counts() == before


def test_deliveries_of_an_unknown_subscription_are_404_not_an_empty_list(sentiment_api, rows):
    sub = rows["webhooks"]
    assert sentiment_api.get(f"/sentiment/api/webhooks/{sub.pk}/deliveries/").status_code == 200
    r = sentiment_api.get(f"/sentiment/api/webhooks/{sub.pk + 1000}/deliveries/")
    assert r.status_code == 404 and "results" not in r.json()
    assert sentiment_api.get(f"/sentiment/api/webhooks/{10**30}/deliveries/").status_code == 404


def test_json_in_a_json_api_body_is_refused_without_a_500_at_every_depth_limit_edge(support_api):
    # just over the limit, and far over it (where json.loads itself would raise RecursionError)
    for depth in (33, 900, 2000, 100_000):
        body = json.dumps({"text": "x"})[:-1] + ', "z": ' + "[" * depth + "]" * depth + "}"
        r = support_api.post("/support/api/answer/", body, content_type="application/json")
        assert r.status_code == 400 and "nests deeper" in _detail(r), depth
