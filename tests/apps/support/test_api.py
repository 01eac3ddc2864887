import json

import pytest

from apps.common.models import Job
from apps.support.models import Conversation, KBArticle, TranscriptPair
from tests.apps.support.factories import as_jsonl, transcript_rows

pytestmark = pytest.mark.django_db


def test_it_refuses_requests_without_a_token(client):
    assert client.get("/support/api/conversations/").status_code == 401


def test_it_refuses_a_token_of_another_app(sentiment_api):
    resp = sentiment_api.get("/support/api/conversations/")
    assert resp.status_code == 403 and "scoped to 'sentiment'" in resp.json()["detail"]


def test_it_imports_transcripts_through_a_job(support_api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        resp = support_api.post("/support/api/ingest/transcripts/", as_jsonl(transcript_rows(1)),
                                content_type="application/x-ndjson")
    assert resp.status_code == 202
    job = Job.objects.get(pk=resp.json()["job"])
    assert job.state == "succeeded" and job.result["pairs"] == 12 and job.progress == 100
    assert TranscriptPair.objects.count() == 12


def test_it_reports_bad_lines_before_queueing(support_api):
    body = as_jsonl(transcript_rows(1)) + '{"conversation_id": "z", "speaker": "customer"}\n'
    resp = support_api.post("/support/api/ingest/transcripts/", body, content_type="application/x-ndjson")
    assert resp.status_code == 400
    assert resp.json()["errors"] == ["line 25: text is empty"]
    assert Job.objects.count() == 0 and TranscriptPair.objects.count() == 0


def test_it_imports_kb_articles_as_json(support_api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        resp = support_api.post("/support/api/ingest/kb/", {"articles": [
            {"title": "Returns", "body": "You can return anything within 30 days."}]}, format="json")
    assert resp.status_code == 202
    assert KBArticle.objects.get().chunks.count() == 1
    assert support_api.post("/support/api/ingest/kb/", {"articles": []}, format="json").status_code == 400


def test_it_answers_statelessly_and_lists_versions(support_api, trained_bot):
    r = support_api.post("/support/api/answer/", {"text": "reset my password"}, format="json")
    assert r.status_code == 200 and r.json()["intent"] == "password"
    versions = support_api.get("/support/api/models/").json()
    assert versions["current"] == 1 and versions["versions"][0]["current"] is True


def test_it_runs_the_api_conversation_flow(support_api, trained_bot):
    conv = support_api.post("/support/api/conversations/").json()
    reply = support_api.post(f"/support/api/conversations/{conv['id']}/messages/",
                             {"text": "What is the boiling point of mercury in Kelvin?"}, format="json").json()
    assert reply["reply"]["handed_off"] and reply["status"] == "waiting"
    support_api.post(f"/support/api/conversations/{conv['id']}/reply/", {"text": "An agent here."}, format="json")
    detail = support_api.get(f"/support/api/conversations/{conv['id']}/").json()
    assert [m["role"] for m in detail["messages"]] == ["customer", "bot", "agent"]
    assert support_api.post(f"/support/api/conversations/{conv['id']}/reply/", {"text": ""},
                            format="json").status_code == 400
    assert Conversation.objects.get().status == "agent"
    assist = support_api.post(f"/support/api/conversations/{conv['id']}/assist/", {"draft": "Hi"}, format="json")
    assert assist.status_code == 200 and "suggestions" in assist.json()


def test_it_gives_metrics(support_api):
    data = support_api.get("/support/api/metrics/").json()
    assert data["conversations"] == 0 and data["containment"] is None
    json.dumps(data)
