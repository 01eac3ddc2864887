"""Abuse: webhook (and feed, LLM) URLs aimed at this machine or its network.

Every spelling of a private, loopback, link-local, carrier-grade-NAT or
metadata address is refused, including through a DNS name (``localhost``) and
through a redirect: each hop is resolved and checked before connecting.
Link-local and cloud-metadata addresses are refused even where private
targets are allowed (the tests' own setting, and some on-premise installs),
which is how the redirect case is tested honestly offline: a real loopback
server (allowed as the first hop) redirects to 169.254.169.254 and to a
file: URL, and both hops are refused before any connection is made."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from apps.common import http
from apps.sentiment import webhooks

PRIVATE_SPELLINGS = [
    "http://127.0.0.1/x", "http://127.1/x", "http://2130706433/x", "http://0x7f000001/x", "http://0177.0.0.1/x",
    "http://localhost:8000/x", "http://LocalHost:80/x", "http://[::1]/x", "http://[::ffff:127.0.0.1]/x",
    "http://0.0.0.0/x", "http://10.0.0.1/x", "http://172.16.5.4/x", "http://192.168.1.1/x",
    "http://100.64.0.1/x", "http://[fc00::1]/x", "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::1]/x", "http://[::ffff:169.254.169.254]/x", "http://224.0.0.1/x",
]


@pytest.mark.parametrize("url", PRIVATE_SPELLINGS)
def test_it_refuses_every_spelling_of_a_private_address(url, settings):
    settings.AIGC_ALLOW_PRIVATE_URLS = False
    with pytest.raises(http.PrivateAddressError) as err:
        http.validate_url(url)
    assert err.value.permanent and "refused" in str(err.value)


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/x",
                                 "http://[::ffff:169.254.169.254]/x", "http://[fd00:ec2::254]/x"])
def test_it_refuses_metadata_and_link_local_even_when_private_targets_are_allowed(url, settings):
    settings.AIGC_ALLOW_PRIVATE_URLS = True
    with pytest.raises(http.PrivateAddressError, match="always refused"):
        http.validate_url(url)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://127.0.0.1/", "ftp://example.com/",
                                 "http://user:pw@example.com/", "http:///nohost", "javascript:alert(1)"])
def test_it_refuses_other_schemes_credentials_and_hostless_urls(url, settings):
    settings.AIGC_ALLOW_PRIVATE_URLS = True
    with pytest.raises(http.OutboundError) as err:
        http.validate_url(url)
    assert err.value.permanent


class Redirector:
    """A loopback server that answers every request with a redirect to ``target``
    and counts what reaches it."""

    def __init__(self, target: str):
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                outer.hits += 1
                self.send_response(302)
                self.send_header("Location", target)
                self.end_headers()

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data/iam/", "file:///etc/passwd",
                                    "http://[fe80::1]:80/"])
def test_it_refuses_a_redirect_to_metadata_or_another_scheme(target, settings):
    settings.AIGC_ALLOW_PRIVATE_URLS = True  # the first hop (loopback) is allowed on purpose
    with Redirector(target) as rx:
        with pytest.raises(http.OutboundError) as err:
            http.post_json(rx.url, b"{}", timeout=3)
    assert rx.hits == 1 and err.value.permanent


def test_it_stops_a_redirect_loop(settings):
    settings.AIGC_ALLOW_PRIVATE_URLS = True
    with Redirector("/hook") as rx:
        with pytest.raises(http.OutboundError, match="redirects"):
            http.request("GET", rx.url, timeout=3)
    assert rx.hits == 4  # the first request and three redirects, then it gives up


@pytest.mark.django_db
def test_it_marks_a_delivery_redirected_to_metadata_failed_without_retrying(settings):
    from apps.sentiment.models import Delivery, WebhookSubscription

    settings.AIGC_ALLOW_PRIVATE_URLS = True
    with Redirector("http://169.254.169.254/latest/meta-data/") as rx:
        WebhookSubscription.objects.create(url=rx.url)
        msg = webhooks.publish("alert.firing", {"n": 1}, scope_key="topic:credit")
        d = Delivery.objects.get(message=msg)
        webhooks.attempt_delivery(d.pk, 1)
    d.refresh_from_db()
    assert d.state == "failed" and "metadata" in d.attempt_log.get().error  # permanent: no retry scheduled
