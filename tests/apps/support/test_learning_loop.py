"""The learning loop on real trainings: a question the bot hands off, the answer staff
write for it, a retrain, and the same question and a paraphrase answered."""
import pytest

from apps.support import ingest, services
from apps.support.models import Conversation
from tests.apps.support.factories import as_jsonl, transcript_rows

pytestmark = pytest.mark.django_db

FAST = {"intent_epochs": 8, "lm_epochs": 1}
QUESTION = "Do you sell tents?"
PARAPHRASE = "Are tents something your shop sells?"
ANSWER = "Yes, we sell tents for 2 to 6 people."


def test_it_answers_a_staff_answered_question_and_its_paraphrase_after_the_retrain(artifacts, staff_client):
    ingest.ingest_transcripts(as_jsonl(transcript_rows(2)), "t.jsonl")
    assert services.train_bot(**FAST)["promoted"]
    conv = Conversation.objects.create()
    assert services.answer_message(conv, QUESTION).handed_off
    assert QUESTION in [m.text for m in services.unanswered_questions()]

    # Staff write the answer on the dashboard, without naming an intent.
    staff_client.post("/support/unanswered/template/", {"question": QUESTION, "text": ANSWER})
    result = services.train_bot(**FAST)
    if not result["promoted"]:  # the gate may keep it a candidate; staff promote it by hand
        services.promote_version(result["version"])
    assert services.current_version().version == result["version"] == 2

    for text in (QUESTION, PARAPHRASE):
        reply = services.answer_message(Conversation.objects.create(), text)
        assert not reply.handed_off and reply.kind == "template", (text, reply)
        assert "tents for 2 to 6 people" in reply.text
    # A question of the old domain still gets its old answer, not the new one.
    assert "reset your password" in services.compose_reply("How can I reset my password?").text

    gate = services.current_version().metrics["gate"]
    assert QUESTION in gate["newly_answered"]
    page = staff_client.get("/support/").content.decode()
    assert 'id="newly-answered"' in page and QUESTION in page.split('id="newly-answered"')[1]


def test_it_hands_off_a_clearly_off_topic_question(trained_bot):
    reply = services.compose_reply("Can you recommend a good pizza place nearby?")
    assert reply.handed_off and reply.kind == "handoff"
    # The same bot does answer its own domain (the hand-off is not a bot that answers nothing).
    assert not services.compose_reply("How can I reset my password?").handed_off
