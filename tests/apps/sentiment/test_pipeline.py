"""End to end on a real worker: a burst pushed through the API is classified, fires
an alert in its open window, and arrives at a loopback receiver as a signed webhook."""
from datetime import timedelta

import pytest
from django.utils import timezone
from standardwebhooks import Webhook

from apps.sentiment import training, webhooks
from apps.sentiment.models import Alert, AlertRule
from tests.conftest import wait_for

from .conftest import make_item
from .receiver import Receiver
from .test_classifier import TRAIN_COS, labelled


@pytest.fixture
def registered_model(settings, tmp_path):
    """A tiny sentiment.news model in a fresh registry, which the worker (started after) reads."""
    from apps.common import engine

    settings.AIGC_ARTIFACTS_DIR = tmp_path
    engine.forget()

    texts, topics, sents = labelled(TRAIN_COS)
    model, _ = training.train_news_classifier(texts, topics, sents, topics=["earnings", "credit", "regulation"],
                                              epochs=12, lr=5e-3)
    engine.registry().save("sentiment.news", writer=model.save, metrics={}, promote=True)
    yield
    engine.forget()


@pytest.mark.worker
def test_it_delivers_a_signed_alert_for_a_burst_pushed_through_the_api(registered_model, live_worker, settings,
                                                                       sentiment_api):
    settings.AIGC_ALLOW_PRIVATE_URLS = True
    now = timezone.now()
    for k in range(1, 13):  # quiet credit news for the day before the burst (the detector's warm-up)
        make_item(topic="credit", sentiment="neutral", published_at=now - timedelta(hours=2 * k + 1))
    AlertRule.objects.create(name="credit 5m", scope="topic", key="credit", metric="negative_count", window="5m",
                             min_volume=3)
    with Receiver() as rx:
        sub = webhooks.create_subscription(rx.url, event_types=["alert.firing"])
        burst = [{"url": f"https://burst.example/{i}", "headline": f"{co} downgraded to junk as debt mounts"}
                 for i, co in enumerate(["Cyberdyne", "Soylent", "Oscorp", "Northwind"])]
        r = sentiment_api.post("/sentiment/api/news/", {"source": "wire", "items": burst}, format="json")
        assert r.status_code == 201 and r.json()["created"] == 4
        wait_for(lambda: rx.requests, timeout=120, what="the alert webhook")
        (req,) = rx.requests
    payload = Webhook(sub.secret).verify(req["body"], req["headers"])
    alert = Alert.objects.get()
    assert payload["type"] == "alert.firing" and payload["data"]["alert_id"] == alert.pk
    assert alert.state == "firing" and alert.items.count() == 4
    assert sorted(i["url"] for i in payload["data"]["items"]) == sorted(b["url"] for b in burst)
