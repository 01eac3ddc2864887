"""Two workers classifying at once (found by the soak: on PostgreSQL a second
classify job inserted rows the first had stored after its check, failed with
a unique violation, and its job was marked failed). The race is made
deterministic here: another job's row appears between this job's check and
its insert. The job must finish, store every item once, and count in the
trends only what it stored itself."""
from __future__ import annotations

import pytest

from apps.common import engine
from apps.sentiment import conf, services
from apps.sentiment.models import Classification, NewsItem, NewsSource, TrendBucket


@pytest.mark.django_db
def test_it_finishes_a_classify_job_that_races_another(tiny_model, settings, tmp_path, monkeypatch):
    settings.AIGC_ARTIFACTS_DIR = tmp_path / "artifacts"
    engine.forget()
    engine.registry().save(conf.MODEL_NAME, writer=tiny_model.save)
    src = NewsSource.objects.create(name="wire")
    items = [NewsItem.objects.create(source=src, url=f"https://n.example.com/{i}", headline=f"Acme news {i}",
                                     published_at="2026-10-01T00:00:00Z", content_hash=f"h{i}") for i in range(5)]
    real_filter = Classification.objects.filter

    def check_before_the_other_job_commits(*args, **kwargs):
        # This job's "already classified?" check runs first and sees nothing; then the
        # other worker's row for the first item is committed, before this job inserts.
        monkeypatch.setattr(Classification.objects, "filter", real_filter)
        answer = Classification.objects.none()
        Classification.objects.create(item=items[0], topic="credit", sentiment="negative",
                                      topic_confidence=0.5, sentiment_confidence=0.5)
        return answer

    monkeypatch.setattr(Classification.objects, "filter", check_before_the_other_job_commits)
    try:
        out = services.classify_pending()
    finally:
        engine.forget()
    assert out["classified"] == 5
    assert Classification.objects.count() == 5
    assert set(Classification.objects.values_list("item_id", flat=True)) == {i.pk for i in items}
    hourly_topic = TrendBucket.objects.filter(scope="topic", size="1h")
    assert sum(hourly_topic.values_list("count", flat=True)) == 4  # the other job counts its own item
