"""Safe deploys on real trainings: the gate keeps a worse version a candidate, promote and
roll back go through a confirm page, and roll back with nothing older says why."""
import pytest

from apps.support import ingest, services
from apps.support.models import AnswerTemplate, TranscriptPair
from tests.apps.support.factories import as_jsonl, transcript_rows

pytestmark = pytest.mark.django_db

FAST = {"intent_epochs": 8, "lm_epochs": 1}


def _mismap_answers():
    """Staff error: every question now points at another intent's answer."""
    tpls = list(AnswerTemplate.objects.order_by("id"))
    rotate = {t.pk: tpls[(i + 1) % len(tpls)] for i, t in enumerate(tpls)}
    for pair in TranscriptPair.objects.all():
        pair.template = rotate[pair.template_id]
        pair.save(update_fields=["template"])


def test_a_worse_version_stays_a_candidate_until_staff_promote_it(artifacts, staff_client):
    ingest.ingest_transcripts(as_jsonl(transcript_rows(2)), "t.jsonl")
    first = services.train_bot(**FAST)
    assert first["promoted"] and first["version"] == 1
    same = services.train_bot(**FAST)  # the same data again: as good, so it goes live
    assert same["promoted"] and services.current_version().version == 2

    _mismap_answers()
    worse = services.train_bot(**FAST)
    assert worse["version"] == 3 and not worse["promoted"]
    assert "worse than live version 2" in worse["gate_reason"]
    assert services.current_version().version == 2
    assert "reset your password" in services.compose_reply("How can I reset my password?").text
    gate = services.versions()[0].metrics["gate"]
    new, live = gate["figures"]["candidate"], gate["figures"]["live"]
    assert (new["answer_accuracy"] < live["answer_accuracy"]
            or new["coverage_at_aimed_precision"] < live["coverage_at_aimed_precision"])
    assert gate["changes_total"] > 0

    page = staff_client.get("/support/").content.decode()
    assert "candidate" in page.split('data-version="3"')[1].split("</tr>")[0]
    # Promote asks first and shows what changes; a POST without the confirmation does nothing.
    confirm = staff_client.get("/support/versions/3/promote/").content.decode()
    assert 'id="changed-questions"' in confirm and 'id="figures-diff"' in confirm and "worse than live" in confirm
    staff_client.post("/support/versions/3/promote/")
    assert services.current_version().version == 2
    staff_client.post("/support/versions/3/promote/", {"confirm": "yes"})
    assert services.current_version().version == 3

    assert 'id="confirm"' in staff_client.get("/support/versions/rollback/").content.decode()
    staff_client.post("/support/versions/rollback/", {"confirm": "yes"})
    assert services.current_version().version == 2


def test_roll_back_with_nothing_older_is_disabled_and_says_why(artifacts, staff_client, support_api):
    with pytest.raises(services.SupportError, match="no version of the bot is live yet"):
        services.rollback_version()
    ingest.ingest_transcripts(as_jsonl(transcript_rows(1)), "t.jsonl")
    services.train_bot(**FAST)
    page = staff_client.get("/support/").content.decode()
    button = page.split('id="rollback"')[1].split(">")[0]
    assert "disabled" in button and "oldest version" in button
    assert '<time datetime="' in page  # each version shows its date

    resp = staff_client.get("/support/versions/rollback/", follow=True)
    assert "Nothing to roll back to: version 1 is the oldest version there is." in resp.content.decode()
    api = support_api.post("/support/api/models/rollback/")
    assert api.status_code == 400 and "version 1 is the oldest version" in api.json()["detail"]
    assert services.current_version().version == 1
