"""Load the support demo: transcripts and KB articles from fixtures/support/, a
widget key for the local demo page, and a queued training job."""
from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.common.jobs import enqueue
from apps.common.models import Job
from apps.support import services, tasks
from apps.support.models import KBArticle, TranscriptPair, WidgetKey

FIXTURES = Path(settings.BASE_DIR) / "fixtures" / "support"


def demo_origins() -> list[str]:
    """Where the demo is served: the host names of the local demo on its PORT (scripts/demo.sh
    passes it). The demo page itself needs none of these (the server's own pages are same-origin);
    they let other local pages on that port embed the demo key."""
    port = os.environ.get("PORT", "8000").strip() or "8000"
    return [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]


class Command(BaseCommand):
    help = "Import the support demo transcripts and KB, create a demo widget key, queue training."

    def add_arguments(self, parser):
        parser.add_argument("--retrain", action="store_true", help="queue training even if a version exists")
        parser.add_argument("--sync", action="store_true", help="train in this process instead of queueing")

    def _run_inline(self, task, kind: str, **kwargs) -> Job:
        """Run a job's task here (the import is quick) so its Job row records it like any other."""
        job = Job.objects.create(kind=kind, params={k: v for k, v in kwargs.items() if k != "uploads"})
        task.apply(kwargs={"job_id": job.pk, **kwargs})
        job.refresh_from_db()
        if job.state != Job.State.SUCCEEDED:
            raise RuntimeError(f"{kind} failed: {job.error[:500]}")
        return job

    def handle(self, *args, retrain: bool, sync: bool, **options):
        if not TranscriptPair.objects.filter(conversation_ref__startswith="demo-").exists():
            data = (FIXTURES / "transcripts.jsonl").read_bytes()
            job = self._run_inline(tasks.ingest_transcripts, "support.ingest",
                                   upload=services.store_upload(data, ".jsonl"), filename="transcripts.jsonl")
            self.stdout.write(f"imported transcripts: {job.result}")
        if not KBArticle.objects.exists():
            files = sorted((FIXTURES / "kb").glob("*.md"))
            uploads = [[services.store_upload(f.read_bytes(), ".md"), f.name] for f in files]
            job = self._run_inline(tasks.ingest_kb, "support.kb", uploads=uploads)
            self.stdout.write(f"imported KB: {job.result}")
        key, created = WidgetKey.objects.get_or_create(
            name="demo", defaults={"allowed_origins": demo_origins(), "rate_limit_per_minute": 30}
        )
        if not created and not set(demo_origins()) <= set(key.allowed_origins or []):
            key.allowed_origins = list(dict.fromkeys([*(key.allowed_origins or []), *demo_origins()]))
            key.save(update_fields=["allowed_origins"])
        if services.current_version() is None or retrain:
            if sync:
                result = services.train_bot(lambda pct, msg: None)
                self.stdout.write(f"trained support.bot v{result['version']}")
            else:
                job = enqueue(tasks.train_support, "support.train")
                self.stdout.write(f"queued support training as job #{job.pk} (queue 'train')")
        base = demo_origins()[0]
        self.stdout.write(self.style.SUCCESS(
            f"Support widget demo: {base}/support/widget-demo/\n"
            f'  <script src="{base}/static/support/widget.js" data-key="{key.public_key}" defer></script>'
        ))
