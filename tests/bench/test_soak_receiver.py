"""The soak's webhook receiver checks signatures on its own: it must accept what the
app signs and refuse anything else, or the burst → webhook figure would count
deliveries a real receiver would reject."""
from __future__ import annotations

import http.client
import json

from apps.sentiment.models import new_webhook_secret
from apps.sentiment.webhooks import sign
from bench.soak import Receiver


def _post(port: int, body: bytes, headers: dict) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/hook", body=body, headers=headers)
    status = conn.getresponse().status
    conn.close()
    return status


def test_the_receiver_counts_only_signed_firing_events():
    secret = new_webhook_secret()
    rec = Receiver()
    rec.secret = secret
    try:
        body = json.dumps({"type": "alert.firing", "data": {"key": "QABC01"}}).encode()
        good = {"webhook-id": "msg_1", "webhook-timestamp": "1700000000",
                "webhook-signature": sign(secret, "msg_1", 1700000000, body)}
        forged = {**good, "webhook-signature": sign(new_webhook_secret(), "msg_1", 1700000000, body)}
        other = json.dumps({"type": "alert.firing", "data": {"key": "QABC02"}}).encode()
        assert _post(rec.port, other, forged) == 204
        assert _post(rec.port, body, good) == 204
        # Signed over another body: refused too.
        assert _post(rec.port, other, good) == 204
        assert rec.received == 3 and rec.bad_signatures == 2
        assert set(rec.first_firing) == {"QABC01"}
    finally:
        rec.close()
