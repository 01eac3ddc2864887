"""The one outbound HTTP wrapper (webhooks, feeds, an LLM server).

Every request has a timeout, follows redirects itself so each hop is checked,
and refuses private, loopback, link-local and metadata addresses unless
``AIGC_ALLOW_PRIVATE_URLS`` is on; link-local and metadata addresses are
refused even then. The check runs on the addresses a name resolves to, and the connection goes to the checked address, so a DNS answer
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


def _is_blocked(ip: ipaddress._BaseAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
        or ip.is_reserved or ip.is_unspecified or str(ip) == "169.254.169.254"
        or (isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10"))
    )


def _is_link_local(ip: ipaddress._BaseAddress) -> bool:
    """Link-local (169.254.0.0/16, fe80::/10) holds cloud metadata services
    (169.254.169.254, fd00:ec2::254): never a webhook, feed or LLM target."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_link_local or str(ip) in {"169.254.169.254", "fd00:ec2::254"}


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
