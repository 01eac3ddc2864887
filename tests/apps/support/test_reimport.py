"""Transcript imports are idempotent and checked whole before a job is queued."""
import pytest

from apps.common.models import Job
from apps.support import ingest
from apps.support.models import AnswerTemplate, TranscriptPair
from tests.apps.support.factories import as_jsonl, transcript_rows

pytestmark = pytest.mark.django_db


def test_reimporting_the_same_file_adds_0_pairs_and_says_so():
    data = as_jsonl(transcript_rows(repeat=1))
    first = ingest.ingest_transcripts(data, "t.jsonl")
    assert first.pairs == 12 and first.pairs_known == 0
    templates = AnswerTemplate.objects.count()
    again = ingest.ingest_transcripts(data, "t.jsonl")
    assert (again.pairs, again.pairs_known, again.templates_new) == (0, 12, 0)
    assert "0 added" in again.message and "Already imported" in again.message
    assert TranscriptPair.objects.count() == 12 and AnswerTemplate.objects.count() == templates


def test_a_file_that_grew_adds_only_its_new_pairs():
    rows = transcript_rows(repeat=1)
    ingest.ingest_transcripts(as_jsonl(rows[:12]), "t.jsonl")
    result = ingest.ingest_transcripts(as_jsonl(rows), "t.jsonl")
    assert (result.pairs, result.pairs_known) == (6, 6) and "6 were already imported" in result.message
    assert TranscriptPair.objects.count() == 12


def test_the_api_says_a_file_was_already_imported_and_queues_nothing(support_api, django_capture_on_commit_callbacks):
    body = as_jsonl(transcript_rows(1))
    with django_capture_on_commit_callbacks(execute=True):
        first = support_api.post("/support/api/ingest/transcripts/", body, content_type="application/x-ndjson")
    assert first.status_code == 202 and first.json()["pairs_new"] == 12
    assert Job.objects.get(pk=first.json()["job"]).result["pairs"] == 12
    again = support_api.post("/support/api/ingest/transcripts/", body, content_type="application/x-ndjson")
    assert again.status_code == 200, again.content
    assert again.json() == {"job": None, "state": "skipped", "pairs_new": 0, "pairs_known": 12,
                            "detail": "Already imported: all 12 question/answer pairs of this file are stored; 0 added."}
    assert Job.objects.count() == 1 and TranscriptPair.objects.count() == 12


def test_the_dashboard_says_a_file_was_already_imported(staff_client, django_capture_on_commit_callbacks):
    from django.core.files.uploadedfile import SimpleUploadedFile

    body = as_jsonl(transcript_rows(1)).encode()
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post("/support/upload/transcripts/", {"file": SimpleUploadedFile("t.jsonl", body)})
    resp = staff_client.post("/support/upload/transcripts/", {"file": SimpleUploadedFile("t.jsonl", body)}, follow=True)
    assert "Already imported" in resp.content.decode() and Job.objects.count() == 1


@pytest.mark.parametrize("bad_line,fragment", [
    ('{"conversation_id": "z", "speaker": "customer", "text": "refund \\ud800 please"}', "line 25.text contains a lone surrogate"),
    ('{"conversation_id": "z", "speaker": "customer", "text": "Is anyone there?"}', "line 25: the customer turn of conversation 'z' has no agent reply"),
])
def test_a_malformed_file_is_refused_before_a_job_is_queued(support_api, bad_line, fragment):
    body = as_jsonl(transcript_rows(1)) + bad_line + "\n"
    resp = support_api.post("/support/api/ingest/transcripts/", body, content_type="application/x-ndjson")
    assert resp.status_code == 400, resp.content
    assert fragment in resp.json()["detail"], resp.json()
    assert Job.objects.count() == 0 and TranscriptPair.objects.count() == 0


def test_a_closing_thanks_after_the_last_reply_is_no_error():
    rows = transcript_rows(1) + [{"conversation_id": "c1", "speaker": "customer", "text": "Thanks!"}]
    assert len(ingest.validate_transcripts(as_jsonl(rows), "t.jsonl")[1]) == 12
