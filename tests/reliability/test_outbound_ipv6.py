"""Abuse: IPv6 spellings that carry a loopback, private or metadata IPv4 address.

A router or the kernel acts on what these embed (6to4 relays, NAT64
gateways, Teredo, IPv4-mapped sockets), so the guard judges the embedded
address too. The table is checked at creation (API and staff form), and at
send time (a subscription stored before the guard knew better, then
delivered), with private URLs refused and with them allowed: metadata
addresses are refused in both modes, loopback/private only when not allowed.
"""
from __future__ import annotations

import ipaddress

import pytest

from apps.common import http
from apps.sentiment import webhooks

# spelling -> what it embeds
LOOPBACK_OR_PRIVATE = {
    "http://[2002:7f00:1::]/x": "6to4 of 127.0.0.1",
    "http://[2002:a00:1::]/x": "6to4 of 10.0.0.1",
    "http://[64:ff9b::7f00:1]/x": "NAT64 of 127.0.0.1",
    "http://[64:ff9b::c0a8:101]/x": "NAT64 of 192.168.1.1",
    "http://[64:ff9b:1::7f00:1]/x": "local NAT64 (/96 position) of 127.0.0.1",
    "http://[::7f00:1]/x": "IPv4-compatible 127.0.0.1",
    "http://[::ffff:7f00:1]/x": "IPv4-mapped 127.0.0.1 (hex)",
    "http://[::ffff:10.1.2.3]/x": "IPv4-mapped 10.1.2.3",
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/x": "Teredo, client 127.0.0.1",
    "http://[0:0:0:0:0:ffff:127.0.0.1]/x": "IPv4-mapped, long form",
}
METADATA = {
    "http://[2002:a9fe:a9fe::]/latest/meta-data/": "6to4 of 169.254.169.254",
    "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/": "NAT64 of 169.254.169.254",
    "http://[64:ff9b::169.254.169.254]/latest/meta-data/": "NAT64, dotted tail",
    "http://[64:ff9b:1:a9fe:a9:fe00::]/x": "local NAT64 (/48 position) of 169.254.169.254",
    "http://[64:ff9b:1::a9fe:a9fe]/x": "local NAT64 (/96 position) of 169.254.169.254",
    "http://[::a9fe:a9fe]/latest/meta-data/": "IPv4-compatible 169.254.169.254",
    "http://[::169.254.169.254]/x": "IPv4-compatible, dotted",
    "http://[::ffff:a9fe:a9fe]/x": "IPv4-mapped (hex)",
    "http://[2001:0:4136:e378:8000:63bf:5601:5601]/x": "Teredo, client 169.254.169.254",
    "http://[fd00:ec2::254]/latest/meta-data/": "AWS IPv6 metadata",
    "http://[2002:6464:64c8::]/x": "6to4 of 100.100.100.200 (Alibaba metadata)",
    "http://[fe80::a9fe:a9fe%25eth0]/x": "link-local with a zone",
}


def test_the_table_embeds_what_it_says():
    assert http.embedded_ipv4(ipaddress.ip_address("2002:7f00:1::")) == [ipaddress.ip_address("127.0.0.1")]
    teredo = ipaddress.ip_address("2001:0:4136:e378:8000:63bf:5601:5601")
    assert ipaddress.ip_address("169.254.169.254") in http.embedded_ipv4(teredo)
    # a global address embeds nothing and passes
    assert http.embedded_ipv4(ipaddress.ip_address("2606:4700::1111")) == []
    assert not http._is_blocked(ipaddress.ip_address("2606:4700::1111"))
    assert http.embedded_ipv4(ipaddress.ip_address("64:ff9b::808:808")) == [ipaddress.ip_address("8.8.8.8")]


@pytest.mark.parametrize("url", list(LOOPBACK_OR_PRIVATE) + list(METADATA))
def test_it_refuses_every_embedding_when_private_urls_are_refused(url, settings):
    settings.AIGC_ALLOW_PRIVATE_URLS = False
    with pytest.raises(http.PrivateAddressError):
        http.validate_url(url)


@pytest.mark.parametrize("url", list(METADATA))
def test_it_refuses_metadata_embeddings_even_when_private_urls_are_allowed(url, settings):
    settings.AIGC_ALLOW_PRIVATE_URLS = True
    with pytest.raises(http.PrivateAddressError, match="always refused"):
        http.validate_url(url)


@pytest.mark.parametrize("url", list(LOOPBACK_OR_PRIVATE)[:3])
def test_private_embeddings_pass_only_where_private_urls_are_allowed(url, settings):
    settings.AIGC_ALLOW_PRIVATE_URLS = True
    http.validate_url(url)  # documented: loopback/private allowed by this setting (tests, on-premise)


@pytest.mark.django_db
@pytest.mark.parametrize("allow", [False, True])
def test_it_refuses_the_table_at_creation_on_the_api_and_the_staff_form(allow, settings, sentiment_api, staff_client):
    from apps.sentiment.models import NewsSource, WebhookSubscription

    settings.AIGC_ALLOW_PRIVATE_URLS = allow
    refused = list(METADATA) + ([] if allow else list(LOOPBACK_OR_PRIVATE))
    for url in refused:
        r = sentiment_api.post("/sentiment/api/webhooks/", {"url": url}, format="json")
        assert r.status_code == 400, (url, r.content)
        assert r.json()["detail"]
        staff_client.post("/sentiment/webhooks/", {"url": url})
        staff_client.post("/sentiment/sources/", {"action": "feed", "name": f"f{len(url)}", "url": url})
    assert not WebhookSubscription.objects.exists()
    assert not NewsSource.objects.filter(kind=NewsSource.Kind.RSS).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("allow", [False, True])
def test_it_refuses_the_table_at_send_time(allow, settings):
    """Subscriptions stored directly (as an older release or a data import might have),
    then delivered: no connection is made and the delivery fails permanently."""
    from apps.sentiment.models import Delivery, WebhookSubscription

    settings.AIGC_ALLOW_PRIVATE_URLS = allow
    refused = list(METADATA) + ([] if allow else list(LOOPBACK_OR_PRIVATE))
    for url in refused:
        WebhookSubscription.objects.create(url=url)
    msg = webhooks.publish("alert.firing", {"n": 1}, scope_key="topic:credit")
    deliveries = list(Delivery.objects.filter(message=msg))
    assert len(deliveries) == len(refused)
    for d in deliveries:
        row = webhooks.attempt_delivery(d.pk, 1)
        assert row is not None and row.response_code is None
        d.refresh_from_db()
        assert d.state == Delivery.State.FAILED, d.subscription.url  # permanent: no retry
        assert "refused" in row.error
