"""Issue an API token for one app from the command line; prints the key once."""
from django.core.management.base import BaseCommand, CommandError

from apps.common.models import APP_SCOPES, ApiToken


class Command(BaseCommand):
    help = "Create an API token scoped to one app and print it once."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("app", choices=[a for a, _ in APP_SCOPES])

    def handle(self, *args, name: str, app: str, **options):
        if not name.strip():
            raise CommandError("the token needs a non-empty name")
        _, raw = ApiToken.issue(name=name.strip(), app=app)
        self.stdout.write(raw)
