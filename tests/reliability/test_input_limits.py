"""Bad input: oversized bodies, wrong encodings, missing columns, over-long
text, and a million-row file. Every refusal is a 4xx with a ``detail`` a user
can act on; nothing is half-imported; a huge upload is refused without being
held in memory."""
from __future__ import annotations

import http.client
import json
import tracemalloc
import uuid
from urllib.parse import urlsplit

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.sentiment.models import NewsItem


def _detail(resp) -> str:
    body = resp.json()
    assert isinstance(body, dict) and str(body.get("detail") or "").strip(), body
    return body["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize("app,url", [
    ("sentiment", "/sentiment/api/news/"), ("recommend", "/recommend/api/events/"),
    ("support", "/support/api/answer/"), ("recommend", "/recommend/api/score/"),
])
def test_it_refuses_an_oversized_json_body_with_413(app, url, settings, request):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
    api = request.getfixturevalue(f"{app}_api")
    body = json.dumps({"items": [{"url": f"https://x.example/{i}", "headline": "x" * 200} for i in range(400)],
                       "text": "y" * 100_000, "events": [], "candidates": ["z" * 100_000]})
    assert len(body) > 128 * 1024
    resp = api.post(url, body, content_type="application/json")
    assert resp.status_code == 413, resp.content[:300]
    assert "larger than" in _detail(resp)


@pytest.mark.django_db
@pytest.mark.parametrize("app,url,field,payload,fragment", [
    ("sentiment", "/sentiment/api/news/csv/", "file", "url,headline\nhttps://a.example/1,Caf\xe9 chain profit falls\n"
     .encode("utf-16"), "UTF-8"),
    ("sentiment", "/sentiment/api/news/csv/", "file", "url,headline\nhttps://a.example/1,Caf\xe9 profit\n"
     .encode("latin-1"), "UTF-8"),
    ("sentiment", "/sentiment/api/news/csv/", "file", b"url,title_typo\nhttps://a.example/1,Profit\n", "headline"),
    ("sentiment", "/sentiment/api/news/csv/", "file", b"", "column"),
    ("recommend", "/recommend/api/items/upload/", "file",
     "external_id,title\n1,Caf\xe9 mug\n".encode("latin-1"), "UTF-8"),
    ("recommend", "/recommend/api/items/upload/", "file", b"external_id,colour\n1,red\n", "title"),
    ("support", "/support/api/ingest/transcripts/", "file",
     '{"conversation_id": "c1", "speaker": "customer", "text": "Caf\xe9?"}\n'.encode("utf-16"), ""),
    ("support", "/support/api/ingest/transcripts/", "file", b"conversation_id,text\nc1,hello\n", "line"),
    ("support", "/support/api/ingest/transcripts/", "file", b'{"conversation_id": "c1", "speaker": "cust\n', "line 1"),
])
def test_it_refuses_files_with_wrong_encodings_or_missing_columns(app, url, field, payload, fragment, request,
                                                                   django_capture_on_commit_callbacks):
    api = request.getfixturevalue(f"{app}_api")
    name = "upload.jsonl" if payload.lstrip(b"\xff\xfe").startswith((b"{", b"{\x00")) else "upload.csv"
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        resp = api.post(url, {field: SimpleUploadedFile(name, payload)}, format="multipart")
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.content[:300])
    assert fragment.lower() in _detail(resp).lower()
    assert not callbacks  # nothing queued
    assert not NewsItem.objects.exists()


@pytest.mark.django_db
def test_it_refuses_or_truncates_over_long_text_fields(sentiment_api, support_api, recommend_api):
    r = sentiment_api.post("/sentiment/api/news/", {"items": [
        {"url": "https://a.example/long", "headline": "h" * 501},
        {"url": "https://a.example/" + "p" * 1001, "headline": "fine"},
        {"url": "https://a.example/body", "headline": "ok", "body": "b" * 20_001},
    ]}, format="json")
    assert r.status_code == 200
    reasons = [x["reason"] for x in r.json()["rejected_items"]]
    assert len(reasons) == 3 and all("longer than" in x for x in reasons)
    r = support_api.post("/support/api/answer/", {"text": "q" * 2001}, format="json")
    assert r.status_code == 400 and "2000" in _detail(r)
    r = recommend_api.post("/recommend/api/score/", {"user": "u1", "candidates": [{"text": "t" * 1_000_000}]},
                           format="json")
    assert r.status_code < 500, r.content[:300]
    if r.status_code == 200:
        assert "truncated" in json.dumps(r.json())
    else:
        _detail(r)


@pytest.mark.django_db(transaction=True)
def test_it_refuses_a_million_row_csv_without_holding_it_in_memory(live_server, tmp_path):
    """1,000,001 lines (~40 MB), streamed to the real server from disk. Django spools
    the multipart file to a temporary file in 64 KB chunks and the view refuses it by
    size before reading it: the whole process's Python allocations stay far below
    the file's size."""
    from apps.common.models import ApiToken

    _, raw = ApiToken.issue(name="million", app="sentiment")
    boundary = uuid.uuid4().hex
    path = tmp_path / "million.multipart"
    with open(path, "wb") as fh:
        fh.write(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="news.csv"\r\n'
                 f"Content-Type: text/csv\r\n\r\nurl,headline,published_at\r\n".encode())
        row = "https://n.example.com/{:07d},Headline number {:07d},2026-10-01T00:00:00Z\n"
        for start in range(0, 1_000_000, 50_000):
            fh.write("".join(row.format(i, i) for i in range(start, start + 50_000)).encode())
        fh.write(f"\r\n--{boundary}--\r\n".encode())
    size = path.stat().st_size
    assert size > 40 * 1024 * 1024
    parts = urlsplit(live_server.url)
    tracemalloc.start()
    try:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        with open(path, "rb") as body:
            conn.request("POST", "/sentiment/api/news/csv/", body=body, headers={
                "Authorization": f"Bearer {raw}", "Content-Length": str(size),
                "Content-Type": f"multipart/form-data; boundary={boundary}"})
            resp = conn.getresponse()
            answer = json.loads(resp.read())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert resp.status == 413, answer
    assert "larger than" in answer["detail"]
    assert peak < size / 4, f"peak Python allocations {peak / 1e6:.1f} MB for a {size / 1e6:.0f} MB upload"
    assert not NewsItem.objects.exists()
