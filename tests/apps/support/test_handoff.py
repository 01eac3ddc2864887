"""The hand-off flow (apps/support/handoff.py) and the inbox's open / pending / resolved views."""
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.support import handoff, services
from apps.support.models import Conversation, Message

pytestmark = pytest.mark.django_db


def test_it_words_a_visitor_request_differently_from_a_bot_hand_off(trained_bot):
    asked = Conversation.objects.create()
    handoff.request_agent(asked, "https://shop.example.com/cart")
    unsure = Conversation.objects.create()
    services.answer_message(unsure, "What is the boiling point of mercury in Kelvin?")
    asked.refresh_from_db()
    unsure.refresh_from_db()
    assert (asked.status, asked.handoff_reason, asked.page_url) == ("waiting", "visitor", "https://shop.example.com/cart")
    assert unsure.status == "waiting" and unsure.handoff_reason == "bot"
    said = [c.messages.get(role="bot").text for c in (asked, unsure)]
    assert said[0] == handoff.VISITOR_ASKED_TEXT and said[0] != said[1] and "not sure" in said[1]
    handoff.request_agent(asked)  # asking again adds nothing
    assert asked.messages.count() == 1


def test_it_queues_messages_while_waiting_and_the_bot_stays_quiet(trained_bot):
    conv = Conversation.objects.create()
    handoff.request_agent(conv)
    reply = services.answer_message(conv, "How can I reset my password?")
    assert reply.kind == "queued" and reply.text == handoff.QUEUED_ACK and reply.message_id is None
    assert list(conv.messages.values_list("role", "answer_kind")) == [("bot", "handoff"), ("customer", "queued")]


def test_the_expected_wait_is_the_median_first_reply_of_recent_hand_offs(staff):
    assert handoff.expected_wait() == {"seconds": None, "waiting": 0, "text": handoff.wait_text(None)}
    now = timezone.now()
    for minutes in (2, 4, 30):
        c = Conversation.objects.create(status="waiting", handed_off_at=now - timedelta(hours=1))
        Conversation.objects.filter(pk=c.pk).update(handed_off_at=now - timedelta(minutes=minutes + 60))
        c.refresh_from_db()
        handoff.agent_reply(c, "hello", staff)
        Conversation.objects.filter(pk=c.pk).update(first_agent_reply_at=c.handed_off_at + timedelta(minutes=minutes))
    old = Conversation.objects.create(status="closed", handed_off_at=now - timedelta(days=30),
                                      first_agent_reply_at=now - timedelta(days=29))  # outside the window
    assert old.pk
    Conversation.objects.create(status="waiting", handed_off_at=now)
    wait = handoff.expected_wait()
    assert wait["seconds"] == 240 and wait["waiting"] == 1 and "about 4 minutes" in wait["text"]


def test_agent_replies_carry_the_agents_name_and_a_second_reply_keeps_the_first_time(staff):
    staff.first_name = "Priya"
    staff.save()
    conv = Conversation.objects.create()
    handoff.request_agent(conv)
    first = handoff.agent_reply(conv, "Hi!", staff)
    at = Conversation.objects.get(pk=conv.pk).first_agent_reply_at
    handoff.agent_reply(conv, "Anything else?", staff)
    conv.refresh_from_db()
    assert conv.first_agent_reply_at == at and conv.assigned_to == staff and conv.status == "agent"
    assert handoff.agent_name(first.author) == "Priya" and handoff.visitor_state(conv)["agent"] == "Priya"


def test_close_reopen_pending_and_csat(staff):
    conv = Conversation.objects.create()
    handoff.request_agent(conv)
    with pytest.raises(services.SupportError, match="once it is closed"):
        handoff.rate_conversation(conv, 5)
    handoff.agent_reply(conv, "Done", staff)
    handoff.close_conversation(conv, staff)
    state = handoff.visitor_state(conv)
    assert state["status"] == "closed" and state["closed"]["by"] == "staff" and state["closed"]["rating"] is None
    for bad in (0, 6, True, "5", 4.5, None, {}, [1]):
        with pytest.raises(services.SupportError, match="1 to 5"):
            handoff.rate_conversation(conv, bad)
    with pytest.raises(services.SupportError, match="comment"):
        handoff.rate_conversation(conv, 3, "x" * 501)
    handoff.rate_conversation(conv, 5, "  great  ")
    assert handoff.visitor_state(conv)["closed"]["rating"] == 5 and conv.csat_comment == "great"
    handoff.reopen(conv)
    assert conv.status == "agent"  # an agent had answered
    handoff.return_to_bot(conv)
    assert conv.status == "bot"


def test_the_inbox_filters_open_pending_resolved_and_by_site(staff_client):
    rows = {s: Conversation.objects.create(status=s, origin=f"https://{s}.example") for s in
            ("waiting", "agent", "bot", "closed")}
    for c in rows.values():
        Message.objects.create(conversation=c, role="customer", text=f"from {c.status}")
    assert [c.status for c in handoff.inbox("open")] == ["waiting", "agent"]
    assert [c.status for c in handoff.inbox("pending")] == ["bot"]
    assert [c.status for c in handoff.inbox("resolved")] == ["closed"]
    assert handoff.inbox_counts() == {"open": 2, "pending": 1, "resolved": 1}
    page = staff_client.get("/support/inbox/").content.decode()  # open by default
    assert f'data-conversation="{rows["waiting"].pk}"' in page and f'data-conversation="{rows["bot"].pk}"' not in page
    page = staff_client.get("/support/inbox/list/?status=resolved").content.decode()
    assert f'data-conversation="{rows["closed"].pk}"' in page and f'data-conversation="{rows["agent"].pk}"' not in page
    page = staff_client.get("/support/inbox/list/?status=all&origin=https://agent.example").content.decode()
    assert page.count("data-conversation=") == 1 and "https://agent.example" in page


def test_the_api_lists_by_inbox_view(support_api):
    Conversation.objects.create(status="waiting")
    Conversation.objects.create(status="bot")
    got = support_api.get("/support/api/conversations/?status=open").json()["results"]
    assert [c["status"] for c in got] == ["waiting"]
    assert support_api.get("/support/api/conversations/?status=pending").json()["results"][0]["status"] == "bot"


def test_staff_resolve_reopen_and_return_to_bot_from_the_conversation_page(staff_client, staff):
    conv = Conversation.objects.create(status="waiting", page_url="https://shop.example.com/p/1")
    page = staff_client.get(f"/support/inbox/{conv.pk}/").content.decode()
    assert "https://shop.example.com/p/1" in page and "Resolve" in page
    staff_client.post(f"/support/inbox/{conv.pk}/close/")
    conv.refresh_from_db()
    assert conv.status == "closed" and conv.closed_by == staff and conv.closed_at
    staff_client.post(f"/support/inbox/{conv.pk}/reopen/")
    conv.refresh_from_db()
    assert conv.status == "waiting"
    staff_client.post(f"/support/inbox/{conv.pk}/pending/")
    conv.refresh_from_db()
    assert conv.status == "bot"
