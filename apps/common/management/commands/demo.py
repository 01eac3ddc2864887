"""Set up the embedded demo: a staff user, each app's demo data, a demo job."""
from __future__ import annotations

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand

from apps.common.jobs import enqueue
from apps.common.models import Job
from apps.common.tasks import demo_countdown


class Command(BaseCommand):
    help = "Create the demo staff user, load each app's demo data and queue its training jobs."

    def add_arguments(self, parser):
        parser.add_argument("--username", default=os.environ.get("AIGC_DEMO_USER", "admin"))
        parser.add_argument("--stage", choices=["all", "user", "apps"], default="all",
                            help="user: staff user + a demo job (seconds); apps: each app's demo data and models")
        parser.add_argument("--again", action="store_true",
                            help="load the apps' demo data and queue their training even if done before")

    def handle(self, *args, username: str, stage: str, again: bool = False, **options):
        if stage in {"all", "user"}:
            self._user(username)
        if stage in {"all", "apps"}:
            # A restart of the demo must not re-queue the trainings it already ran.
            done = settings.VAR_DIR / "demo-apps-done"
            if done.exists() and not again:
                self.stdout.write(f"Demo data and models were loaded on {done.read_text().strip()}; "
                                  "nothing re-queued (--again to redo).")
                return
            self._apps()
            from django.utils import timezone

            done.write_text(timezone.now().isoformat(timespec="seconds"))
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
        if Job.objects.filter(kind="common.demo").exists():
            note = "demo job ran before; not queued again"
        else:
            note = f"demo job #{enqueue(demo_countdown, 'common.demo', user=user, steps=10, delay_s=0.3).pk} queued"
        self.stdout.write(self.style.SUCCESS(f"Staff login: {username} / {password}  ({note})"))
