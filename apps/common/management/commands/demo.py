"""Set up the embedded demo: a staff user, each app's demo data, a demo job."""
from __future__ import annotations

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand

from apps.common.jobs import enqueue
from apps.common.tasks import demo_countdown


class Command(BaseCommand):
    help = "Create the demo staff user, load each app's demo data and queue its training jobs."

    def add_arguments(self, parser):
        parser.add_argument("--username", default=os.environ.get("AIGC_DEMO_USER", "admin"))
        parser.add_argument("--stage", choices=["all", "user", "apps"], default="all",
                            help="user: staff user + a demo job (seconds); apps: each app's demo data and models")

    def handle(self, *args, username: str, stage: str, **options):
        if stage in {"all", "user"}:
            self._user(username)
        if stage in {"all", "apps"}:
            self._apps()
            self.stdout.write(self.style.SUCCESS("Demo data loaded; training jobs are listed on /jobs/."))

    def _apps(self) -> None:
        available = get_commands()
        for name in settings.AIGC_DEMO_COMMANDS:
            if name in available:
                self.stdout.write(f"== {name}")
                call_command(name, stdout=self.stdout, stderr=self.stderr)

    def _user(self, username: str) -> None:
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        password_file = settings.VAR_DIR / "demo_password"
        if user is None:
            password = os.environ.get("AIGC_DEMO_PASSWORD") or secrets.token_urlsafe(9)
            user = User.objects.create_superuser(username=username, email="", password=password)
            password_file.write_text(password)
            password_file.chmod(0o600)
        password = password_file.read_text().strip() if password_file.exists() else "(unchanged)"
        job = enqueue(demo_countdown, "common.demo", user=user, steps=10, delay_s=0.3)
        self.stdout.write(self.style.SUCCESS(
            f"Staff login: {username} / {password}  (demo job #{job.pk} queued)"
        ))
