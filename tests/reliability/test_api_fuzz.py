"""Bad input: every operation in the OpenAPI schema (/api/schema/) is fuzzed by
schemathesis, valid and invalid inputs both, through the real WSGI app with a
token of the operation's app. No answer may be a 5xx, and every 4xx carries a
human message in ``detail``. The jobs API is fuzzed with each app's token (a
token sees its own app's jobs) and ``/api/{app}/status/`` with the token of
the app in its path. Bounded for CI (``AIGC_FUZZ_EXAMPLES``, default 10 per
operation and mode), derandomized so both CI passes fuzz the same inputs; the
``slow`` test runs 50 per operation and mode:

    .venv/bin/python -m pytest tests/reliability/test_api_fuzz.py -m slow -p no:cacheprovider
"""
from __future__ import annotations

import json
import os
import zlib

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from config.wsgi import application

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
schema.config.generation.update(modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])

MAX_EXAMPLES = int(os.environ.get("AIGC_FUZZ_EXAMPLES", "10"))  # per operation and mode, bounded for CI
DEEP_EXAMPLES = 50  # the slow run: at least 50 per operation (and per mode)


@pytest.fixture
def tokens(db, monkeypatch):
    from apps.common.throttles import TokenRateThrottle

    # The per-token rate (tests/reliability/test_throttling.py) is not what the fuzzer's volume is for.
    monkeypatch.setattr(TokenRateThrottle, "THROTTLE_RATES", {"token": None})
    # Django's test Client keeps the test's connection open across requests; a
    # raw WSGI call would close it at the end of each request, mid-test.
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield _issue_tokens()
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def _issue_tokens() -> dict[str, str]:
    from apps.common.models import ApiToken

    return {app: ApiToken.issue(name=f"fuzz-{app}", app=app)[1] for app in ("support", "sentiment", "recommend")}


def _token_for(case, tokens: dict[str, str]) -> str:
    """The token of the operation's own app: by path prefix, by the {app} path parameter, and for the
    app-less jobs API a token of each app in turn (chosen from the generated input, so all three run)."""
    path = case.operation.path
    for app, raw in tokens.items():
        if path.startswith(f"/{app}/"):
            return raw
    app = (case.path_parameters or {}).get("app")
    if app in tokens:
        return tokens[app]
    apps = sorted(tokens)
    return tokens[apps[zlib.crc32(repr((case.path_parameters, case.query)).encode()) % len(apps)]]


def _check(case, tokens, settings) -> None:
    settings.AIGC_ALLOW_PRIVATE_URLS = False
    response = case.call(headers={"Authorization": f"Bearer {_token_for(case, tokens)}"})
    where = f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
    assert response.status_code < 500, where
    if 400 <= response.status_code < 500:
        try:
            body = json.loads(response.text)
        except ValueError:
            pytest.fail(f"a {response.status_code} without a JSON message: {where}")
        assert isinstance(body, dict) and str(body.get("detail") or "").strip(), where


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_it_never_answers_5xx_and_explains_every_4xx(case, tokens, settings):
    _check(case, tokens, settings)


@pytest.mark.slow
@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=DEEP_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_deep_fuzz_never_answers_5xx(case, tokens, settings):
    _check(case, tokens, settings)
