"""Agent-assist reads the whole conversation and shows only what clears its floors."""
import pytest

from apps.support import services
from apps.support.models import Conversation, Message

pytestmark = pytest.mark.django_db


def _thread(*turns):
    conv = Conversation.objects.create(status="waiting")
    for role, text in turns:
        Message.objects.create(conversation=conv, role=role, text=text)
    return conv


def test_it_suggests_nothing_for_an_unrelated_thread(trained_bot, staff_client):
    conv = _thread(("customer", "Can you recommend a good pizza place nearby?"),
                   ("customer", "Somewhere with a terrace would be lovely."))
    assist = services.agent_assist(conv, draft="Sure, the best one is")
    assert assist["ready"] and assist["suggestions"] == []
    assert "Nothing relevant" in staff_client.post(f"/support/inbox/{conv.pk}/assist/").content.decode()


def test_it_reads_the_whole_thread_not_only_the_last_line(trained_bot):
    conv = _thread(("customer", "Order #55555 arrived broken, I want my money back"),
                   ("agent", "Sorry to hear that, let me check."),
                   ("customer", "Thanks, I'll wait here."))
    bot = services.load_bot()
    assert bot.suggest_for_thread([("customer", "Thanks, I'll wait here.")]) == []  # the last line alone
    suggestions = services.agent_assist(conv)["suggestions"]
    assert suggestions and suggestions[0]["intent"] == "refund"
    assert "#55555" in suggestions[0]["filled"]
    assert all(s["score"] >= bot.meta["assist_floor"] for s in suggestions)


def test_it_hides_a_completion_the_model_is_unsure_of(trained_bot):
    bot = services.load_bot()
    draft = "Quantum zebras"
    text, likelihood = bot.complete_with_likelihood(draft)
    floor = bot.meta["lm_floor"]
    assert 0.0 < floor < 1.0
    assert bot.complete(draft) == (text if text and likelihood >= floor else "")
    bot.meta["lm_floor"] = 1.01  # nothing is that likely: nothing is shown
    assert bot.complete("Your order") == ""
