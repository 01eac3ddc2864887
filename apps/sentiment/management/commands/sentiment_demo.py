"""Demo: companies + a few thousand labelled headlines from fixtures/sentiment/,
alert rules, a trained classifier, classified news, evaluated rules.

Idempotent: a second run stores nothing new and trains only with --retrain."""
from __future__ import annotations

import csv
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.common.models import Job
from apps.sentiment import conf, services
from apps.sentiment.models import Alert, AlertRule, Company, NewsSource

FIXTURES = Path(settings.BASE_DIR) / "fixtures" / "sentiment"

DEMO_RULES = [
    {"name": "Negative news spike (hourly, any topic)", "scope": "topic", "key": "", "metric": "negative_count",
     "window": "1h", "history_days": 14, "ratio": 2.0, "min_volume": 5},
    {"name": "Negative news spike (daily, any topic)", "scope": "topic", "key": "", "metric": "negative_count",
     "window": "1d", "history_days": 14, "ratio": 2.0, "min_volume": 5},
]


class Command(BaseCommand):
    help = "Load the sentiment demo data, train the classifier, classify and evaluate alert rules."

    def add_arguments(self, parser):
        parser.add_argument("--retrain", action="store_true", help="train a new version even if one exists")
        parser.add_argument("--epochs", type=int, default=None)

    def handle(self, *args, retrain=False, epochs=None, **opts):
        news = FIXTURES / "news.csv"
        if not news.exists():
            raise CommandError(f"{news} is missing; run: python fixtures/sentiment/generate.py")
        with open(FIXTURES / "companies.csv", newline="") as fh:
            for row in csv.DictReader(fh):
                Company.objects.update_or_create(ticker=row["ticker"], defaults={
                    "name": row["name"], "aliases": [a for a in row["aliases"].split("|") if a]})
        result = services.ingest_csv(news.read_bytes(), services.source_named("demo wire", NewsSource.Kind.CSV))
        self.stdout.write(f"sentiment: {len(result.created)} news stored, {len(result.duplicates)} duplicates, "
                          f"{len(result.rejected)} rejected")
        for spec in DEMO_RULES:
            AlertRule.objects.get_or_create(name=spec["name"], defaults=spec)
        from apps.common import engine
        from apps.sentiment.tasks import classify_news, train_sentiment

        if retrain or engine.registry().current(conf.MODEL_NAME) is None:
            job = Job.objects.create(kind="sentiment.train", params={"demo": True})
            self.stdout.write(f"sentiment: training the classifier (job #{job.pk})…")
            out = train_sentiment.run(job_id=job.pk, epochs=epochs)
            m = out["metrics"]
            for head in ("topic", "sentiment"):
                if head in m:
                    self.stdout.write(f"  {head}: accuracy {m[head]['accuracy']:.3f}, macro-F1 {m[head]['macro_f1']:.3f}"
                                      f" (majority class {m[head]['majority_accuracy']:.3f}, n={m[head]['n']})")
        else:
            job = Job.objects.create(kind="sentiment.classify", params={"demo": True})
            classify_news.run(job_id=job.pk)
        for a in Alert.objects.exclude(state=Alert.State.CANCELLED).select_related("rule").order_by("started_at"):
            self.stdout.write(f"  alert [{a.state}] {a.rule.name}: {a.scope}={a.key} from {a.started_at:%Y-%m-%d %H:%M}"
                              f": {a.explanation} ({a.items.count()} news)")
