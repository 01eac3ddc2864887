import pytest

from apps.support import ingest
from apps.support.models import AnswerTemplate, IntentCluster, KBArticle, KBChunk, TranscriptPair
from tests.apps.support.factories import KB, as_jsonl, transcript_rows

pytestmark = pytest.mark.django_db


def test_it_pairs_questions_with_answers_and_groups_templates():
    result = ingest.ingest_transcripts(as_jsonl(transcript_rows(repeat=2)), "t.jsonl")
    assert result.pairs == 24 == TranscriptPair.objects.count()
    pair = TranscriptPair.objects.filter(intent="refund").first()
    assert "order #" in pair.question and "started a refund" in pair.answer
    # 24 concrete replies with different names and order numbers collapse into 3 templates.
    assert AnswerTemplate.objects.count() == 3
    shipping = AnswerTemplate.objects.get(intent="order_status")
    assert shipping.text == "Hi {name}, your order {order_id} shipped yesterday and should arrive within 3 days."
    assert set(shipping.slots) == {"name", "order_id"} and shipping.uses == 8


def test_it_merges_a_second_import_into_existing_templates():
    ingest.ingest_transcripts(as_jsonl(transcript_rows(repeat=1)), "a.jsonl")
    other = [{**r, "conversation_id": "b-" + r["conversation_id"]} for r in transcript_rows(repeat=1)]
    ingest.ingest_transcripts(as_jsonl(other), "b.jsonl")
    assert AnswerTemplate.objects.count() == 3
    assert TranscriptPair.objects.count() == 24


def test_it_reads_csv_and_clusters_unlabelled_questions():
    rows = transcript_rows(repeat=1, intents=False)
    lines = ["conversation_id,speaker,text,time"] + [
        f'{r["conversation_id"]},{r["speaker"]},"{r["text"]}",{r["time"]}' for r in rows
    ]
    result = ingest.ingest_transcripts("\n".join(lines), "t.csv")
    assert result.pairs == 12
    assert IntentCluster.objects.count() >= 2
    biggest = IntentCluster.objects.first()
    ingest.name_cluster(biggest, "named_intent")
    labels = {p.label for p in TranscriptPair.objects.filter(cluster=biggest)}
    assert labels == {"named_intent"}


def test_it_reports_bad_lines_and_imports_nothing():
    text = as_jsonl(transcript_rows(repeat=1)).splitlines()
    text.insert(3, '{"conversation_id": "x", "speaker": "robot", "text": "beep"}')
    text.insert(6, "{not json")
    with pytest.raises(ingest.IngestError) as err:
        ingest.ingest_transcripts("\n".join(text), "bad.jsonl")
    assert "line 4: speaker must be customer or agent" in str(err.value)
    assert "line 7 is not valid JSON" in str(err.value)
    assert TranscriptPair.objects.count() == 0 and AnswerTemplate.objects.count() == 0


def test_it_refuses_a_csv_without_the_needed_columns():
    with pytest.raises(ingest.IngestError, match="line 1: the CSV header lacks speaker"):
        ingest.ingest_transcripts("conversation_id,who,text\n1,customer,hi\n", "t.csv")


def test_it_chunks_kb_articles_and_replaces_them_on_reimport():
    docs = [ingest.Document(name=n, text=t) for n, t in KB.items()]
    out = ingest.ingest_kb(docs)
    assert out["articles"] == 2
    art = KBArticle.objects.get(slug="shipping-abroad")
    assert art.title == "Shipping abroad"
    assert [c.heading for c in art.chunks.all()] == ["", "Customs"]
    ingest.ingest_kb([ingest.Document(name="gift-cards.md", text="# Gift cards\n\nNew text.")])
    assert KBChunk.objects.filter(article__slug="gift-cards").get().text == "New text."
    assert KBArticle.objects.count() == 2
