"""Sentiment app end to end: classification throughput on the demo news, time from
ingest of a burst to the signed webhook's arrival, and the detector's
precision/recall on synthetic count series with injected bursts.

Latency setup: the demo data (fixtures/sentiment/news.csv) is ingested, the
classifier trained and the history classified in-process; then a REAL Celery
worker (queues default, deliver) and a real HTTP receiver on loopback run, a
rule "negative count per topic, 5-minute windows" is armed, and for each
measured burst ``n`` negative headlines of one topic are ingested the way the
API does (store, then a classify job on commit). Measured: ingest commit →
classify job picked up / finished → alert fired → webhook received. The
embedded filesystem broker polls once a second, so about 1 s of each hop is
broker polling (Redis is faster).

Run: python -m bench.sentiment_pipeline [--quick]   (writes bench/results/sentiment_pipeline.json)
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from bench.harness import CACHE_DIR, REPO, setup_django, table, write_result

BURST_HEADLINES = {
    "credit": "{co} downgraded to junk as debt load mounts",
    "macro": "Unemployment jumps as recession fears grow ({n})",
    "regulation": "{co} fined by regulator over compliance failures",
    "operations": "{co} halts production after fire at main plant",
}
COMPANIES = ["Acme Corp", "Globex", "Initech", "Hooli", "Umbrella Pharma", "Stark Industries", "Wayne Enterprises",
             "Tyrell Systems", "Cyberdyne", "Oscorp"]


# -- detector on synthetic series ------------------------------------------------------
def synthetic_pr(n_series: int = 400, length: int = 400, seed: int = 7) -> list[list]:
    """Poisson counts (rate 1-30 per window) with, in half the series, one burst of
    3-8 windows adding ``k * sqrt(rate)`` (k = 3, 5, 8); the shipped DetectorConfig, pending_for 1 (shipped) and 2.
    A detection is a firing event; it is a true positive if it falls inside a burst
    (or up to 2 windows after its start), one per burst."""
    from apps.sentiment.detector import DetectorConfig, StateConfig, detect

    rows = []
    for pending_for, k in [(p, k) for p in (1, 2) for k in (3.0, 5.0, 8.0)]:
        rng = np.random.default_rng(seed)  # the same series for both state configs
        tp = fp = fn = 0
        delays = []
        for s in range(n_series):
            lam = rng.uniform(1, 30)
            x = rng.poisson(lam, length).astype(float)
            burst = None
            if s % 2 == 0:
                start, dur = int(rng.integers(100, length - 20)), int(rng.integers(3, 9))
                x[start:start + dur] += np.round(k * np.sqrt(lam) + rng.normal(0, 1, dur)).clip(1)
                burst = (start, start + dur + 2)
            scfg = StateConfig(pending_for=pending_for, resolve_after=2, cooldown=12)
            fired = [int(e.t) for e in detect(x, DetectorConfig(), scfg) if e.kind == "firing"]
            hit = [t for t in fired if burst and burst[0] <= t < burst[1]]
            tp += 1 if hit else 0
            fn += 1 if burst and not hit else 0
            fp += len(fired) - (1 if hit else 0)
            if hit:
                delays.append(hit[0] - burst[0])
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        rows.append([pending_for, f"{k:g}·sqrt(rate)", n_series // 2, tp, fp, fn, round(precision, 3), round(recall, 3),
                     round(float(np.mean(delays)), 2) if delays else None])
    return rows


# -- end to end --------------------------------------------------------------------------
class _Receiver:
    def __init__(self):
        self.hits: list[tuple[float, dict, bytes]] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.hits.append((time.time(), {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _start_worker(log_path) -> subprocess.Popen:
    from django.conf import settings

    from apps.common.models import WorkerHeartbeat

    env = dict(os.environ, AIGC_ALLOW_PRIVATE_URLS="1", PYTHONUNBUFFERED="1",
               AIGC_ARTIFACTS_DIR=str(settings.AIGC_ARTIFACTS_DIR))
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "default,deliver", "-n", "bench@%h",
         "--concurrency", "2", "--without-gossip", "--without-mingle", "--loglevel", "INFO"],
        cwd=REPO, env=env, stdout=open(log_path, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        if WorkerHeartbeat.objects.filter(hostname__startswith="bench@").exists():
            return proc
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited: {open(log_path).read()[-2000:]}")
        time.sleep(0.3)
    raise RuntimeError("worker did not start")


def _wait(pred, timeout=180.0, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise TimeoutError("timed out")


def end_to_end(quick: bool) -> dict:
    # Its own scratch database, broker and artifacts (unless Django is already set up).
    var = CACHE_DIR / "sentiment_pipeline_var"
    os.environ.setdefault("AIGC_VAR_DIR", str(var))
    os.environ.setdefault("AIGC_ARTIFACTS_DIR", str(var / "artifacts"))
    setup_django()
    import signal

    from django.conf import settings
    from django.core.management import call_command
    from django.db import transaction
    from django.utils import timezone
    from standardwebhooks import Webhook

    from apps.common.jobs import enqueue
    from apps.common.models import Job
    from apps.sentiment import alerts, services, training, webhooks
    from apps.sentiment.models import Alert, AlertRule, NewsItem, NewsSource
    from apps.sentiment.tasks import classify_news

    call_command("migrate", verbosity=0)
    settings.AIGC_ALLOW_PRIVATE_URLS = True
    out: dict = {}
    if not NewsItem.objects.exists():
        data = (REPO / "fixtures" / "sentiment" / "news.csv").read_bytes()
        services.ingest_csv(data, services.source_named("demo wire", NewsSource.Kind.CSV))
    from apps.common import engine

    if engine.registry().current("sentiment.news") is None:
        t = time.perf_counter()
        res = training.train_from_db(lambda p, m: None, epochs=4 if quick else 8)
        out["train_s"] = round(time.perf_counter() - t, 1)
        out["train_metrics"] = {h: res["metrics"].get(h) for h in ("topic", "sentiment")}
    # Throughput: classify the demo news in-process (batches of 256, frozen encoder + heads).
    pending = NewsItem.objects.filter(classification__isnull=True).count()
    t = time.perf_counter()
    services.classify_pending()
    dt = time.perf_counter() - t
    if pending:
        out["classify_items"] = pending
        out["classify_items_per_s"] = round(pending / dt, 1)
    rule, _ = AlertRule.objects.get_or_create(name="bench 5m", defaults=dict(
        scope="topic", key="", metric="negative_count", window="5m", history=24, warmup=6, min_volume=5,
        sensitivity_z=4.0, pending_for=1, resolve_after=1, cooldown_minutes=30))
    AlertRule.objects.exclude(pk=rule.pk).update(enabled=False)
    alerts.evaluate_rules()  # read the history once, before the clock starts
    rx = _Receiver()
    sub = webhooks.create_subscription(rx.url, event_types=["alert.firing"])
    log = REPO / "bench" / ".cache" / "sentiment_pipeline_worker.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    worker = _start_worker(log)
    rows = []
    try:
        # Warm the worker (model load) with one neutral item.
        with transaction.atomic():
            r = services.ingest_items([{"url": f"https://bench.example/warm/{time.time()}",
                                        "headline": "Globex to hold investor day in March"}],
                                      services.source_named("bench"))
            job = enqueue(classify_news, "sentiment.classify")
        _wait(lambda: Job.objects.filter(pk=job.pk, state="succeeded").exists())
        topics = list(BURST_HEADLINES)[: 2 if quick else 4]
        for i, topic in enumerate(topics):
            n = 8
            items = [{"url": f"https://bench.example/{topic}/{time.time()}/{j}",
                      "headline": BURST_HEADLINES[topic].format(co=COMPANIES[(i * n + j) % len(COMPANIES)], n=j)
                                  + f" — update {j}"} for j in range(n)]
            seen = len(rx.hits)
            t0 = time.time()
            with transaction.atomic():
                r = services.ingest_items(items, services.source_named("bench"))
                job = enqueue(classify_news, "sentiment.classify")
            hit = _wait(lambda s=seen: rx.hits[s:] and rx.hits[s])
            t_rx = hit[0]
            Webhook(sub.secret).verify(hit[2], hit[1])
            job.refresh_from_db()
            alert = Alert.objects.filter(key=topic, rule=rule).order_by("-id").first()
            rows.append([topic, len(r.created), round(job.started_at.timestamp() - t0, 2),
                         round(job.finished_at.timestamp() - t0, 2),
                         round(alert.created_at.timestamp() - t0, 2) if alert else None,
                         round(t_rx - t0, 2)])
            time.sleep(1.0)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
        rx.server.shutdown()
    out["latency_rows"] = rows
    out["now"] = timezone.now().isoformat()
    return out


def run(quick: bool = False) -> dict:
    t = time.perf_counter()
    pr_rows = synthetic_pr(n_series=100 if quick else 400)
    pr_s = time.perf_counter() - t
    e2e = end_to_end(quick)
    lat = [r[-1] for r in e2e["latency_rows"]]
    tables = [
        table("Sentiment: ingest of a burst → signed webhook received (real worker, filesystem broker)",
              ["topic", "items", "classify job started (s)", "classify job done (s)", "alert created (s)",
               "webhook received (s)"], e2e["latency_rows"],
              [f"median {float(np.median(lat)):.2f} s over {len(lat)} bursts; every webhook verified with the "
               "standardwebhooks package; rule: negative count per topic, 5-minute windows, z ≥ 4, min volume 5, "
               "fires in the open window"]),
        table("Sentiment: detector on synthetic Poisson series with injected bursts (shipped config)",
              ["pending_for", "burst size", "bursts", "TP", "FP", "FN", "precision", "recall",
               "mean delay (windows)"], pr_rows,
              [f"{pr_s:.1f} s; 400-window series, half with a 3-8 window burst; z >= 4 over a 48-window "
               "median/MAD baseline; FP = firings outside a burst (on ~80k noise windows per row)"]),
    ]
    summary = {"classify_items_per_s": e2e.get("classify_items_per_s"), "median_ingest_to_webhook_s":
               float(np.median(lat)) if lat else None, "train_metrics": e2e.get("train_metrics")}
    if e2e.get("classify_items_per_s"):
        tables.insert(0, table("Sentiment: classification throughput (demo news, in-process)",
                               ["items", "items/s"], [[e2e["classify_items"], e2e["classify_items_per_s"]]]))
    return {"status": "ok", "summary": summary, "tables": tables}


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    t = time.perf_counter()
    result = run(quick)
    path = write_result("sentiment_pipeline", result, quick, time.perf_counter() - t,
                        "python -m bench.sentiment_pipeline" + (" --quick" if quick else ""))
    print(path)
    for tb in result["tables"]:
        print(tb["title"])
        for row in tb["rows"]:
            print("  ", row)
