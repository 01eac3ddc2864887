import pytest

from apps.support import services
from apps.support.models import BotSettings, Conversation, Message
from tests.apps.support.factories import OUT_OF_SCOPE

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversation():
    return Conversation.objects.create()


@pytest.fixture(autouse=True)
def threshold(db):
    BotSettings.objects.update_or_create(pk=1, defaults={"threshold": 0.5, "kb_min_score": 0.45})


def test_it_hands_off_an_order_status_question_with_the_customers_own_order_number(trained_bot, conversation):
    # The agents' order-status reply states a specific order's status: the bot cannot know it,
    # so it passes the question on, naming only the order number the customer wrote.
    reply = services.answer_message(conversation, "Hi, I'm Zoe - any news on the delivery of order #77123?")
    assert reply.kind == "handoff" and reply.handed_off and reply.intent == "order_status"
    assert reply.text == services.ACTION_HANDOFF_TEXT.format(order=" with your order number #77123")
    assert "shipped" not in reply.text and reply.withheld
    assert conversation.messages.filter(role="bot").get().text == reply.text


def test_it_uses_slots_from_earlier_messages(trained_bot, conversation):
    services.answer_message(conversation, "My name is Omar")
    reply = services.answer_message(conversation, "my parcel 55501 never arrived, I need my money back")
    assert reply.intent == "refund", reply
    assert "#55501" in reply.text and "refund" not in reply.text


def test_it_hands_off_an_out_of_scope_question(trained_bot, conversation):
    reply = services.answer_message(conversation, OUT_OF_SCOPE)
    assert reply.handed_off and reply.kind == "handoff"
    conversation.refresh_from_db()
    assert conversation.status == "waiting" and conversation.handed_off_at
    # From now on the bot stays quiet: the message waits for an agent.
    quiet = services.answer_message(conversation, "hello?")
    assert quiet.kind == "queued" and Message.objects.filter(role="bot").count() == 1


def test_it_answers_kb_questions_with_sources(trained_bot, conversation):
    reply = services.answer_message(conversation, "Do you deliver to Canada, and how long does it take?")
    assert reply.kind == "kb", reply
    assert reply.sources[0]["slug"] == "shipping-abroad"
    assert reply.sources[0]["url"] == "/help/shipping-abroad"
    assert "7 to 12 working days" in reply.text


def test_it_hands_off_when_no_model_is_trained(conversation, settings, tmp_path):
    settings.AIGC_ARTIFACTS_DIR = tmp_path
    reply = services.answer_message(conversation, "Where is my order?")
    assert reply.handed_off


def test_it_stores_a_precision_coverage_curve(trained_bot):
    curve = trained_bot["curve"]
    assert curve[0]["threshold"] == 0.0 and curve[0]["coverage"] == 1.0
    assert all(0.0 <= p["precision"] <= 1.0 for p in curve)
    assert trained_bot["answer_recall_at_1"] >= 0.5
    assert "0.95" in trained_bot["coverage_at_precision"]
    assert trained_bot["lm"]["gru_val_perplexity"] > 1


def test_it_suggests_templates_and_completes_drafts(trained_bot, conversation):
    services.answer_message(conversation, "I need a refund for order 12345, it broke")
    assist = services.agent_assist(conversation, draft="I'm sorry about")
    assert assist["suggestions"][0]["intent"] == "refund"
    assert "#12345" in assist["suggestions"][0]["filled"]
    assert isinstance(assist["completion"], str)
