"""Bad input: every operation in the OpenAPI schema (/api/schema/) is fuzzed by
schemathesis, valid and invalid inputs both, through the real WSGI app with a
token of the operation's app. No answer may be a 5xx, and every 4xx carries a
human message in ``detail``. Bounded for CI: a few examples per operation,
derandomized so both CI passes fuzz the same inputs."""
from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from config.wsgi import application

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
schema.config.generation.update(modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])

MAX_EXAMPLES = 6  # per operation and mode: ~49 operations, bounded for CI


@pytest.fixture
def tokens(db):
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


def _token_for(path: str, tokens: dict[str, str]) -> str:
    for app, raw in tokens.items():
        if path.startswith(f"/{app}/"):
            return raw
    return tokens["sentiment"]


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_it_never_answers_5xx_and_explains_every_4xx(case, tokens, settings):
    settings.AIGC_ALLOW_PRIVATE_URLS = False
    response = case.call(headers={"Authorization": f"Bearer {_token_for(case.operation.path, tokens)}"})
    where = f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
    assert response.status_code < 500, where
    if 400 <= response.status_code < 500:
        try:
            body = json.loads(response.text)
        except ValueError:
            pytest.fail(f"a {response.status_code} without a JSON message: {where}")
        assert isinstance(body, dict) and str(body.get("detail") or "").strip(), where
