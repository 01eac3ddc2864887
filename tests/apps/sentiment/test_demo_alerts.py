"""The demo's two documented alerts (docs/SENTIMENT.md: the hourly and the daily rule both
catch the credit burst on 2026-10-28) fire from a fresh database, with a real worker
classifying the news and a real beat evaluating the rules while it does."""
import csv
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from apps.sentiment import services, training
from apps.sentiment.management.commands.sentiment_demo import DEMO_RULES, FIXTURES
from apps.sentiment.models import Alert, AlertRule, Company, NewsItem, NewsSource
from tests.conftest import ROOT, wait_for, worker_env

BURST_DAY = datetime(2026, 10, 28, tzinfo=UTC)


@pytest.fixture
def demo_model(settings, tmp_path):
    """A small sentiment.news model trained on a sample of the demo's labelled news."""
    from apps.common import engine

    settings.AIGC_ARTIFACTS_DIR = tmp_path
    engine.forget()
    with open(FIXTURES / "news.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))[::4]
    texts = [f"{r['headline']}. {r['body']}" for r in rows]
    model, _ = training.train_news_classifier(texts, [r["topic"] for r in rows], [r["sentiment"] for r in rows],
                                              topics=sorted({r["topic"] for r in rows}), epochs=10, lr=5e-3)
    engine.registry().save("sentiment.news", writer=model.save, metrics={}, promote=True)
    yield
    engine.forget()


@pytest.fixture
def beat(tmp_path, live_worker):
    log = open(tmp_path / "beat.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO",
                             "-s", str(tmp_path / "schedule")], cwd=ROOT, env=worker_env(), stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    yield proc
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=20)
    log.close()


@pytest.mark.worker
def test_the_demo_fires_both_documented_alerts_on_a_fresh_database(demo_model, live_worker, beat):
    from apps.common.jobs import enqueue
    from apps.sentiment.tasks import classify_news

    with open(FIXTURES / "companies.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            Company.objects.create(ticker=row["ticker"], name=row["name"],
                                   aliases=[a for a in row["aliases"].split("|") if a])
    result = services.ingest_csv(Path(FIXTURES / "news.csv").read_bytes(),
                                 services.source_named("demo wire", NewsSource.Kind.CSV))
    assert len(result.created) > 2900 and not result.rejected  # a few templated headlines repeat
    rules = [AlertRule.objects.create(**spec) for spec in DEMO_RULES]
    enqueue(classify_news, "sentiment.classify")
    wait_for(lambda: not NewsItem.objects.filter(classification__isnull=True).exists(), timeout=600,
             what="the worker classifying the demo news")

    def documented():
        return {a.rule_id for a in Alert.objects.filter(key="credit", started_at__gte=BURST_DAY,
                                                        started_at__lt=BURST_DAY.replace(day=29))}
    wait_for(lambda: documented() == {r.pk for r in rules}, timeout=180, what="both documented credit alerts")
    hourly = Alert.objects.get(rule=rules[0], key="credit", started_at__gte=BURST_DAY)
    assert BURST_DAY.replace(hour=13) <= hourly.started_at <= BURST_DAY.replace(hour=15)
    assert hourly.items.count() >= 20 and "busiest 1%" in hourly.explanation
    daily = Alert.objects.get(rule=rules[1], key="credit", started_at__gte=BURST_DAY)
    assert daily.started_at == BURST_DAY
    # No other alert on the demo data: the burst is the one thing that stands out.
    assert Alert.objects.exclude(state="cancelled").count() == 2, list(Alert.objects.values_list("rule", "key",
                                                                                                "started_at"))
