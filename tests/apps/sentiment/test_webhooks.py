"""Signed webhooks (Standard Webhooks) against a real receiver on loopback."""
import os

import pytest
from django.db import transaction
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from apps.sentiment import webhooks
from apps.sentiment.models import Delivery, DeliveryAttempt, WebhookMessage, WebhookSubscription
from tests.conftest import LiveWorker, wait_for

from .receiver import Receiver


@pytest.fixture
def allow_private(settings):
    settings.AIGC_ALLOW_PRIVATE_URLS = True


def _publish(event_type="alert.firing", scope_key="topic:credit", data=None):
    return webhooks.publish(event_type, data or {"alert_id": 1, "key": "credit"}, scope_key=scope_key)


@pytest.mark.django_db
def test_it_signs_so_the_standardwebhooks_package_verifies(allow_private, django_capture_on_commit_callbacks):
    with Receiver() as rx:
        sub = webhooks.create_subscription(rx.url)
        assert sub.secret.startswith("whsec_")
        with django_capture_on_commit_callbacks(execute=True):
            msg = _publish()
        (req,) = rx.requests
    payload = Webhook(sub.secret).verify(req["body"], req["headers"])
    assert payload["type"] == "alert.firing" and payload["data"]["key"] == "credit"
    assert req["headers"]["webhook-id"] == msg.event_id and msg.event_id.startswith("msg_")
    with pytest.raises(WebhookVerificationError):
        Webhook(webhooks.WebhookSubscription().secret).verify(req["body"], req["headers"])  # another secret
    attempt = DeliveryAttempt.objects.get()
    assert (attempt.status, attempt.response_code) == ("succeeded", 200) and attempt.latency_ms > 0
    assert Delivery.objects.get().state == "succeeded"


@pytest.mark.django_db
def test_it_refuses_a_private_address_when_not_allowed(settings):
    settings.AIGC_ALLOW_PRIVATE_URLS = False
    for url in ["http://127.0.0.1:9/hook", "http://10.1.2.3/hook", "http://[::1]/x", "http://localhost/x"]:
        with pytest.raises(webhooks.SubscriptionError, match="private"):
            webhooks.create_subscription(url)
    with pytest.raises(webhooks.SubscriptionError, match="http"):
        webhooks.create_subscription("file:///etc/passwd")
    assert not WebhookSubscription.objects.exists()


@pytest.mark.django_db
def test_it_refuses_at_send_time_a_url_that_became_private(settings):
    settings.AIGC_ALLOW_PRIVATE_URLS = True
    with Receiver() as rx:
        WebhookSubscription.objects.create(url=rx.url)
        settings.AIGC_ALLOW_PRIVATE_URLS = False
        msg = _publish()
        d = Delivery.objects.get(message=msg)
        webhooks.attempt_delivery(d.pk, 1)
        assert rx.requests == []
    d.refresh_from_db()
    attempt = d.attempt_log.get()
    assert d.state == "failed" and "private" in attempt.error  # permanent: no retries


@pytest.mark.django_db
def test_it_retries_with_back_off_and_claims_each_attempt_once(allow_private, settings):
    settings.SENTIMENT_WEBHOOK_RETRY_DELAYS = [300, 1800]
    with Receiver([500, 503, 500]) as rx:
        WebhookSubscription.objects.create(url=rx.url)
        d = Delivery.objects.get(message=_publish())
        assert webhooks.attempt_delivery(d.pk, 1).response_code == 500
        assert webhooks.attempt_delivery(d.pk, 1) is None  # a duplicate task for attempt 1 does nothing
        d.refresh_from_db()
        assert d.state == "pending" and 299 < (d.next_attempt_at - d.attempt_log.get().at).total_seconds() < 301
        webhooks.attempt_delivery(d.pk, 2)
        webhooks.attempt_delivery(d.pk, 3)
        ids = {r["headers"]["webhook-id"] for r in rx.requests}
    d.refresh_from_db()
    assert d.state == "failed" and d.attempts == 3 and len(ids) == 1
    assert list(d.attempt_log.values_list("response_code", flat=True)) == [500, 503, 500]
    assert WebhookSubscription.objects.get().consecutive_failures == 1


@pytest.mark.django_db
def test_it_disables_a_subscription_after_failed_messages_and_resends_in_order(allow_private, settings,
                                                                               django_capture_on_commit_callbacks):
    settings.SENTIMENT_WEBHOOK_RETRY_DELAYS = []
    settings.SENTIMENT_WEBHOOK_DISABLE_AFTER = 2
    with Receiver([500, 500]) as rx:
        sub = WebhookSubscription.objects.create(url=rx.url)
        first, second = _publish(data={"n": 1}), _publish(data={"n": 2})
        for msg in (first, second):
            webhooks.attempt_delivery(Delivery.objects.get(message=msg).pk, 1)
        sub.refresh_from_db()
        assert not sub.enabled and "2 messages in a row" in sub.disabled_reason
        third = _publish(data={"n": 3})
        assert third.deliveries.get().state == "failed"  # disabled: kept unsent for the re-send
        assert len(rx.requests) == 2
        with django_capture_on_commit_callbacks(execute=True):
            resent = webhooks.resend(sub)
        assert len(resent) == 3
        bodies = [r["body"] for r in rx.requests[2:]]
        ids = [r["headers"]["webhook-id"] for r in rx.requests]
    assert [b'"n":1' in bodies[0], b'"n":2' in bodies[1], b'"n":3' in bodies[2]] == [True, True, True]  # creation order
    assert ids == [first.event_id, second.event_id, first.event_id, second.event_id, third.event_id]
    sub.refresh_from_db()
    assert sub.enabled and sub.consecutive_failures == 0
    assert set(Delivery.objects.values_list("state", flat=True)) == {"succeeded"}


@pytest.mark.django_db
def test_it_filters_by_event_type_and_scope(allow_private):
    a = WebhookSubscription.objects.create(url="https://a.example/h", event_types=["alert.resolved"])
    b = WebhookSubscription.objects.create(url="https://b.example/h", scopes=["topic:macro"])
    c = WebhookSubscription.objects.create(url="https://c.example/h")
    msg = _publish("alert.firing", "topic:credit")
    assert set(msg.deliveries.values_list("subscription", flat=True)) == {c.pk}
    assert a.wants("alert.resolved", "topic:x") and b.wants("alert.firing", "topic:macro")


@pytest.fixture
def fast_retry_worker(transactional_db, monkeypatch):
    """A real worker whose retry back-off is half a second."""
    from config.celery import app

    monkeypatch.setenv("SENTIMENT_WEBHOOK_RETRY_DELAYS", "0.5,0.5,0.5")
    app.conf.task_always_eager = False
    worker = LiveWorker(name="sentiment-hooks").start()
    yield worker
    worker.stop()
    assert os.environ["SENTIMENT_WEBHOOK_RETRY_DELAYS"] == "0.5,0.5,0.5"


@pytest.mark.worker
def test_it_retries_on_a_real_worker_with_the_same_id_until_200(fast_retry_worker, settings):
    settings.AIGC_ALLOW_PRIVATE_URLS = True
    with Receiver([500, 500]) as rx:
        sub = webhooks.create_subscription(rx.url)
        with transaction.atomic():
            msg = _publish()
        wait_for(lambda: Delivery.objects.filter(message=msg, state__in=["succeeded", "failed"]).exists(),
                 timeout=60, what="the delivery to finish")
        requests = list(rx.requests)
    d = Delivery.objects.get(message=msg)
    assert d.state == "succeeded" and d.attempts == 3
    assert [r["headers"]["webhook-id"] for r in requests] == [msg.event_id] * 3
    assert list(d.attempt_log.values_list("attempt_no", "status", "response_code")) == [
        (1, "failed", 500), (2, "failed", 500), (3, "succeeded", 200)]
    for r in requests:
        Webhook(sub.secret).verify(r["body"], r["headers"])
    assert WebhookMessage.objects.count() == 1
