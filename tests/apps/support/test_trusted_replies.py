"""Replies a customer can trust: learned from transcripts whose agents refund orders and
quote customers' order numbers and phones, the bot claims no action, shows no other
customer's data and sends no open placeholder (apps/support/reply_guard.py, slots.py)."""
import pytest

from apps.support import ingest, reply_guard, services, shop
from apps.support import slots as slot_lib
from apps.support.models import AnswerTemplate, BotSettings, Conversation
from tests.apps.support.factories import GUARD_PHONES, as_jsonl, guard_transcript_rows

pytestmark = pytest.mark.django_db


@pytest.fixture
def guarded_bot(settings, tmp_path):
    """The guard transcripts imported and a bot trained on them, live in a fresh registry."""
    from apps.common import engine

    settings.AIGC_ARTIFACTS_DIR = tmp_path
    engine.forget(services.MODEL_NAME)
    ingest.ingest_transcripts(as_jsonl(guard_transcript_rows()), "guard.jsonl")
    services.train_bot(intent_epochs=8, lm_epochs=1)
    # Low enough that the bot picks a template for each question: what it then sends is the guard's call.
    BotSettings.objects.filter(pk=1).update(threshold=0.2, threshold_source="staff")
    yield
    engine.forget(services.MODEL_NAME)


def ask(text: str) -> services.Reply:
    return services.answer_message(Conversation.objects.create(), text)


def test_it_marks_a_refunding_reply_action_claiming_and_never_sends_it(guarded_bot):
    refund = AnswerTemplate.objects.get(intent="refund")
    assert refund.kind == "action" and refund.kind_set_by == "auto"
    assert "#123" not in refund.text and "{order_id}" in refund.text
    reply = ask("can I get a refund for order #999?")
    assert reply.intent == "refund" and reply.handed_off, reply
    assert "refunded" not in reply.text.lower() and "#123" not in reply.text
    assert "#999" in reply.text  # the customer's own number, in the hand-off that claims nothing
    assert not reply_guard.claimed_action(reply.text)
    assert Conversation.objects.get().status == "waiting"


def test_it_sends_the_staff_approved_variant_of_an_action_template(guarded_bot, staff_client):
    refund = AnswerTemplate.objects.get(intent="refund")
    variant = "I can't change orders myself; I'm passing this to an agent with your order number {order_id}."
    resp = staff_client.post(f"/support/templates/{refund.pk}/",
                             {"text": refund.text, "kind": "action", "informational_variant": variant})
    assert resp.status_code == 302 and resp["Location"] == "/support/templates/"
    refund.refresh_from_db()
    assert refund.kind_set_by == "staff" and refund.informational_variant == variant
    reply = ask("can I get a refund for order #999?")
    assert reply.handed_off and reply.text == variant.replace("{order_id}", "#999")
    assert Conversation.objects.get().status == "waiting"  # the refund itself needs a person


def test_staff_can_rewrite_a_template_as_informational(guarded_bot, staff_client):
    refund = AnswerTemplate.objects.get(intent="refund")
    text = "Hi {name}, refunds for order {order_id} go back to your card within 5 days of the return arriving."
    staff_client.post(f"/support/templates/{refund.pk}/", {"text": text, "kind": "informational"})
    reply = ask("My name is Zoe. Can I get a refund for order #999?")
    assert not reply.handed_off and reply.kind == "template"
    assert reply.text == "Hi Zoe, refunds for order #999 go back to your card within 5 days of the return arriving."


def test_it_refuses_a_variant_that_still_claims_an_action(guarded_bot, staff_client):
    refund = AnswerTemplate.objects.get(intent="refund")
    resp = staff_client.post(f"/support/templates/{refund.pk}/", {
        "text": refund.text, "kind": "action", "informational_variant": "I have refunded order {order_id}."})
    assert resp.status_code == 200 and "still claims an action" in resp.content.decode()
    refund.refresh_from_db()
    assert refund.informational_variant == "" and refund.kind_set_by == "auto"


def test_it_never_shows_another_customers_order_number_or_phone(guarded_bot):
    courier = AnswerTemplate.objects.get(intent="delivery_slot")
    assert "12345678901234" not in courier.text and not any(p in courier.text for p in GUARD_PHONES)
    assert {"order_id", "phone"} <= set(courier.slots)
    reply = ask("When will order 77777 be delivered?")
    assert reply.intent == "delivery_slot", reply
    assert "12345678901234" not in reply.text
    assert not any(p in reply.text for p in GUARD_PHONES)
    assert not reply_guard.open_placeholders(reply.text)
    # The phone is the courier's for that one customer: with none of its own the reply is withheld.
    assert reply.handed_off and any("{phone}" in w for w in reply.withheld)


def test_a_template_with_an_unset_shop_value_waits_for_staff_then_is_sent(guarded_bot, staff_client):
    line = AnswerTemplate.objects.get(intent="support_phone")
    assert line.text == "You can reach our support team on {{Customer Support Phone Number}}. Available 24/7."
    assert line.kind == "informational"
    assert [w.name for w in shop.waiting_templates()] == ["Customer Support Phone Number"]
    assert "Customer Support Phone Number" in staff_client.get("/support/").content.decode()
    before = ask("What is your phone number?")
    assert before.intent == "support_phone" and before.handed_off, before
    assert "{{" not in before.text and "Customer Support Phone Number" not in before.text

    resp = staff_client.post("/support/shop/", {"name": "customer support phone number", "value": "+49 30 555 0100"})
    assert resp.status_code == 302 and resp["Location"] == "/support/shop/"
    assert shop.waiting_templates() == []
    after = ask("What is your phone number?")
    assert not after.handed_off and after.kind == "template"
    assert after.text == "You can reach our support team on +49 30 555 0100. Available 24/7."


def test_the_shop_settings_page_needs_a_login_and_a_csrf_token(client, staff):
    from django.test import Client

    assert client.get("/support/shop/").status_code == 302  # to the login page
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(staff)
    assert strict.post("/support/shop/", {"name": "Opening hours", "value": "9-18"}).status_code == 403
    page = strict.get("/support/shop/")
    token = page.cookies["csrftoken"].value
    resp = strict.post("/support/shop/", {"name": "Opening hours", "value": "9:00-18:00", "csrfmiddlewaretoken": token})
    assert resp.status_code == 302
    follow = strict.get(resp["Location"]).content.decode()
    assert "Opening hours saved" in follow and "9:00-18:00" in follow
    bad = strict.post("/support/shop/", {"name": "Opening hours", "value": "{{Hours}}", "csrfmiddlewaretoken": token})
    assert bad.status_code == 302 and "placeholder" in strict.get("/support/shop/").content.decode()


def test_a_kb_answer_names_its_article(trained_bot):
    BotSettings.objects.update_or_create(pk=1, defaults={"threshold": 0.5, "kb_min_score": 0.45})
    reply = ask("Do you deliver to Canada, and how long does it take?")
    assert reply.kind == "kb" and "\u201cShipping abroad\u201d" in reply.text
    assert reply.sources[0]["title"] == "Shipping abroad" and reply.sources[0]["url"]


def test_a_streamed_llm_reply_stops_before_the_words_that_claim_an_action(client, trained_bot, settings):
    import json

    from django.core.cache import cache

    from apps.support.models import Message, WidgetKey
    from tests.apps.support.test_streaming import (
        KB_QUESTION,
        ORIGIN,
        LLMServer,
        parse,
        start_conversation,
        stream_args,
    )

    cache.clear()
    BotSettings.objects.update_or_create(pk=1, defaults={"threshold": 0.5})
    widget = WidgetKey.objects.create(name="shop", allowed_origins=[ORIGIN], rate_limit_per_minute=50)
    llm = LLMServer()
    llm.pieces = ["We have", " refunded", " order #123", " for you."]
    llm.release.set()
    settings.SUPPORT_LLM_URL, settings.AIGC_ALLOW_PRIVATE_URLS = llm.url, True
    try:
        conv = start_conversation(client, widget)
        events = [parse(c.decode()) for c in client.post(**stream_args(widget, conv, KB_QUESTION)).streaming_content]
    finally:
        llm.server.shutdown()
        cache.clear()
    shown = "".join(d["t"] for e, d in events if e == "token")
    assert "refunded" not in shown and "#123" not in shown, events
    stored = Message.objects.get(role="bot")
    assert stored.answer_kind == "kb" and "7 to 12 working days" in stored.text
    assert events[-2] == ("replace", {"t": stored.text}) and events[-1][1]["message"]["text"] == stored.text
    assert json.dumps(events).count("refunded") == 0


# -- the slots and the guard on their own --------------------------------------------------------

def test_available_24_7_survives_slot_extraction():
    text, slots = slot_lib.templatize("Hi Anna, our support team is available 24/7 on chat.", {"Anna"})
    assert text == "Hi {name}, our support team is available 24/7 on chat." and slots == ["name"]
    assert "date" not in slot_lib.extract_slots("are you available 24/7?")


@pytest.mark.parametrize("reply,template", [
    ("Your order 12345678901234 is ready.", "Your order {order_id} is ready."),
    ("I have refunded order #123.", "I have refunded order {order_id}."),
    ("Account number 4455-2231 is closed.", "Account number {account_id} is closed."),
    ("Call Tom on +44 20 7946 0958 or (555) 123-4567.", "Call Tom on {phone} or {phone}."),
    ("We refunded 23.50 EUR on 3 October to anna@example.com.", "We refunded {amount} on {date} to {email}."),
    ("See {{Order Number}} and [Company Name] at {{Website URL}}.", "See {order_id} and {{Company Name}} at {{Website URL}}."),
    ("Your parcel is out for delivery today, Freya.", "Your parcel is out for delivery today, {name}."),
    ("We accept Visa, Mastercard, PayPal and Klarna.", "We accept Visa, Mastercard, PayPal and Klarna."),
])
def test_it_turns_every_customer_value_into_a_slot(reply, template):
    assert slot_lib.templatize(reply)[0] == template


def test_a_value_many_conversations_share_is_the_shops_own():
    answers = {f"c{i}": [f"Call us on +49 30 901820, order #{i}00"] for i in range(ingest.SHOP_VALUE_MIN_CONVERSATIONS)}
    constants = ingest.shop_constants(answers)
    assert slot_lib.templatize("Call us on +49 30 901820, order #100", shop_constants=constants)[0] == \
        "Call us on +49 30 901820, order {order_id}"


@pytest.mark.parametrize("text", [
    "I have refunded order #123", "Your refund for order #552211 was issued on 1 October",
    "I've updated the delivery address", "The order has been cancelled.", "Your order 12345 is on its way.",
    "I'll refund the difference now.", "We will cancel it for you now.",
])
def test_the_guard_refuses_claimed_actions(text):
    assert [p.code for p in reply_guard.check_reply(text)] == ["action"]


@pytest.mark.parametrize("text", [
    "Refunds are issued within 2 days of your return arriving.", "You can reset your password from the login page.",
    "I can't change orders myself; I'm passing this to an agent with your order number #999.",
    "Our support team is available 24/7.", "Standard delivery costs 4.95 EUR.",
    "We will e-mail you when it is back in stock.",
])
def test_the_guard_lets_informational_text_through(text):
    assert reply_guard.check_reply(text) == []


def test_the_guard_refuses_open_placeholders_and_values_from_elsewhere():
    codes = {p.code for p in reply_guard.check_reply("Call {{Customer Support Phone Number}} or [Company Name] {x}")}
    assert codes == {"placeholder"}
    problems = reply_guard.check_reply("Your number is #40013.", allowed_text="refund order 55501")
    assert [(p.code, p.detail) for p in problems] == [("foreign_value", "#40013")]
    assert reply_guard.check_reply("About order #55501.", allowed_text="refund order 55501 please") == []
    assert [p.detail for p in reply_guard.check_reply("Sorted, Anna.", allowed_text="I'm Zoe")] == ["Anna"]
    assert reply_guard.check_reply("Sorted for you, Zoe.", allowed_text="I'm Zoe, hi") == []


def test_the_demo_transcripts_yield_no_informational_template_that_claims_an_action():
    from django.conf import settings

    data = (settings.BASE_DIR / "fixtures" / "support" / "transcripts.jsonl").read_bytes()
    ingest.ingest_transcripts(data, "transcripts.jsonl")
    kinds = {t.intent: t.kind for t in AnswerTemplate.objects.all()}
    assert kinds["price_match"] == kinds["refund_status"] == kinds["order_status"] == "action"
    assert kinds["store_hours"] == kinds["password_reset"] == kinds["shipping_cost"] == "informational"
    for tpl in AnswerTemplate.objects.filter(kind="informational"):
        filled = slot_lib.fill(tpl.text, {"name": "Zoe", "order_id": "#1", "email": "z@example.com"})[0]
        assert not reply_guard.check_reply(filled), tpl.text
    # The shipping fee every agent quotes is the shop's own and stays; customers' numbers do not.
    assert "4.95 EUR" in AnswerTemplate.objects.get(intent="shipping_cost").text


def test_the_templates_page_shows_each_kind_and_what_it_waits_for(staff_client):
    from django.test import Client

    ingest.ingest_transcripts(as_jsonl(guard_transcript_rows()), "guard.jsonl")
    assert Client().get("/support/templates/").status_code == 302  # staff only
    page = staff_client.get("/support/templates/").content.decode()
    refund = AnswerTemplate.objects.get(intent="refund")
    line = AnswerTemplate.objects.get(intent="support_phone")
    assert f'data-template="{refund.pk}" data-kind="action"' in page
    assert f'data-template="{line.pk}" data-kind="informational"' in page
    assert "waits for Customer Support Phone Number" in page
    edit = staff_client.get(f"/support/templates/{refund.pk}/").content.decode()
    assert 'name="informational_variant"' in edit and "csrfmiddlewaretoken" in edit
