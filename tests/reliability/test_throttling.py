"""Abuse: password guessing, API floods, widget floods, and forged client addresses.

Login throttling is django-axes (per IP and per user name), the token APIs use
DRF's throttle per token, the widget counts with apps/common/ratelimit.py,
whose counters are atomic on both back ends (a database row; a Redis Lua
script). The client IP is REMOTE_ADDR unless the peer is a listed proxy
(AIGC_TRUSTED_PROXIES); only then is X-Forwarded-For read, from the right."""
from __future__ import annotations

import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.cache import cache
from django.test import RequestFactory

from apps.common import ratelimit
from apps.common.client_ip import client_ip, client_ip_or_none
from apps.common.throttles import TokenRateThrottle
from apps.support.models import WidgetKey
from tests.reliability.services import PrivateRedis

ORIGIN = "https://shop.example.com"


@pytest.fixture(autouse=True)
def _clean_cache():
    cache.clear()
    yield
    cache.clear()


# --- staff login ------------------------------------------------------------------------------

@pytest.mark.django_db
def test_the_eleventh_wrong_password_in_a_minute_from_one_ip_answers_429(client, staff):
    codes = [client.post("/login/", {"username": f"guess{i}", "password": "wrong"}, REMOTE_ADDR="198.51.100.7")
             .status_code for i in range(11)]
    assert codes[:10] == [200] * 10  # the form again, with its error
    assert codes[10] == 429
    # the right password from that address is refused too while it cools off
    r = client.post("/login/", {"username": "staff", "password": "staff-pass-123"}, REMOTE_ADDR="198.51.100.7")
    assert r.status_code == 429 and int(r["Retry-After"]) > 0
    assert "_auth_user_id" not in client.session
    # another address logs in
    ok = client.post("/login/", {"username": "staff", "password": "staff-pass-123"}, REMOTE_ADDR="198.51.100.8")
    assert ok.status_code == 302


@pytest.mark.django_db
def test_guessing_one_users_password_from_many_ips_locks_that_user(client, staff):
    for i in range(11):
        last = client.post("/login/", {"username": "staff", "password": "wrong"}, REMOTE_ADDR=f"203.0.113.{i}")
    assert last.status_code == 429
    r = client.post("/login/", {"username": "staff", "password": "staff-pass-123"}, REMOTE_ADDR="203.0.113.200")
    assert r.status_code == 429


# --- token APIs ---------------------------------------------------------------------------------

@pytest.mark.django_db
def test_each_api_token_has_its_own_rate(monkeypatch, recommend_api, db):
    from tests.conftest import _token_client

    monkeypatch.setattr(TokenRateThrottle, "THROTTLE_RATES", {"token": "3/min"})
    other = _token_client("recommend")
    codes = [recommend_api.get("/recommend/api/model/").status_code for _ in range(4)]
    assert codes[:3] == [codes[0]] * 3 and codes[0] < 400 and codes[3] == 429
    r = recommend_api.get("/recommend/api/model/")
    assert r.status_code == 429 and int(r["Retry-After"]) > 0 and r.json()["detail"]
    assert other.get("/recommend/api/model/").status_code == codes[0]


# --- atomic counters ----------------------------------------------------------------------------

def _hammer(n: int, limit: int, scope: str) -> list[int | None]:
    from django.db import connection

    barrier = threading.Barrier(n)

    def one(_):
        barrier.wait()
        try:
            return ratelimit.hit(scope, "same-ident", limit, 60)
        finally:
            connection.close()

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


@pytest.mark.django_db(transaction=True)
def test_database_counters_let_exactly_the_limit_through_under_concurrency():
    results = _hammer(24, 10, "db-test")
    assert results.count(None) == 10
    assert all(isinstance(r, int) and 1 <= r <= 60 for r in results if r is not None)


@pytest.mark.django_db(transaction=True)
def test_redis_counters_let_exactly_the_limit_through_under_concurrency(settings):
    with PrivateRedis() as redis:
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                       "LOCATION": redis.url}}
        results = _hammer(40, 15, "redis-test")
        assert results.count(None) == 15
        from django.core.cache import caches

        assert 0 < caches["default"]._cache.get_client().ttl(caches["default"].make_and_validate_key(
            "rl:redis-test:same-ident")) <= 60  # the window expires: no counter stuck forever


@pytest.mark.django_db(transaction=True)
def test_concurrent_widget_requests_get_exactly_the_limit(live_server):
    widget = WidgetKey.objects.create(name="shop", allowed_origins=[ORIGIN], rate_limit_per_minute=100,
                                      ip_rate_limit_per_minute=8)
    url = f"{live_server.url}/support/api/widget/{widget.public_key}/config/"
    barrier = threading.Barrier(20)

    def one(_):
        req = urllib.request.Request(url, headers={"Origin": ORIGIN})
        barrier.wait()
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code

    with ThreadPoolExecutor(20) as pool:
        codes = list(pool.map(one, range(20)))
    assert codes.count(200) == 8 and codes.count(429) == 12, codes


# --- client IP behind a proxy ------------------------------------------------------------------

@pytest.mark.parametrize("peer,xff,trusted,expected", [
    ("198.51.100.9", "203.0.113.5", [], "198.51.100.9"),                      # no proxy listed: header ignored
    ("198.51.100.9", "203.0.113.5", ["127.0.0.1"], "198.51.100.9"),           # untrusted peer: ignored
    ("127.0.0.1", "203.0.113.5", ["127.0.0.1"], "203.0.113.5"),
    ("127.0.0.1", "6.6.6.6, 203.0.113.5", ["127.0.0.1"], "203.0.113.5"),      # the client's own entry is not believed
    ("10.0.0.2", "203.0.113.5, 10.0.0.1", ["10.0.0.0/8"], "203.0.113.5"),     # two proxies
    ("127.0.0.1", "not-an-ip", ["127.0.0.1"], "127.0.0.1"),
    ("127.0.0.1", "", ["127.0.0.1"], "127.0.0.1"),
    ("::ffff:127.0.0.1", "[2001:db8::7]:4711", ["127.0.0.1"], "2001:db8::7"),
])
def test_client_ip_believes_forwarded_for_only_from_listed_proxies(settings, peer, xff, trusted, expected):
    settings.AIGC_TRUSTED_PROXIES = trusted
    request = RequestFactory().get("/", REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR=xff)
    assert client_ip(request) == expected


@pytest.mark.django_db
def test_behind_a_trusted_proxy_two_visitors_get_separate_limits_and_untrusted_peers_share_one(client, settings):
    settings.AIGC_TRUSTED_PROXIES = ["127.0.0.1"]
    widget = WidgetKey.objects.create(name="shop", allowed_origins=[ORIGIN], rate_limit_per_minute=100,
                                      ip_rate_limit_per_minute=3)
    url = f"/support/api/widget/{widget.public_key}/config/"

    def get(peer, forwarded):
        return client.get(url, HTTP_ORIGIN=ORIGIN, REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR=forwarded).status_code

    assert [get("127.0.0.1", "203.0.113.5") for _ in range(4)] == [200, 200, 200, 429]
    assert [get("127.0.0.1", "203.0.113.6") for _ in range(3)] == [200, 200, 200]  # a second visitor
    # from an untrusted peer the header is ignored: forging new addresses does not buy new limits
    assert [get("198.51.100.9", f"192.0.2.{i}") for i in range(4)] == [200, 200, 200, 429]


@pytest.mark.django_db
def test_a_login_from_a_peer_without_an_address_is_logged_not_refused(staff):
    """A unix-socket peer has no REMOTE_ADDR; the login throttle records it as NULL (PostgreSQL's
    inet column refuses "unknown") and the login goes through."""
    from axes.models import AccessLog
    from django.test import Client

    request = RequestFactory().get("/", REMOTE_ADDR="")
    assert client_ip_or_none(request) is None
    assert client_ip_or_none(RequestFactory().get("/", REMOTE_ADDR="10.1.2.3")) == "10.1.2.3"
    c = Client()
    c.force_login(staff)  # Django's test login: a request with no REMOTE_ADDR at all
    assert AccessLog.objects.filter(username=staff.get_username(), ip_address__isnull=True).exists()
