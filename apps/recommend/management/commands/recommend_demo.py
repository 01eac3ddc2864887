"""Load the demo catalogue and events from fixtures/recommend/ and queue training."""
from __future__ import annotations

import csv
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.common.jobs import enqueue
from apps.recommend import services, tasks

FIXTURES = Path(settings.BASE_DIR) / "fixtures" / "recommend"


class Command(BaseCommand):
    help = "Load the demo catalogue and shoppers' events (idempotent) and queue a training job."

    def add_arguments(self, parser):
        parser.add_argument("--no-train", action="store_true", help="load data only")
        parser.add_argument("--dir", default=str(FIXTURES), help="folder with items.csv and events.csv")

    def handle(self, *args, no_train: bool, dir: str, **options):
        folder = Path(dir)
        if not (folder / "items.csv").exists():
            raise CommandError(f"{folder}/items.csv not found: run python fixtures/recommend/generate.py")
        rows = services.parse_catalogue_file((folder / "items.csv").read_bytes(), "items.csv")
        result = services.upsert_items(rows)
        self.stdout.write(f"catalogue: {result.as_dict()}")
        accepted = duplicates = rejected = 0
        with open(folder / "events.csv", newline="") as fh:
            batch: list[dict] = []
            for row in csv.DictReader(fh):
                batch.append(row)
                if len(batch) == services.MAX_EVENT_BATCH:
                    out = services.record_events(batch)
                    accepted, duplicates, rejected = (accepted + out["accepted"], duplicates + out["duplicates"],
                                                      rejected + out["rejected"])
                    batch = []
            if batch:
                out = services.record_events(batch)
                accepted, duplicates, rejected = (accepted + out["accepted"], duplicates + out["duplicates"],
                                                  rejected + out["rejected"])
        self.stdout.write(f"events: {accepted} new, {duplicates} already loaded, {rejected} rejected")
        if not no_train:
            job = enqueue(tasks.train_recommender, "recommend.train", params={"source": "recommend_demo"})
            self.stdout.write(self.style.SUCCESS(f"queued recommend training job #{job.pk}"))
