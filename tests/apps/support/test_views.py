import pytest

from apps.support import services
from apps.support.models import BotSettings, Conversation, IntentCluster, Message, TranscriptPair, WidgetKey

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/support/", "/support/inbox/", "/support/widget-keys/"])
def test_it_requires_staff_login(client, outsider, path):
    assert client.get(path).status_code == 302
    client.force_login(outsider)
    assert client.get(path).status_code == 302


def test_it_shows_versions_curve_and_metrics(staff_client, trained_bot):
    conv = Conversation.objects.create()
    services.answer_message(conv, "What is the boiling point of mercury in Kelvin?")
    page = staff_client.get("/support/").content.decode()
    assert 'data-version="1"' in page and "live" in page
    assert "support-chart-data" in page and '"curve": [{"coverage": 1.0' in page
    assert "vendor/chartjs/chart.umd.js" in page
    assert "boiling point of mercury" in page  # listed as unanswered


def test_it_lists_waiting_conversations_first(staff_client):
    bot = Conversation.objects.create(status="bot")
    Message.objects.create(conversation=bot, role="customer", text="thanks")
    waiting = Conversation.objects.create(status="waiting")
    Message.objects.create(conversation=waiting, role="customer", text="help me")
    page = staff_client.get("/support/inbox/list/?status=all").content.decode()
    assert page.index(f'data-conversation="{waiting.pk}"') < page.index(f'data-conversation="{bot.pk}"')


def test_it_sends_an_agent_reply_and_escapes_text(staff_client, staff):
    conv = Conversation.objects.create(status="waiting")
    Message.objects.create(conversation=conv, role="customer", text="<img src=x onerror=alert(1)>")
    page = staff_client.get(f"/support/inbox/{conv.pk}/").content.decode()
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    resp = staff_client.post(f"/support/inbox/{conv.pk}/reply/", {"text": "On it!"}, HTTP_HX_REQUEST="true")
    assert resp.status_code == 200 and "On it!" in resp.content.decode()
    conv.refresh_from_db()
    assert conv.status == "agent" and conv.assigned_to == staff


def test_it_gives_agent_assist_suggestions(staff_client, trained_bot):
    conv = Conversation.objects.create(status="waiting")
    Message.objects.create(conversation=conv, role="customer", text="refund order 55555 please, it is broken")
    page = staff_client.post(f"/support/inbox/{conv.pk}/assist/", {"text": "I have started"}).content.decode()
    assert "started a refund for order #55555" in page


def test_it_sets_the_threshold_and_rejects_nonsense(staff_client):
    staff_client.post("/support/threshold/", {"threshold": "0.73"})
    assert BotSettings.get().threshold == pytest.approx(0.73)
    staff_client.post("/support/threshold/", {"threshold": "7"})
    assert BotSettings.get().threshold == pytest.approx(0.73)


def test_it_turns_an_unanswered_question_into_a_template(staff_client):
    staff_client.post("/support/unanswered/template/", {"question": "Do you sell tents?", "intent": "tents",
                                                         "text": "Yes, we sell tents for 2 to 6 people."})
    pair = TranscriptPair.objects.get(question="Do you sell tents?")
    assert pair.template.source == "staff" and pair.label == "tents"


def test_it_names_a_cluster(staff_client):
    cluster = IntentCluster.objects.create(size=2, examples=["a", "b"])
    staff_client.post(f"/support/clusters/{cluster.pk}/name/", {"name": "greeting"})
    assert IntentCluster.objects.get().name == "greeting"


def test_it_creates_widget_keys_and_serves_the_demo_page(staff_client, client):
    staff_client.post("/support/widget-keys/", {"name": "demo", "origins": "http://127.0.0.1:8000, http://localhost:8000"})
    key = WidgetKey.objects.get()
    assert key.allowed_origins == ["http://127.0.0.1:8000", "http://localhost:8000"]
    page = client.get("/support/widget-demo/").content.decode()
    assert f'data-key="{key.public_key}"' in page and "support/widget.js" in page


def test_it_serves_kb_articles_publicly_with_escaped_text(client):
    from apps.support.ingest import Document, ingest_kb

    ingest_kb([Document(name="returns.md", text="# Returns\n\nSend it back <script>x()</script> within 30 days.")])
    page = client.get("/support/kb/returns/").content.decode()
    assert "<h1>Returns</h1>" in page and "&lt;script&gt;" in page and "<script>x()" not in page
