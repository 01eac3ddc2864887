"""The client's IP address, for rate limits and login throttling.

``client_ip(request) -> str``: the peer address (``REMOTE_ADDR``) unless the
peer is one of ``AIGC_TRUSTED_PROXIES`` (addresses or networks, e.g.
``127.0.0.1,10.0.0.0/8``). Only then is ``X-Forwarded-For`` read, from the
right: each trusted proxy appended the address it saw, so the first entry
from the right that is not a trusted proxy is the client. Entries further
left were written by the client itself and are never believed; from an
untrusted peer the header is ignored altogether.
"""
from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings


@lru_cache(maxsize=8)
def _networks(spec: tuple[str, ...]) -> tuple[ipaddress._BaseNetwork, ...]:
    return tuple(ipaddress.ip_network(s.strip(), strict=False) for s in spec if s.strip())


def _parse(value: str) -> ipaddress._BaseAddress | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # [v6]:port
        value = value[1:value.index("]")]
    elif value.count(":") == 1:  # v4:port
        value = value.split(":")[0]
    try:
        return ipaddress.ip_address(value.split("%")[0])
    except ValueError:
        return None


def _trusted(ip: ipaddress._BaseAddress, networks) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip.version == n.version and ip in n for n in networks)


def client_ip(request) -> str:
    peer_raw = request.META.get("REMOTE_ADDR", "") or ""
    peer = _parse(peer_raw)
    networks = _networks(tuple(settings.AIGC_TRUSTED_PROXIES))
    if peer is None:
        return peer_raw or "unknown"
    if not networks or not _trusted(peer, networks):
        return str(peer)
    hops = [h for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
    client = peer
    for raw in reversed(hops):
        ip = _parse(raw)
        if ip is None:  # garbage: believe nothing further left
            break
        client = ip
        if not _trusted(ip, networks):
            break
    return str(client)


def client_ip_or_none(request) -> str | None:
    """For django-axes, which stores the address in an inet column on PostgreSQL: a peer
    that is not an address (a unix socket's empty REMOTE_ADDR, a test client's login)
    is recorded as unknown (NULL) instead of failing the login with a database error."""
    ip = client_ip(request)
    return ip if _parse(ip) is not None else None
