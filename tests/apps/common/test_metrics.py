"""GET /metrics: the Prometheus series the operators alert on, in the text format."""
from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from apps.common import engine
from apps.common.models import Job
from apps.sentiment import conf, services
from apps.sentiment.models import (
    Delivery,
    DeliveryAttempt,
    NewsItem,
    NewsSource,
    WebhookMessage,
    WebhookSubscription,
)
from tests.reliability.conftest import tiny_model  # noqa: F401 - the session fixture

pytestmark = pytest.mark.django_db


def _series(text: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def test_metrics_expose_latency_queues_jobs_webhooks_and_inference(client, sentiment_api, tiny_model, settings,  # noqa: F811
                                                                   tmp_path):
    settings.AIGC_ARTIFACTS_DIR = tmp_path / "artifacts"
    engine.forget()
    engine.registry().save(conf.MODEL_NAME, writer=tiny_model.save)
    src = NewsSource.objects.create(name="wire")
    for i in range(3):
        NewsItem.objects.create(source=src, url=f"https://m.example.com/{i}", headline=f"Acme shares plunge {i}",
                                published_at="2026-10-01T00:00:00Z", content_hash=f"m{i}")
    try:
        assert services.classify_pending()["stored"] == 3
    finally:
        engine.forget()
    Job.objects.create(kind="sentiment.classify", state="succeeded")
    sub = WebhookSubscription.objects.create(url="https://hooks.example.com/x", secret="whsec_x")
    msg = WebhookMessage.objects.create(event_id="evt_1", event_type="alert.fired", payload={})
    d = Delivery.objects.create(message=msg, subscription=sub)
    DeliveryAttempt.objects.create(delivery=d, attempt_no=1, status="failed", response_code=500)
    DeliveryAttempt.objects.create(delivery=d, attempt_no=2, status="succeeded", response_code=200)
    assert sentiment_api.get("/sentiment/api/news/").status_code == 200

    r = client.get("/metrics")
    assert r.status_code == 200 and r["Content-Type"].startswith("text/plain")
    s = _series(r.content.decode())
    views = {x.labels["view"] for x in s["aigc_http_request_duration_seconds_count"]}
    assert "sentiment:api-news" in views or any("news" in v for v in views), views
    assert {x.labels["queue"] for x in s["aigc_queue_depth"]} == {"default", "train", "deliver"}
    jobs = {(x.labels["kind"], x.labels["state"]): x.value for x in s["aigc_jobs"]}
    assert jobs[("sentiment.classify", "succeeded")] == 1
    outcomes = {x.labels["status"]: x.value for x in s["aigc_webhook_delivery_attempts"]}
    assert outcomes == {"failed": 1, "succeeded": 1}
    inference = {x.labels["model"]: x.value for x in s["aigc_model_inference_seconds_count"]}
    assert inference[conf.MODEL_NAME] >= 1
    assert s["aigc_classify_pending"][0].value == 0
    assert s["aigc_classify_pending_limit"][0].value == settings.AIGC_INGEST_PENDING_LIMIT
