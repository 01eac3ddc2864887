"""Signed webhooks as the Standard Webhooks specification says.

Each event is one ``WebhookMessage`` whose ``event_id`` ("msg_…") is the
``webhook-id`` header on every attempt; each subscriber gets a ``Delivery``
that is retried with exponential back-off (``conf.retry_delays()``), every
attempt logged as a ``DeliveryAttempt``. Headers::

    webhook-id: msg_…
    webhook-timestamp: <unix seconds of this attempt>
    webhook-signature: v1,<base64 HMAC-SHA256 over "{id}.{timestamp}.{body}">

keyed with the base64-decoded part of the secret after ``whsec_``.

Secrets are shown once: in the answer that creates a subscription and in the
answer of ``rotate_secret``, never in a list or detail. A rotation keeps the
old secret signing beside the new one for ``AIGC_WEBHOOK_SECRET_GRACE_S``
(the header then holds two space-separated ``v1,`` signatures, which Standard
Webhooks verifiers accept when either matches), so a receiver can switch
keys without dropping a message.
An attempt is claimed with a compare-and-set on ``Delivery.attempts`` so a
retry sent twice (countdown and sweeper) is made once.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.common import http
from apps.sentiment import conf
from apps.sentiment.models import Delivery, DeliveryAttempt, WebhookMessage, WebhookSubscription

log = logging.getLogger(__name__)

# How long a claimed attempt may take before the sweeper treats its worker as gone.
ATTEMPT_LEASE_S = 300


class SubscriptionError(ValueError):
    pass


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    to_sign = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, to_sign, hashlib.sha256).digest()).decode()


def signing_secrets(sub: WebhookSubscription, now=None) -> list[str]:
    """The current secret, and the previous one while its grace period lasts."""
    now = now or timezone.now()
    keys = [sub.secret]
    if sub.previous_secret and sub.previous_secret_expires_at and sub.previous_secret_expires_at > now:
        keys.append(sub.previous_secret)
    return keys


def signature_header(sub: WebhookSubscription, msg_id: str, timestamp: int, body: bytes) -> str:
    return " ".join(sign(key, msg_id, timestamp, body) for key in signing_secrets(sub))


def rotate_secret(sub: WebhookSubscription) -> WebhookSubscription:
    """Give ``sub`` a new secret; the old one keeps signing for the grace period.
    The returned object carries the new secret: show it once, to whoever rotated."""
    from apps.sentiment.models import new_webhook_secret

    now = timezone.now()
    with transaction.atomic():
        sub = WebhookSubscription.objects.select_for_update().get(pk=sub.pk)
        sub.previous_secret = sub.secret
        sub.previous_secret_expires_at = now + timedelta(seconds=settings.AIGC_WEBHOOK_SECRET_GRACE_S)
        sub.secret = new_webhook_secret()
        sub.secret_rotated_at = now
        sub.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at", "secret_rotated_at"])
    log.info("webhook subscription %s: secret rotated; the previous one signs until %s",
             sub.pk, sub.previous_secret_expires_at)
    return sub


def check_url(url: str) -> None:
    """Refuse non-http(s) URLs and (unless allowed) private or loopback targets."""
    try:
        http.validate_url(url)
    except http.OutboundError as exc:
        raise SubscriptionError(str(exc)) from exc


def create_subscription(url: str, *, description: str = "", event_types=None, scopes=None) -> WebhookSubscription:
    event_types = list(event_types or [])
    unknown = [e for e in event_types if e not in WebhookSubscription.EVENT_TYPES]
    if unknown:
        raise SubscriptionError(f"unknown event type(s) {', '.join(unknown)}; "
                                f"known: {', '.join(WebhookSubscription.EVENT_TYPES)}")
    scopes = [s.strip() for s in (scopes or []) if s and s.strip()]
    bad = [s for s in scopes if not (s.startswith("topic:") or s.startswith("company:"))]
    if bad:
        raise SubscriptionError(f"scopes look like 'topic:credit' or 'company:ACME', not {bad[0]!r}")
    check_url(url)  # last: it resolves the host name
    return WebhookSubscription.objects.create(url=url, description=description[:200], event_types=event_types,
                                              scopes=scopes)


def body_of(message: WebhookMessage) -> bytes:
    return json.dumps(message.payload, separators=(",", ":"), sort_keys=True).encode()


def publish(event_type: str, data: dict, *, scope_key: str = "", alert=None) -> WebhookMessage:
    """Store an event and a Delivery per interested subscription; send after commit.
    Call inside the transaction that changes the state the event reports."""
    now = timezone.now()
    message = WebhookMessage.objects.create(
        event_type=event_type, scope_key=scope_key, alert=alert,
        payload={"type": event_type, "timestamp": now.isoformat(), "data": data},
    )
    subs = [s for s in WebhookSubscription.objects.all() if s.wants(event_type, scope_key or None)]
    deliveries = Delivery.objects.bulk_create([
        Delivery(message=message, subscription=s, next_attempt_at=now) if s.enabled
        # A disabled subscription keeps the event, unsent and failed: the manual re-send delivers it in order.
        else Delivery(message=message, subscription=s, state=Delivery.State.FAILED, finished_at=now)
        for s in subs
    ])
    ids = [d.pk for d in deliveries if d.pk and d.state == Delivery.State.PENDING] or list(
        Delivery.objects.filter(message=message, state=Delivery.State.PENDING).values_list("pk", flat=True))
    transaction.on_commit(lambda: [_send(pk, 1) for pk in ids])
    return message


def _send(delivery_id: int, attempt: int, countdown: float | None = None) -> None:
    from apps.sentiment.tasks import deliver_webhook

    try:
        deliver_webhook.apply_async(kwargs={"delivery_id": delivery_id, "attempt": attempt}, countdown=countdown)
    except Exception:  # broker down: the sweeper sends it once the broker is back
        log.exception("could not queue delivery %s attempt %s; the sweeper will retry", delivery_id, attempt)


def attempt_delivery(delivery_id: int, attempt: int) -> DeliveryAttempt | None:
    """Make attempt number ``attempt`` of one delivery, if it is still due.
    Returns the logged attempt, or None when another worker already made it."""
    now = timezone.now()
    claimed = Delivery.objects.filter(
        pk=delivery_id, state=Delivery.State.PENDING, attempts=attempt - 1,
        subscription__enabled=True,
    ).update(attempts=F("attempts") + 1, round_attempts=F("round_attempts") + 1,
             next_attempt_at=now + timedelta(seconds=ATTEMPT_LEASE_S))
    if not claimed:
        return None
    delivery = Delivery.objects.select_related("message", "subscription").get(pk=delivery_id)
    sub, message = delivery.subscription, delivery.message
    body = body_of(message)
    ts = int(time.time())
    headers = {
        "webhook-id": message.event_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signature_header(sub, message.event_id, ts, body),
    }
    code = latency = None
    error = ""
    permanent = False
    started = time.monotonic()
    try:
        resp = http.post_json(sub.url, body, headers, timeout=conf.webhook_timeout_s())
        code, latency = resp.status, resp.elapsed_ms
        ok = resp.ok
        if not ok:
            error = f"HTTP {resp.status}: {resp.text()[:200]}"
            permanent = resp.status == 410  # Gone: the receiver asks us to stop
    except http.OutboundError as exc:
        ok, error, permanent = False, str(exc)[:1000], exc.permanent
        latency = (time.monotonic() - started) * 1000
    with transaction.atomic():
        log_row = DeliveryAttempt.objects.create(
            delivery=delivery, attempt_no=attempt, at=timezone.now(),
            status=DeliveryAttempt.Status.SUCCEEDED if ok else DeliveryAttempt.Status.FAILED,
            response_code=code, latency_ms=latency, error=error,
        )
        if ok:
            Delivery.objects.filter(pk=delivery.pk).update(state=Delivery.State.SUCCEEDED, next_attempt_at=None,
                                                           finished_at=timezone.now())
            WebhookSubscription.objects.filter(pk=sub.pk).update(consecutive_failures=0)
            return log_row
        delays = conf.retry_delays()
        n = delivery.round_attempts  # attempts in this round (a manual re-send starts a new round)
        if not permanent and n <= len(delays):
            delay = delays[n - 1]
            Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() + timedelta(seconds=delay))
            if delay <= conf.COUNTDOWN_LIMIT_S:
                transaction.on_commit(lambda: _send(delivery.pk, attempt + 1, countdown=delay))
            return log_row
        Delivery.objects.filter(pk=delivery.pk).update(state=Delivery.State.FAILED, next_attempt_at=None,
                                                       finished_at=timezone.now())
        _count_failed_message(sub, error, gone=code == 410)
    return log_row


def _count_failed_message(sub: WebhookSubscription, error: str, gone: bool = False) -> None:
    sub = WebhookSubscription.objects.select_for_update().get(pk=sub.pk)
    sub.consecutive_failures += 1
    limit = conf.disable_after_failures()
    if sub.enabled and (gone or sub.consecutive_failures >= limit):
        sub.enabled = False
        sub.disabled_at = timezone.now()
        sub.disabled_reason = (
            "the receiver answered 410 Gone" if gone else
            f"disabled after {sub.consecutive_failures} messages in a row failed every retry; last error: {error}"
        )[:500]
        log.warning("webhook subscription %s disabled: %s", sub.pk, sub.disabled_reason)
    sub.save(update_fields=["consecutive_failures", "enabled", "disabled_at", "disabled_reason"])


def send_due(now=None) -> int:
    """The sweeper (beat, every minute): send pending attempts whose time has come,
    including long back-offs and sends that a broker outage dropped."""
    now = now or timezone.now()
    due = Delivery.objects.filter(state=Delivery.State.PENDING, next_attempt_at__lte=now - timedelta(seconds=2),
                                  subscription__enabled=True).order_by("created_at", "id")[:500]
    n = 0
    for d in due:
        if d.attempts and not d.attempt_log.filter(attempt_no=d.attempts).exists():
            # Claimed, lease run out, nothing logged: the worker making it died. Say so in the log.
            DeliveryAttempt.objects.get_or_create(delivery=d, attempt_no=d.attempts, defaults={
                "status": DeliveryAttempt.Status.FAILED, "at": now,
                "error": "no outcome recorded: the worker making this attempt stopped; sent again"})
        _send(d.pk, d.attempts + 1)
        n += 1
    return n


def resend(subscription: WebhookSubscription, delivery_ids: list[int] | None = None) -> list[int]:
    """Re-send failed deliveries (all, or the given ones) in creation order, with
    the same message ids; re-enables the subscription. Returns the delivery ids."""
    with transaction.atomic():
        qs = Delivery.objects.select_for_update().filter(subscription=subscription, state=Delivery.State.FAILED)
        if delivery_ids is not None:
            qs = qs.filter(pk__in=delivery_ids)
        ids = list(qs.order_by("message__created_at", "message_id").values_list("pk", flat=True))
        Delivery.objects.filter(pk__in=ids).update(state=Delivery.State.PENDING, round_attempts=0,
                                                   next_attempt_at=timezone.now() + timedelta(seconds=ATTEMPT_LEASE_S),
                                                   finished_at=None)
        WebhookSubscription.objects.filter(pk=subscription.pk).update(
            enabled=True, disabled_reason="", disabled_at=None, consecutive_failures=0)
    if ids:
        from apps.sentiment.tasks import deliver_in_order

        def _send_in_order() -> None:
            try:
                deliver_in_order.delay(delivery_ids=ids)
            except Exception:  # broker down: the sweeper sends them once their lease passes
                log.exception("could not queue the re-send of %s deliveries", len(ids))

        transaction.on_commit(_send_in_order)
    return ids


def deliver_sequentially(delivery_ids: list[int]) -> int:
    """First attempts of a re-send, one after another in the given (creation) order."""
    made = 0
    for pk in delivery_ids:
        d = Delivery.objects.filter(pk=pk, state=Delivery.State.PENDING).first()
        if d is not None and attempt_delivery(pk, d.attempts + 1) is not None:
            made += 1
    return made
