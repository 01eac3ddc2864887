"""The one outbound HTTP wrapper (webhooks, feeds, an LLM server).

Every request has a timeout, follows redirects itself so each hop is checked,
and refuses private, loopback, link-local and metadata addresses unless
``AIGC_ALLOW_PRIVATE_URLS`` is on; link-local and metadata addresses are
refused even then. An IPv6 address is judged by itself and by every IPv4
address it embeds (mapped, compatible, 6to4, NAT64, Teredo), so
``[2002:7f00:1::]`` is loopback. The check runs on the addresses a name
resolves to, and the connection goes to the checked address, so a DNS answer
that changes between check and connect cannot sneak through.
"""
from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from django.conf import settings

MAX_BODY = 2 * 1024 * 1024  # responses are read up to this many bytes
USER_AGENT = "aigc-suite/1.0"


class OutboundError(Exception):
    """A request that could not be made or completed. ``permanent`` says
    whether retrying can help (a refused URL cannot; a timeout can)."""

    def __init__(self, message: str, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


class PrivateAddressError(OutboundError):
    def __init__(self, message: str):
        super().__init__(message, permanent=True)


@dataclass
class HttpResponse:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    elapsed_ms: float = 0.0
    url: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


# Addresses where cloud providers serve instance metadata (credentials) besides the
# link-local ranges: AWS's IPv6 endpoint, Alibaba's, Oracle's.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215, local use: always private
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d


def _v4(value: int) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(value & 0xFFFFFFFF)


def embedded_ipv4(ip: ipaddress._BaseAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries, by every transition scheme a
    router or the kernel may act on: IPv4-mapped, IPv4-compatible, 6to4, NAT64
    (the well-known /96 and, for the local-use /48, each RFC 6052 position:
    /48, /56, /64, /96) and Teredo (server and de-obfuscated client)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    n = int(ip)
    found: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped:
        found.append(ip.ipv4_mapped)
    if ip in _IPV4_COMPATIBLE and n > 1:  # not :: or ::1
        found.append(_v4(n))
    if ip.sixtofour:
        found.append(ip.sixtofour)
    if ip.teredo:
        found.extend(ip.teredo)
    if ip in _NAT64_WELL_KNOWN:
        found.append(_v4(n))
    if ip in _NAT64_LOCAL:
        b = ip.packed  # RFC 6052 layouts; byte 8 (bits 64-71) is the reserved "u" octet
        found += [
            ipaddress.IPv4Address(b[6:8] + b[9:11]),   # /48
            ipaddress.IPv4Address(b[7:8] + b[9:12]),   # /56
            ipaddress.IPv4Address(b[9:13]),            # /64
            ipaddress.IPv4Address(b[12:16]),           # /96
        ]
    return found


def _spellings(ip: ipaddress._BaseAddress) -> list[ipaddress._BaseAddress]:
    return [ip, *embedded_ipv4(ip)]


def _is_blocked_one(ip: ipaddress._BaseAddress) -> bool:
    return (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
        or ip.is_reserved or ip.is_unspecified or ip in METADATA_ADDRESSES
        or (isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT)
        or (isinstance(ip, ipaddress.IPv6Address) and ip in _NAT64_LOCAL)
    )


def _is_blocked(ip: ipaddress._BaseAddress) -> bool:
    """Private, loopback, reserved, CGNAT or multicast, itself or in what it embeds."""
    return any(_is_blocked_one(a) for a in _spellings(ip))


def _is_link_local(ip: ipaddress._BaseAddress) -> bool:
    """Link-local (169.254.0.0/16, fe80::/10) holds cloud metadata services
    (169.254.169.254, fd00:ec2::254): never a webhook, feed or LLM target, in
    any spelling (``[2002:a9fe:a9fe::]``, ``[64:ff9b::a9fe:a9fe]``, ``[::a9fe:a9fe]``, ...)."""
    return any(a.is_link_local or a in METADATA_ADDRESSES for a in _spellings(ip))


def _ip_literal(hostname: str) -> ipaddress._BaseAddress | None:
    """An IPv6 literal (with any zone id removed) or a dotted-quad IPv4 literal; None for names
    and for the odd IPv4 spellings (``127.1``, ``0x7f000001``) that getaddrinfo resolves."""
    try:
        return ipaddress.ip_address(hostname.split("%")[0])
    except ValueError:
        return None


def validate_url(url: str, allow_private: bool | None = None) -> tuple[str, str, int, str]:
    """Check scheme and host, resolve the host, refuse blocked addresses.
    Returns (scheme, host, port, ip to connect to)."""
    if allow_private is None:
        allow_private = settings.AIGC_ALLOW_PRIVATE_URLS
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        raise OutboundError(f"only http and https URLs are allowed, not {parts.scheme or 'none'!r}", permanent=True)
    if not parts.hostname:
        raise OutboundError("the URL has no host", permanent=True)
    if parts.username or parts.password:
        raise OutboundError("credentials in URLs are not allowed; use headers", permanent=True)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    literal = _ip_literal(parts.hostname)
    if literal is not None:  # judged as written (a zone id such as %25eth0 cannot hide fe80::)
        addresses = [literal]
    else:
        try:
            infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise OutboundError(f"cannot resolve {parts.hostname}: {exc}") from exc
        addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    metadata = [str(a) for a in addresses if _is_link_local(a)]
    if metadata:  # refused even where private targets are allowed
        raise PrivateAddressError(
            f"{parts.hostname} resolves to a link-local or cloud metadata address ({metadata[0]}); "
            "such targets are always refused"
        )
    if not allow_private:
        blocked = [str(a) for a in addresses if _is_blocked(a)]
        if blocked:
            raise PrivateAddressError(
                f"{parts.hostname} resolves to a private or reserved address ({blocked[0]}); "
                "such targets are refused (set AIGC_ALLOW_PRIVATE_URLS=1 to allow them)"
            )
    return parts.scheme, parts.hostname, port, str(addresses[0])


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """Connect to a pre-checked IP while verifying TLS against the host name."""

    def __init__(self, host: str, ip: str, port: int, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._ip = ip

    def connect(self) -> None:
        sock = socket.create_connection((self._ip, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, ip: str, port: int, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._ip = ip

    def connect(self) -> None:
        self.sock = socket.create_connection((self._ip, self.port), self.timeout)


def request(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float | None = None,
    allow_private: bool | None = None,
    max_redirects: int = 3,
) -> HttpResponse:
    """Make one request, following up to ``max_redirects`` checked redirects.
    Raises OutboundError on refusal, network failure or timeout; any HTTP
    status (including 5xx) is returned, not raised."""
    timeout = timeout or settings.AIGC_HTTP_TIMEOUT
    headers = {"User-Agent": USER_AGENT, **(headers or {})}
    start = time.monotonic()
    for _hop in range(max_redirects + 1):
        scheme, host, port, ip = validate_url(url, allow_private)
        conn_cls = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
        conn = conn_cls(host, ip, port, timeout)
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            conn.request(method, path, body=body, headers={**headers, "Host": parts.netloc})
            resp = conn.getresponse()
            data = resp.read(MAX_BODY + 1)[:MAX_BODY]
            resp_headers = {k.lower(): v for k, v in resp.getheaders()}
        except (OSError, http.client.HTTPException) as exc:
            raise OutboundError(f"{type(exc).__name__}: {exc}" or "connection failed") from exc
        finally:
            conn.close()
        if resp.status in {301, 302, 303, 307, 308} and "location" in resp_headers:
            url = urljoin(url, resp_headers["location"])
            if resp.status == 303:
                method, body = "GET", None
            continue
        return HttpResponse(resp.status, data, resp_headers, (time.monotonic() - start) * 1000, url)
    raise OutboundError(f"more than {max_redirects} redirects", permanent=True)


def post_json(url: str, payload_bytes: bytes, headers: dict[str, str] | None = None, **kw) -> HttpResponse:
    return request("POST", url, body=payload_bytes,
                   headers={"Content-Type": "application/json", **(headers or {})}, **kw)
