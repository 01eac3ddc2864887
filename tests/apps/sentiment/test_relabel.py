"""Re-labelling stored items after a promote: v1's labels become v2's, the trends are
a recount of the new labels, and a failed job leaves v1's labels and trends alone."""
from collections import Counter

import pytest
import torch

from apps.common import engine
from apps.sentiment import conf, relabel, services
from apps.sentiment.models import Classification, TrendBucket

from .conftest import make_item

SENTIMENTS = ["negative", "neutral", "positive"]
TOPICS = ["credit", "earnings"]


def constant_model(sentiment: str, topic: str):
    """A head-mode classifier that always says (topic, sentiment): weights 0, one big bias."""
    from aigc_core.models.classifier import ClassifierConfig, EncoderClassifier

    model = EncoderClassifier(ClassifierConfig(heads={"topic": TOPICS, "sentiment": SENTIMENTS}, mode="head",
                                               hidden=0))
    with torch.no_grad():
        for head, label in (("topic", TOPICS.index(topic)), ("sentiment", SENTIMENTS.index(sentiment))):
            linear = model.heads[head][1]
            linear.weight.zero_()
            linear.bias.fill_(-5.0)
            linear.bias[label] = 5.0
    return model


def register(model) -> int:
    return engine.registry().save(conf.MODEL_NAME, writer=model.save, metrics={}, promote=True).version


def buckets() -> dict:
    return {(b.scope, b.key, b.size, b.start): (b.count, b.negative_count, b.sentiment_sum)
            for b in TrendBucket.objects.all()}


@pytest.fixture
def v1_labelled(settings, tmp_path, db):
    settings.AIGC_ARTIFACTS_DIR = tmp_path
    engine.forget()
    register(constant_model("negative", "credit"))
    for i in range(5):
        make_item(f"Story {i}", classified=False, tickers=["ACME"] if i % 2 else [])
    services.classify_pending()
    assert set(Classification.objects.values_list("sentiment", "model_version")) == {("negative", 1)}
    yield
    engine.forget()


def test_it_relabels_items_with_the_promoted_version_and_recounts_trends(v1_labelled):
    register(constant_model("positive", "earnings"))
    progress = []
    result = relabel.relabel_items(lambda p, m: progress.append(p))
    assert result["relabelled"] == 5 and result["changed"] == 5 and result["model_version"] == 2
    assert set(Classification.objects.values_list("topic", "sentiment", "model_version")) == {
        ("earnings", "positive", 2)}
    assert progress[-1] == 100
    # The trends are exactly a count of the new labels: 5 earnings items, 0 negative, sum +5 per window.
    stored = buckets()
    topic_day = {k: v for k, v in stored.items() if k[0] == "topic" and k[2] == "1d"}
    assert {k[1] for k in topic_day} == {"earnings"}
    assert sum(v[0] for v in topic_day.values()) == 5 and sum(v[1] for v in topic_day.values()) == 0
    assert sum(v[2] for v in topic_day.values()) == 5
    company_day = Counter()
    for k, v in stored.items():
        if k[0] == "company" and k[2] == "1d":
            company_day[k[1]] += v[0]
    assert company_day == {"ACME": 2}
    assert relabel.relabel_items()["relabelled"] == 0  # nothing left from another version


def test_a_staff_correction_stays_the_effective_label(v1_labelled, staff):
    item = Classification.objects.order_by("id").first().item
    services.correct_label(item, staff, sentiment="neutral")
    register(constant_model("positive", "earnings"))
    relabel.relabel_items()
    cls = Classification.objects.get(item=item)
    assert cls.sentiment == "neutral" and cls.predicted_sentiment == "positive" and cls.model_version == 2


def test_a_failed_job_leaves_the_old_labels_and_trends(v1_labelled, monkeypatch):
    register(constant_model("positive", "earnings"))
    before = buckets()
    monkeypatch.setattr(conf, "CLASSIFY_BATCH", 2)
    calls = {"n": 0}
    real = services.classify_texts

    def flaky(model, texts):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("worker lost mid-way")
        return real(model, texts)

    monkeypatch.setattr(services, "classify_texts", flaky)
    with pytest.raises(RuntimeError, match="mid-way"):
        relabel.relabel_items()
    assert set(Classification.objects.values_list("sentiment", "model_version")) == {("negative", 1)}
    assert buckets() == before
