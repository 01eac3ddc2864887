"""How the API's authentication appears in the OpenAPI schema (/api/schema/): the
app-scoped Bearer tokens, so clients (and the fuzzer) know to send them."""
from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "apps.common.auth.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "An API token of the app called (aigc_…), from /tokens/ or manage.py create_token."}
