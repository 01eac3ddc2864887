"""Fault: the Redis that holds the cache (rate-limit counters; CACHE_URL) goes away.

The public widget counts every request in the cache. With the cache on a
``redis-server`` this test starts and then kills, the widget answers 503 with
a message and Retry-After instead of a 500, and works again as soon as the
cache is back, without a restart."""
from __future__ import annotations

import pytest

from apps.support.models import WidgetKey

from .services import PrivateRedis

ORIGIN = "https://shop.example.com"


@pytest.mark.django_db
def test_it_answers_503_while_the_cache_is_down_and_recovers(client, settings):
    with PrivateRedis() as cache_redis:
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                       "LOCATION": cache_redis.url, "OPTIONS": {"socket_connect_timeout": 1,
                                                                                "socket_timeout": 1}}}
        widget = WidgetKey.objects.create(name="shop", allowed_origins=[ORIGIN])
        url = f"/support/api/widget/{widget.public_key}/config/"
        assert client.get(url, HTTP_ORIGIN=ORIGIN).status_code == 200
        cache_redis.stop()
        r = client.get(url, HTTP_ORIGIN=ORIGIN)
        assert r.status_code == 503, r.content[:300]
        assert "cache" in r.json()["detail"] and r["Retry-After"]
        cache_redis.start()
        assert client.get(url, HTTP_ORIGIN=ORIGIN).status_code == 200
