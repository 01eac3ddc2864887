"""DRF throttles for the token APIs: per API token (a staff session counts per user).

Rates come from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["token"]`` (env
``AIGC_API_RATE``, e.g. ``1200/min``); an exceeded rate answers 429 with
``Retry-After`` and a ``detail``, through DRF's own machinery."""
from __future__ import annotations

from rest_framework.throttling import SimpleRateThrottle

from apps.common.client_ip import client_ip
from apps.common.models import ApiToken


class TokenRateThrottle(SimpleRateThrottle):
    scope = "token"

    def get_cache_key(self, request, view):
        if isinstance(request.auth, ApiToken):
            ident = f"token:{request.auth.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"ip:{client_ip(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
