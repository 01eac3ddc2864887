"""Fault: a webhook receiver is down for a long time (nothing listens on its port).

With a real worker and short schedules (1 s by Celery countdown, then 120 s,
longer than the countdown limit, so the every-minute sweeper makes it; the
test plays the sweeper at the due time instead of waiting two minutes):
each retry is made when the schedule says, the subscription is disabled
after the configured number of messages failed every retry, staff see that
on the webhooks page with the reason, events published meanwhile are kept,
and one manual re-send delivers everything that was missed, in creation
order, with the original ids, once each."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from apps.sentiment import webhooks
from apps.sentiment.models import Delivery, WebhookSubscription
from tests.conftest import LiveWorker, wait_for

from .services import DedupReceiver, free_port

SCHEDULE = [1.0, 120.0]


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_it_retries_on_schedule_disables_shows_staff_and_resends_everything_in_order(client, staff, settings):
    from config.celery import app

    app.conf.task_always_eager = False
    settings.AIGC_ALLOW_PRIVATE_URLS = True
    settings.SENTIMENT_WEBHOOK_RETRY_DELAYS = SCHEDULE
    settings.SENTIMENT_WEBHOOK_DISABLE_AFTER = 2
    port = free_port()  # nothing listens here: every attempt is refused
    sub = webhooks.create_subscription(f"http://127.0.0.1:{port}/hook")
    worker = LiveWorker("rel-rx", env={"SENTIMENT_WEBHOOK_RETRY_DELAYS": ",".join(map(str, SCHEDULE)),
                                       "SENTIMENT_WEBHOOK_DISABLE_AFTER": "2"}).start()
    try:
        with transaction.atomic():
            m1 = webhooks.publish("alert.firing", {"n": 1}, scope_key="topic:credit")
        with transaction.atomic():
            m2 = webhooks.publish("alert.firing", {"n": 2}, scope_key="topic:credit")
        # Attempt 1 now, attempt 2 one second later by countdown; attempt 3 waits 120 s for the sweeper.
        wait_for(lambda: Delivery.objects.filter(subscription=sub, attempts=2).count() == 2
                 and all(d.attempt_log.count() == 2 for d in Delivery.objects.filter(subscription=sub)),
                 timeout=60, what="two attempts of each message")
        for d in Delivery.objects.filter(subscription=sub):
            a1, a2 = d.attempt_log.order_by("attempt_no")
            assert SCHEDULE[0] - 0.2 <= (a2.at - a1.at).total_seconds() <= SCHEDULE[0] + 5
            assert "Connection refused" in a1.error or "refused" in a1.error.lower()
            assert d.state == "pending"
            assert abs((d.next_attempt_at - a2.at).total_seconds() - SCHEDULE[1]) < 2  # scheduled, not sent
        assert webhooks.send_due(now=timezone.now()) == 0  # not due yet
        assert webhooks.send_due(now=timezone.now() + timedelta(seconds=SCHEDULE[1] + 3)) == 2  # the sweeper
        wait_for(lambda: Delivery.objects.filter(subscription=sub, state="failed").count() == 2, timeout=60,
                 what="both messages to fail every retry")
        sub.refresh_from_db()
        assert not sub.enabled and "2 messages in a row" in sub.disabled_reason

        with transaction.atomic():  # published while the subscription is disabled: kept for the re-send
            m3 = webhooks.publish("alert.resolved", {"n": 3}, scope_key="topic:credit")

        client.force_login(staff)
        page = client.get("/sentiment/webhooks/").content.decode()
        assert "2 messages in a row" in page or "disabled" in page.lower()
        detail = client.get(f"/sentiment/webhooks/{sub.pk}/").content.decode()
        assert "in a row" in detail and m1.event_id in detail

        with DedupReceiver(port=port) as rx:  # the receiver is back
            r = client.post(f"/sentiment/webhooks/{sub.pk}/resend/")
            assert r.status_code == 302
            wait_for(lambda: len(rx.effects) == 3, timeout=60, what="the re-send to deliver all three")
            ids, bodies = [q["id"] for q in rx.requests], [q["body"] for q in rx.requests]
    finally:
        worker.kill()
        worker.stop()
    assert ids == [m1.event_id, m2.event_id, m3.event_id]  # creation order, original ids, once each
    assert [b'"n":1' in bodies[0], b'"n":2' in bodies[1], b'"n":3' in bodies[2]] == [True, True, True]
    sub.refresh_from_db()
    assert sub.enabled and sub.consecutive_failures == 0
    assert set(Delivery.objects.filter(subscription=sub).values_list("state", flat=True)) == {"succeeded"}
    assert WebhookSubscription.objects.count() == 1
