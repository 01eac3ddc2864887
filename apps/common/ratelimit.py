"""Fixed-window rate limits with atomic counters, shared by every web process.

``hit(scope, ident, limit, window_s=60) -> int | None`` counts one request
for ``(scope, ident)`` and returns the seconds to wait (for ``Retry-After``)
once more than ``limit`` requests fell in the current window, else None.

Atomic on both back ends, so N concurrent requests let exactly ``limit``
through:

- Redis (``CACHE_URL=redis://…``): one Lua script does INCR and, for the
  window's first hit, EXPIRE, in one step.
- otherwise the database (``RateCounter`` rows): an ``UPDATE … SET count =
  count + 1`` inside a transaction, which takes the row lock (PostgreSQL) or
  the write lock (SQLite, ``BEGIN IMMEDIATE``). The file-based cache could
  not do this: its ``incr`` is a read and a write.
"""
from __future__ import annotations

import math
from datetime import timedelta

from django.core.cache import caches
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

_LUA = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}
"""


def _redis_cache():
    from django.core.cache.backends.redis import RedisCache

    backend = caches["default"]
    return backend if isinstance(backend, RedisCache) else None


def _hit_redis(backend, key: str, window_s: int) -> tuple[int, float]:
    client = backend._cache.get_client(write=True)
    n, ttl = client.eval(_LUA, 1, backend.make_and_validate_key(key), window_s)
    return int(n), float(ttl)


def _hit_database(key: str, window_s: int) -> tuple[int, float]:
    from apps.common.models import RateCounter

    for _ in range(3):
        now = timezone.now()
        with transaction.atomic():
            if RateCounter.objects.filter(key=key, window_ends__gt=now).update(count=F("count") + 1):
                row = RateCounter.objects.get(key=key)
                return row.count, (row.window_ends - now).total_seconds()
            # No open window: restart an expired one, or create the row.
            ends = now + timedelta(seconds=window_s)
            if RateCounter.objects.filter(key=key, window_ends__lte=now).update(count=1, window_ends=ends):
                return 1, float(window_s)
            try:
                with transaction.atomic():
                    RateCounter.objects.create(key=key, count=1, window_ends=ends)
                return 1, float(window_s)
            except IntegrityError:
                pass  # another request created it meanwhile: count against that one
    raise RuntimeError(f"rate counter {key} kept changing under us")


def hit(scope: str, ident: str, limit: int, window_s: int = 60) -> int | None:
    if limit <= 0:
        return None
    key = f"rl:{scope}:{ident}"[:200]
    backend = _redis_cache()
    count, left = _hit_redis(backend, key, window_s) if backend is not None else _hit_database(key, window_s)
    if count > limit:
        return max(1, math.ceil(left))
    return None


def sweep(older_than_s: int = 3600) -> int:
    """Delete database counters whose window ended long ago (beat, hourly)."""
    from apps.common.models import RateCounter

    cutoff = timezone.now() - timedelta(seconds=older_than_s)
    return RateCounter.objects.filter(window_ends__lt=cutoff).delete()[0]


