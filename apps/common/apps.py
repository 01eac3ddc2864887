from django.apps import AppConfig


class CommonConfig(AppConfig):
    name = "apps.common"
    label = "common"
    verbose_name = "Common: jobs, tokens, health"

    def ready(self) -> None:
        from apps.common import (
            heartbeat,  # noqa: F401  (connects worker signals)
            openapi,  # noqa: F401  (the token scheme in /api/schema/)
            timezones,  # noqa: F401  (copies a user's timezone into the session at login)
        )
