"""The multi-head (topic + sentiment) classifier: trains on a small labelled set,
beats the majority class, registers versions, classifies news, learns from corrections."""
import pytest

from apps.common.jobs import enqueue
from apps.common.models import Job
from apps.sentiment import services, training
from apps.sentiment.models import Classification, NewsItem, TrendBucket

from .conftest import news

TEMPLATES = [
    ("{co} shares plunge after profit warning", "earnings", "negative"),
    ("{co} quarterly loss widens as sales collapse", "earnings", "negative"),
    ("{co} beats estimates as profit soars", "earnings", "positive"),
    ("{co} raises dividend after record earnings", "earnings", "positive"),
    ("{co} to report results next Tuesday", "earnings", "neutral"),
    ("{co} downgraded to junk as debt mounts", "credit", "negative"),
    ("{co} misses bond payment, default feared", "credit", "negative"),
    ("{co} upgraded by rating agency on lower debt", "credit", "positive"),
    ("{co} prices a bond offering due 2031", "credit", "neutral"),
    ("{co} fined by regulator over compliance failures", "regulation", "negative"),
    ("{co} wins regulatory approval for new drug", "regulation", "positive"),
    ("{co} says it will testify before lawmakers", "regulation", "neutral"),
]
TRAIN_COS = ["Acme", "Globex", "Initech", "Hooli", "Umbrella", "Stark", "Wayne", "Tyrell"]
VAL_COS = ["Cyberdyne", "Soylent", "Oscorp"]


def labelled(companies):
    rows = [(t.format(co=co), topic, sent) for co in companies for t, topic, sent in TEMPLATES]
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


@pytest.fixture(scope="module")
def trained():
    texts, topics, sents = labelled(TRAIN_COS)
    vt, vtop, vsent = labelled(VAL_COS)
    progress = []
    model, metrics = training.train_news_classifier(
        texts, topics, sents, vt, vtop, vsent, on_progress=lambda p, m: progress.append(p),
        topics=["earnings", "credit", "regulation"], epochs=12, lr=5e-3)
    return model, metrics, progress


def test_it_trains_one_multihead_model_that_beats_the_majority_class(trained):
    model, metrics, progress = trained
    assert set(model.config.heads) == {"topic", "sentiment"}
    for head in ("topic", "sentiment"):
        m = metrics[head]
        assert m["n"] == len(VAL_COS) * len(TEMPLATES)
        assert m["accuracy"] > m["majority_accuracy"] + 0.2, metrics
        assert m["macro_f1"] > 0.6, metrics
    assert progress and max(progress) >= 99


def test_it_gives_labels_with_probabilities(trained):
    model, *_ = trained
    (row,) = services.classify_texts(model, ["Northwind downgraded to junk as debt mounts"])
    assert row["sentiment"] == "negative" and row["topic"] == "credit"
    assert sum(row["probabilities"]["sentiment"].values()) == pytest.approx(1, abs=1e-3)
    assert 0.34 < row["sentiment_confidence"] <= 1


def test_it_trains_sentiment_only_when_there_are_no_topic_labels():
    texts, _, sents = labelled(TRAIN_COS[:4])
    model, metrics = training.train_news_classifier(texts, None, sents, epochs=3)
    assert list(model.config.heads) == ["sentiment"] and "topic" not in metrics


@pytest.mark.django_db
def test_it_trains_in_a_job_registers_a_version_and_classifies(settings, tmp_path, source, staff,
                                                                django_capture_on_commit_callbacks):
    from apps.common import engine
    from apps.sentiment.tasks import train_sentiment

    settings.AIGC_ARTIFACTS_DIR = tmp_path
    settings.SENTIMENT_TOPICS = ["earnings", "credit", "regulation"]
    engine.forget()
    texts, topics, sents = labelled(TRAIN_COS + VAL_COS)
    services.ingest_items([news(t, topic=tp, sentiment=s) for t, tp, s in zip(texts, topics, sents, strict=True)],
                          source, labelled=True)
    services.ingest_items([news("Initech shares soar on record profit")], source)  # unlabelled
    with django_capture_on_commit_callbacks(execute=True):
        job = enqueue(train_sentiment, "sentiment.train", epochs=3)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED, job.error
    assert job.result["version"] == 1 and job.result["classified"] == NewsItem.objects.count()
    # Held-out figures come from the calibration rows, not the validation rows the model chose on.
    assert job.result["metrics"]["sentiment"]["n"] == job.result["heldout_size"] > 0
    assert job.result["metrics"]["validation"]["sentiment"]["n"] == job.result["val_size"] > 0
    assert job.result["mode"] == "head" and "quick" in job.result["mode_reason"]
    reg = engine.registry()
    assert reg.current("sentiment.news").version == 1
    assert set(Classification.objects.values_list("model_version", flat=True)) == {1}
    assert TrendBucket.objects.filter(size="1d", scope="topic").exists()

    item = NewsItem.objects.get(headline="Initech shares soar on record profit")
    services.correct_label(item, staff, topic="earnings", sentiment="positive")
    with django_capture_on_commit_callbacks(execute=True):
        job2 = enqueue(train_sentiment, "sentiment.train", epochs=1)
    job2.refresh_from_db()
    assert job2.state == Job.State.SUCCEEDED, job2.error
    v1, v2 = sorted(reg.versions("sentiment.news"), key=lambda v: v.version)
    assert v2.version == 2 and v1.data_hash != v2.data_hash  # the correction is in the training data
    engine.forget()


@pytest.mark.django_db
def test_it_refuses_to_train_without_labels(settings, tmp_path):
    settings.AIGC_ARTIFACTS_DIR = tmp_path
    with pytest.raises(ValueError, match="labelled items"):
        training.train_from_db(lambda p, m: None)
