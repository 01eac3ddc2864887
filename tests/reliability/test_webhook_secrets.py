"""Webhook signing secrets: shown once, rotated with a grace period.

A secret is in the answer that creates a subscription (API and staff form)
and in the answer of a rotation, never in a list or a detail (API JSON or
staff page). After a rotation a real receiver on loopback gets messages that
the ``standardwebhooks`` library verifies with the old secret and with the
new one until the grace period ends, then with the new one only."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from apps.sentiment import webhooks
from apps.sentiment.models import WebhookSubscription
from tests.apps.sentiment.receiver import Receiver

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _allow_loopback(settings):
    settings.AIGC_ALLOW_PRIVATE_URLS = True  # the receiver is on loopback


def _views_showing(sub, sentiment_api, staff_client) -> list[str]:
    """Every list/detail answer about ``sub``, as text."""
    return [
        sentiment_api.get("/sentiment/api/webhooks/").content.decode(),
        sentiment_api.get(f"/sentiment/api/webhooks/{sub.pk}/").content.decode(),
        sentiment_api.get(f"/sentiment/api/webhooks/{sub.pk}/deliveries/").content.decode(),
        staff_client.get("/sentiment/webhooks/").content.decode(),
        staff_client.get(f"/sentiment/webhooks/{sub.pk}/").content.decode(),
    ]


def _key_part(secret: str) -> str:
    return secret.removeprefix("whsec_")[:16]


def test_it_shows_the_secret_at_creation_only(sentiment_api, staff_client):
    r = sentiment_api.post("/sentiment/api/webhooks/", {"url": "http://127.0.0.1:9/hook"}, format="json")
    assert r.status_code == 201
    secret = r.json()["secret"]
    sub = WebhookSubscription.objects.get(pk=r.json()["id"])
    assert secret == sub.secret and secret.startswith("whsec_")
    page = staff_client.post("/sentiment/webhooks/", {"url": "http://127.0.0.1:9/other"}, follow=True).content.decode()
    sub2 = WebhookSubscription.objects.exclude(pk=sub.pk).get()
    assert sub2.secret in page  # the page after the form (post/redirect/get) shows it once too
    for text in _views_showing(sub, sentiment_api, staff_client) + _views_showing(sub2, sentiment_api, staff_client):
        assert "whsec_" not in text and _key_part(sub.secret) not in text and _key_part(sub2.secret) not in text


def test_rotation_keeps_both_secrets_valid_for_the_grace_period_then_only_the_new(
        sentiment_api, staff_client, django_capture_on_commit_callbacks, settings):
    settings.AIGC_WEBHOOK_SECRET_GRACE_S = 3600
    with Receiver() as rx:
        sub = webhooks.create_subscription(rx.url)
        old = sub.secret
        r = sentiment_api.post(f"/sentiment/api/webhooks/{sub.pk}/rotate-secret/")
        assert r.status_code == 200
        new = r.json()["secret"]
        assert new != old and new.startswith("whsec_")
        for text in _views_showing(sub, sentiment_api, staff_client):
            assert _key_part(new) not in text and _key_part(old) not in text

        with django_capture_on_commit_callbacks(execute=True):
            webhooks.publish("alert.firing", {"n": 1}, scope_key="topic:credit")
        during = rx.requests[-1]
        assert len(during["headers"]["webhook-signature"].split(" ")) == 2
        assert Webhook(old).verify(during["body"], during["headers"])["data"] == {"n": 1}
        assert Webhook(new).verify(during["body"], during["headers"])["data"] == {"n": 1}

        # the grace period ends
        WebhookSubscription.objects.filter(pk=sub.pk).update(
            previous_secret_expires_at=timezone.now() - timedelta(seconds=1))
        with django_capture_on_commit_callbacks(execute=True):
            webhooks.publish("alert.firing", {"n": 2}, scope_key="topic:credit")
        after = rx.requests[-1]
    assert Webhook(new).verify(after["body"], after["headers"])["data"] == {"n": 2}
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(after["body"], after["headers"])


def test_the_staff_page_rotates_and_shows_the_new_secret_once(staff_client):
    sub = webhooks.create_subscription("http://127.0.0.1:9/hook")
    page = staff_client.post(f"/sentiment/webhooks/{sub.pk}/rotate-secret/", follow=True).content.decode()
    sub.refresh_from_db()
    assert sub.secret in page and sub.previous_secret and sub.previous_secret not in page
    assert sub.secret not in staff_client.get(f"/sentiment/webhooks/{sub.pk}/").content.decode()  # PRG: shown once
    assert staff_client.post("/sentiment/webhooks/99999999/rotate-secret/").status_code == 404
