"""Soak: chat, news ingest and recommendation calls at once, for a long time, on the
run command's server (gunicorn + uvicorn workers) + PostgreSQL + Redis + two Celery
workers + beat, on loopback, through the same Stack as ``bench/serving.py``.

    python -m bench.soak --minutes 30                 # the figure in bench/results/README.md
    python -m bench.soak --seconds 60                 # a short run while developing

Prepares its database once (demo data, models; kept for the next run). Measures,
per operation, requests/s and p50/p95/max latency, 5xx and refused (429) answers;
the classification pipeline (queued classification jobs sampled every 2 s, ingest →
classified lag per item, items classified per second, items lost); the resident
memory of every process over time (slope over the last 20 minutes, least squares);
the load average; and how long each process took to stop on the run command's
signals. Writes ``bench/results/soak.json`` through ``bench.harness`` (its README
section is rendered from it)."""
from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import http.client
import http.server
import json
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path

from bench.harness import REPO, table, write_result
from bench.stack import WORKER_NICE, Stack, StackUnavailable, cpu_s, pg

DEFAULT_DB = "aigc_soak"

PREPARE = """
import json
from apps.common.models import ApiToken, Job
# This run's broker is new: a job an earlier, interrupted run left queued or running has no
# message any more. The sweeper would re-send it after AIGC_JOB_REQUEUE_AFTER; ingest would
# join it meanwhile, and the first minutes of the window would measure that recovery.
Job.objects.filter(state__in=["queued", "running"]).update(state="failed", error="soak: left by an earlier run")
from apps.recommend.models import Item, Event
from apps.common import engine
tokens = {a: ApiToken.issue(name="soak-" + a, app=a)[1] for a in ("support", "sentiment", "recommend")}
users = sorted(set(Event.objects.values_list("user_id", flat=True)[:5000]))[:200]
items = list(Item.objects.filter(available=True).values_list("external_id", flat=True)[:500])
print("SOAK" + json.dumps({"tokens": tokens, "users": users, "items": items,
                           "models": {n: getattr(engine.registry().current(n), "version", None)
                                      for n in ("support.bot", "sentiment.news", "recommend.model")}}))
"""

# Burst probes: each run gets its own companies (a ticker no earlier run alerted on), three
# days of quiet history for each, one 5-minute negative-count rule per company and one
# webhook subscription to a receiver in this process. Every BURST_EVERY_S one company
# gets a burst of negative headlines; the figure is POST → signed alert.firing received.
BURST_SETUP = """
import json, random
from datetime import timedelta
from django.utils import timezone
from apps.sentiment import services
from apps.sentiment.models import AlertRule, Company, WebhookSubscription
from apps.sentiment.tasks import queue_classification
tag, n, url = {tag!r}, {n}, {url!r}
quiet = ["holds its annual meeting", "files its quarterly report", "names a new CFO", "opens a new office",
         "shares slip in light trading", "confirms dividend date"]
now = timezone.now()
rng = random.Random(0)
companies, raw = [], []
for k in range(n):
    ticker, name = f"Q{{tag}}{{k:02d}}", f"Quorvane {{tag}}-{{k:02d}}"
    Company.objects.get_or_create(ticker=ticker, defaults={{"name": name}})
    AlertRule.objects.get_or_create(name=f"soak burst {{ticker}}", defaults=dict(
        scope="company", key=ticker, metric="negative_count", window="5m", history_days=3, ratio=2.0,
        min_volume=5))
    companies.append({{"ticker": ticker, "name": name}})
    for h in range(0, 72, 2):
        when = now - timedelta(hours=72 - h, minutes=rng.randint(0, 59))
        raw.append({{"url": f"https://soak.example.com/history/{{ticker}}/{{h}}",
                     "headline": f"{{name}} {{rng.choice(quiet)}} (note {{h}})", "published_at": when.isoformat()}})
services.ingest_items(raw, services.source_named("soak-history-" + tag))
sub = WebhookSubscription.objects.create(url=url, description="soak receiver", event_types=["alert.firing"],
                                         scopes=[f"company:{{c['ticker']}}" for c in companies])
queue_classification()
print("BURST" + json.dumps({{"companies": companies, "secret": sub.secret}}))
"""
BURST_EVERY_S = 150.0
BURST_ITEMS = 30
BURST_LINES = ["defaults on its bonds", "shares plunge after fraud probe", "misses debt payment, lenders circle",
               "cuts guidance as losses mount", "faces regulator lawsuit over accounting", "warns of bankruptcy risk"]

QUESTIONS = [
    "Hi, where is my order 4711?", "My card was declined at checkout", "How do I return a damaged kettle?",
    "I forgot my password", "Can I change the delivery address for order 5521?", "Do you ship to Norway?",
    "The coupon code does not work", "When will my refund arrive?", "I want to talk to a human",
]
OPS = ("chat", "chat_open", "news_ingest", "recommend", "score", "burst_ingest")


def percentile(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def slope_per_min(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MB) points, in MB per minute."""
    if len(points) < 3:
        return None
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    var = sum((p[0] - mx) ** 2 for p in points)
    if var == 0:
        return None
    return 60 * sum((p[0] - mx) * (p[1] - my) for p in points) / var


class Load:
    """The load generator. Open loop by default: news and recommend calls are paced to a
    target rate (a call that runs late is followed at once, without piling up debt), and
    each chat visitor waits a random think time (exponential, mean ``chat_think_s``)
    between messages, as a person reads the reply and types. A rate or think time of 0
    makes that kind closed loop (the next call as soon as the answer is in: a stress run)."""

    def __init__(self, port: int, info: dict, tag: str, news_batch: int, news_period_s: float = 0.0,
                 rec_period_s: float = 0.0, chat_think_s: float = 0.0):
        self.port = port
        self.info = info
        self.tag = tag
        self.news_batch = news_batch
        self.period = {"news": news_period_s, "recommend": rec_period_s}
        self.chat_think_s = chat_think_s
        self.lock = threading.Lock()
        self.measuring = False
        self.samples: dict[str, list[float]] = {k: [] for k in OPS}
        self.errors: dict[str, list[str]] = {k: [] for k in OPS}
        self.refused: dict[str, int] = {k: 0 for k in OPS}
        self.created_items = 0  # stored by a 2xx answer (during the whole run, warm-up included)
        self.stale_retries = 0  # requests re-sent because the server had closed the idle connection
        self.seq = 0

    def _next(self) -> int:
        with self.lock:
            self.seq += 1
            return self.seq

    def call(self, conn, op: str, method: str, path: str, token: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        t0 = time.perf_counter()
        for attempt in (1, 2):
            reused = conn.sock is not None
            try:
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
                status = resp.status
                break
            except (OSError, http.client.HTTPException) as exc:
                status, payload = 0, f"{type(exc).__name__}: {exc}".encode()
                conn.close()
                # The server closed an idle keep-alive connection before this request reached it:
                # send it again on a new connection, as browsers and HTTP libraries do. Counted.
                if not (reused and attempt == 1 and isinstance(exc, BrokenPipeError | ConnectionResetError
                                                               | http.client.RemoteDisconnected)):
                    break
                with self.lock:
                    self.stale_retries += 1
        ms = (time.perf_counter() - t0) * 1000
        with self.lock:
            if self.measuring:
                if 200 <= status < 300:
                    self.samples[op].append(ms)
                elif status == 429:
                    self.refused[op] += 1
                else:
                    self.errors[op].append(f"{status} {method} {path}: {payload[:200]!r}")
        return status, payload

    def client(self, stop: threading.Event, kind: str, seed: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        tok = self.info["tokens"]
        conv, sent = None, 0
        rng = random.Random(seed)
        period = self.period.get(kind, 0.0)
        # Paced clients start spread over one period, not in step.
        next_at = time.monotonic() + (rng.random() * period if period else 0.0)
        while not stop.is_set():
            if period:
                now = time.monotonic()
                if next_at > now and stop.wait(next_at - now):
                    break
                next_at = max(next_at + period, time.monotonic() - period)
            n = self._next()
            if kind == "chat":
                if conv is None or sent >= 5:
                    st, body = self.call(conn, "chat_open", "POST", "/support/api/conversations/", tok["support"], {})
                    conv, sent = (json.loads(body)["id"] if st == 201 else None), 0
                    continue
                self.call(conn, "chat", "POST", f"/support/api/conversations/{conv}/messages/", tok["support"],
                          {"text": rng.choice(QUESTIONS)})
                sent += 1
                if self.chat_think_s and stop.wait(rng.expovariate(1.0 / self.chat_think_s)):
                    break
            elif kind == "news":
                items = [{"url": f"https://soak.example.com/{self.tag}/{n}/{i}",
                          "headline": f"Soak {self.tag} {n}.{i}: {rng.choice(['Acme', 'Globex', 'Initech'])} "
                                      f"{rng.choice(['misses bond payment', 'beats estimates', 'faces probe'])}",
                          "published_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
                         for i in range(self.news_batch)]
                st, body = self.call(conn, "news_ingest", "POST", "/sentiment/api/news/", tok["sentiment"],
                                     {"source": f"soak-{self.tag}", "items": items})
                if 200 <= st < 300:
                    with self.lock:
                        self.created_items += json.loads(body).get("created", 0)
                elif st == 429:
                    time.sleep(1.0)  # what a client does with Retry-After (shortened)
            else:
                user = rng.choice(self.info["users"]) if self.info["users"] else f"new-{n}"
                if n % 2:
                    self.call(conn, "recommend", "POST", "/recommend/api/recommend/", tok["recommend"],
                              {"user_id": user, "k": 10})
                else:
                    cands = rng.sample(self.info["items"], min(100, len(self.info["items"])))
                    self.call(conn, "score", "POST", "/recommend/api/score/", tok["recommend"],
                              {"user_id": user, "candidates": cands})
        conn.close()


class Receiver:
    """A webhook receiver on loopback. It checks each delivery's Standard Webhooks signature
    itself (not with the app's code) and records when the first signed alert.firing of each
    key arrived."""

    def __init__(self):
        self.secret: str | None = None
        self.lock = threading.Lock()
        self.first_firing: dict[str, float] = {}
        self.received = 0
        self.bad_signatures = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server interface
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.take(self.headers, body)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):  # quiet
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def verified(self, headers, body: bytes) -> bool:
        if not self.secret:
            return False
        key = base64.b64decode(self.secret.removeprefix("whsec_"))
        signed = f"{headers.get('webhook-id')}.{headers.get('webhook-timestamp')}.".encode() + body
        want = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        return any(hmac.compare_digest(want, sig) for sig in (headers.get("webhook-signature") or "").split())

    def take(self, headers, body: bytes) -> None:
        t = time.monotonic()
        ok = self.verified(headers, body)
        try:
            event = json.loads(body)
        except ValueError:
            event = {}
        with self.lock:
            self.received += 1
            if not ok:
                self.bad_signatures += 1
                return
            if event.get("type") == "alert.firing":
                self.first_firing.setdefault(str(event.get("data", {}).get("key")), t)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def burster(load: Load, stop: threading.Event, companies: list[dict], every_s: float, until: float,
            posted: list[dict]) -> None:
    """One burst of negative news per ``every_s`` for the next probe company, until ``until``."""
    conn = http.client.HTTPConnection("127.0.0.1", load.port, timeout=60)
    rng = random.Random(7)
    for c in companies:
        if stop.wait(every_s / 3 if not posted else every_s) or time.monotonic() > until:
            break
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        items = [{"url": f"https://soak.example.com/{load.tag}/burst/{c['ticker']}/{i}",
                  "headline": f"{c['name']} {rng.choice(BURST_LINES)} (report {i})", "published_at": now}
                 for i in range(BURST_ITEMS)]
        t0 = time.monotonic()
        st, _ = load.call(conn, "burst_ingest", "POST", "/sentiment/api/news/", load.info["tokens"]["sentiment"],
                          {"source": f"soak-burst-{load.tag}", "items": items})
        posted.append({"ticker": c["ticker"], "t_post": t0, "status": st})
    conn.close()


def prepare(stack: Stack) -> dict:
    """Demo data and models, once per soak database (idempotent commands)."""
    marker = stack.root / "prepared"
    if not marker.exists():
        print("soak: preparing demo data and training models (once)…", flush=True)
        stack.manage("support_demo", "--sync")
        stack.manage("sentiment_demo")
        stack.manage("recommend_demo", "--no-train")
        stack.manage("shell", "-c", "from apps.recommend import services; "
                     "print(services.train_recommender(lambda p, m: None))")
        marker.write_text("ok")
    out = stack.manage("shell", "-c", PREPARE)
    return json.loads(out.split("SOAK", 1)[1])


def drain_backlog(stack: Stack, timeout_s: float = 900.0) -> dict:
    """Let the workers classify what is pending before the window opens (the probes' quiet
    history, news an interrupted run left): the window then measures the offered load
    alone, not the recovery from an earlier one."""
    stack.manage("shell", "-c", "from apps.sentiment.tasks import queue_classification; queue_classification()")
    t0 = time.monotonic()
    with pg(stack.db) as conn:
        def pending() -> int:
            return conn.execute("SELECT count(*) FROM sentiment_newsitem WHERE pending").fetchone()[0]

        first = n = pending()
        while n and time.monotonic() - t0 < timeout_s:
            print(f"soak: {n} items pending before the window; waiting for the workers", flush=True)
            time.sleep(5)
            n = pending()
    if n:
        raise SystemExit(f"soak: {n} items still pending after {timeout_s:.0f} s of draining before the window")
    return {"pending_before_window": first, "drained_in_s": round(time.monotonic() - t0, 1)}


class Sampler(threading.Thread):
    """Every 2 s: queued/running classification jobs, pending items, RSS of each process, load."""

    def __init__(self, stack: Stack, interval: float = 2.0):
        super().__init__(daemon=True)
        self.stack = stack
        self.interval = interval
        self.stop_ev = threading.Event()
        self.rows: list[dict] = []
        self.t0 = time.monotonic()

    def run(self) -> None:
        conn = pg(self.stack.db)
        while not self.stop_ev.is_set():
            try:
                q, r = conn.execute(
                    "SELECT count(*) FILTER (WHERE state = 'queued'), count(*) FILTER (WHERE state = 'running') "
                    "FROM common_job WHERE kind = 'sentiment.classify' AND state IN ('queued', 'running')"
                ).fetchone()
                pending = conn.execute(
                    # Recent news only: a count over the whole table every 2 s would load the
                    # database more than the pipeline under test (the drain check below is complete).
                    "SELECT count(*) FROM sentiment_newsitem n WHERE n.ingested_at > now() - interval '15 minutes' "
                    "AND NOT EXISTS (SELECT 1 FROM sentiment_classification c WHERE c.item_id = n.id)").fetchone()[0]
            except Exception as exc:  # noqa: BLE001 - one missed sample is not a failed run
                print(f"soak: sample failed: {exc}", flush=True)
                time.sleep(self.interval)
                continue
            self.rows.append({"t": round(time.monotonic() - self.t0, 1), "queued": q, "running": r,
                              "pending": pending, "load1": os.getloadavg()[0],
                              "rss_kb": self.stack.rss()})
            self.stop_ev.wait(self.interval)
        conn.close()


def run(seconds: float, chat_clients: int = 8, news_clients: int = 2, rec_clients: int = 2,
        news_batch: int = 50, gunicorn_workers: int = 2, warmup_s: float = 30.0, db: str = DEFAULT_DB,
        news_rate: float = 100.0, rec_rate: float = 4.0, chat_think_s: float = 3.0,
        redis_url: str | None = None, root: Path | None = None) -> dict:
    root = root or REPO / "var" / "soak"
    # The probe's webhook receiver listens on loopback, which the guarded client refuses by default.
    stack = Stack(root, db, redis_url, env={"AIGC_ALLOW_PRIVATE_URLS": "1"})
    stack.preflight()
    if redis_url:
        stack.flush_redis()
    # A time limit (SIGTERM) must still stop the servers this run started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tag = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    try:
        stack.start_services()
        info = prepare(stack)
        receiver = Receiver()
        every_s = min(BURST_EVERY_S, max(20.0, seconds / 4))
        n_bursts = int(seconds // every_s) + 1
        probe = json.loads(stack.manage("shell", "-c", BURST_SETUP.format(
            tag=tag[-6:], n=n_bursts, url=f"http://127.0.0.1:{receiver.port}/hook")).split("BURST", 1)[1])
        receiver.secret = probe["secret"]
        stack.start_workers(2, concurrency=1)
        stack.start_beat()
        stack.start_web(gunicorn_workers)
        before = drain_backlog(stack)
        load = Load(stack.http_port, info, tag, news_batch,
                    news_period_s=news_batch * news_clients / news_rate if news_rate else 0.0,
                    rec_period_s=rec_clients / rec_rate if rec_rate else 0.0, chat_think_s=chat_think_s)
        stop = threading.Event()
        kinds = ["chat"] * chat_clients + ["news"] * news_clients + ["recommend"] * rec_clients
        threads = [threading.Thread(target=load.client, args=(stop, k, i), daemon=True) for i, k in enumerate(kinds)]
        sampler = Sampler(stack)
        sampler.start()
        for t in threads:
            t.start()
        time.sleep(warmup_s)  # every process loads its models, caches warm: not measured
        with load.lock:
            load.measuring = True
        t_start = time.monotonic()
        cpu_start = {**stack.cpu(), "load generator (this process)": cpu_s(os.getpid())}
        posted: list[dict] = []
        burst_thread = threading.Thread(target=burster, args=(load, stop, probe["companies"], every_s,
                                                              t_start + seconds - 10, posted), daemon=True)
        burst_thread.start()
        wall_start = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        sample_start = len(sampler.rows)
        while time.monotonic() - t_start < seconds:
            time.sleep(min(5.0, max(0.2, seconds - (time.monotonic() - t_start))))
        with load.lock:
            load.measuring = False
            samples = {k: list(v) for k, v in load.samples.items()}
            errors = {k: list(v) for k, v in load.errors.items()}
            refused = dict(load.refused)
        elapsed = time.monotonic() - t_start
        cpu_end = {**stack.cpu(), "load generator (this process)": cpu_s(os.getpid())}
        # Cores each process used on average in the window: where the machine's time went.
        cores_used = {k: round((cpu_end[k] - v) / elapsed, 3) for k, v in cpu_start.items() if k in cpu_end}
        wall_end = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        stop.set()
        for t in threads + [burst_thread]:
            t.join(timeout=70)
        # The last bursts' webhooks may still be on their way: wait for them (at most 120 s).
        t_wait = time.monotonic() + 120
        while time.monotonic() < t_wait and any(b["ticker"] not in receiver.first_firing for b in posted
                                                if 200 <= b["status"] < 300):
            time.sleep(0.5)
        measured_rows = sampler.rows[sample_start:]
        # Drain: every stored item must end up classified (at most 300 s).
        t_drain = time.monotonic()
        with pg(db) as conn:
            def unclassified() -> int:
                return conn.execute(
                    "SELECT count(*) FROM sentiment_newsitem n JOIN sentiment_newssource s ON s.id = n.source_id "
                    "WHERE s.name = %s AND NOT EXISTS (SELECT 1 FROM sentiment_classification c "
                    "WHERE c.item_id = n.id)", (f"soak-{tag}",)).fetchone()[0]

            backlog = unclassified()
            while unclassified() and time.monotonic() - t_drain < 300:
                time.sleep(1)
            drain_s = time.monotonic() - t_drain
            lost = unclassified()
            stored, classified, doubled = conn.execute(
                "SELECT count(*), count(c.id), count(*) - count(DISTINCT n.id) FROM sentiment_newsitem n "
                "JOIN sentiment_newssource s ON s.id = n.source_id LEFT JOIN sentiment_classification c "
                "ON c.item_id = n.id WHERE s.name = %s", (f"soak-{tag}",)).fetchone()
            lag = conn.execute(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x), percentile_cont(0.95) WITHIN GROUP "
                "(ORDER BY x), max(x) FROM (SELECT extract(epoch FROM c.classified_at - n.ingested_at)::float8 AS x "
                "FROM sentiment_newsitem n JOIN sentiment_newssource s ON s.id = n.source_id "
                "JOIN sentiment_classification c ON c.item_id = n.id WHERE s.name = %s "
                "AND n.ingested_at BETWEEN %s AND %s) t", (f"soak-{tag}", wall_start, wall_end)).fetchone()
            in_window = conn.execute(
                "SELECT count(*) FROM sentiment_classification c JOIN sentiment_newsitem n ON n.id = c.item_id "
                "JOIN sentiment_newssource s ON s.id = n.source_id WHERE s.name = %s "
                "AND c.classified_at BETWEEN %s AND %s", (f"soak-{tag}", wall_start, wall_end)).fetchone()[0]
            ingested_in_window = conn.execute(
                "SELECT count(*) FROM sentiment_newsitem n JOIN sentiment_newssource s ON s.id = n.source_id "
                "WHERE s.name = %s AND n.ingested_at BETWEEN %s AND %s",
                (f"soak-{tag}", wall_start, wall_end)).fetchone()[0]
            jobs = {f"{k} {s}": n for k, s, n in conn.execute(
                "SELECT kind, state, count(*) FROM common_job WHERE created_at >= %s GROUP BY kind, state "
                "ORDER BY kind, state", (wall_start,)).fetchall()}
            failed_jobs = [r[0][:300] for r in conn.execute(
                "SELECT error FROM common_job WHERE created_at >= %s AND state = 'failed' LIMIT 5",
                (wall_start,)).fetchall()]
        sampler.stop_ev.set()
        sampler.join(timeout=10)
    finally:
        stop_s = stack.stop()
        if "receiver" in locals():
            receiver.close()
    bursts = [{"ticker": b["ticker"], "status": b["status"],
               "webhook_s": (receiver.first_firing[b["ticker"]] - b["t_post"])
               if b["ticker"] in receiver.first_firing else None} for b in posted]
    delivered = [b["webhook_s"] for b in bursts if b["webhook_s"] is not None]
    # A burst whose webhook never came counts as slower than any that did.
    burst_lat = delivered + [float("inf")] * (len(bursts) - len(delivered))
    burst_p95 = percentile(burst_lat, 0.95)
    webhooks = {"bursts": len(bursts), "webhooks_received": len(delivered),
                "missing": len(bursts) - len(delivered), "p50_s": percentile(burst_lat, 0.5),
                "p95_s": burst_p95, "max_s": max(burst_lat) if burst_lat else None,
                "deliveries_received": receiver.received, "bad_signatures": receiver.bad_signatures,
                "every_s": every_s, "items_per_burst": BURST_ITEMS, "each": bursts}
    ops = {}
    for op, xs in samples.items():
        ops[op] = {"ok": len(xs), "errors": len(errors[op]), "refused_429": refused[op],
                   "rps": len(xs) / elapsed, "p50_ms": percentile(xs, 0.5), "p95_ms": percentile(xs, 0.95),
                   "max_ms": max(xs) if xs else None, "first_errors": errors[op][:5]}
    # Memory: per process, MB at start / end of the measured window and the slope over its last 20 minutes.
    memory = {}
    names = sorted({n for r in measured_rows for n in r["rss_kb"]})
    last20_from = (measured_rows[-1]["t"] - 1200) if measured_rows else 0
    for name in names:
        pts = [(r["t"], r["rss_kb"][name] / 1024) for r in measured_rows if name in r["rss_kb"]]
        if not pts:
            continue
        memory[name] = {"start_mb": pts[0][1], "end_mb": pts[-1][1],
                        "slope_last_20min_mb_per_min": slope_per_min([p for p in pts if p[0] >= last20_from]),
                        "slope_all_mb_per_min": slope_per_min(pts)}
    loads = [r["load1"] for r in measured_rows]
    queued = [r["queued"] for r in measured_rows]
    pending = [r["pending"] for r in measured_rows]
    worker_slopes = [m["slope_last_20min_mb_per_min"] for n, m in memory.items() if n.startswith("worker")
                     and m["slope_last_20min_mb_per_min"] is not None]
    five_xx = sum(1 for op in errors for e in errors[op] if e[:1] in {"5", "0"})
    web_stop = max((v for k, v in stop_s.items() if k != "redis"), default=None)
    pipeline = {"items_created_by_2xx_answers": load.created_items, "items_stored": stored,
                "items_classified": classified, "items_lost": lost, "items_classified_twice": doubled,
                "backlog_when_load_stopped": backlog, "drain_s": drain_s,
                "ingested_in_window": ingested_in_window, "classified_in_window": in_window,
                "classified_per_s": in_window / elapsed, "offered_items_per_s": ingested_in_window / elapsed,
                "lag_p50_s": lag[0], "lag_p95_s": lag[1], "lag_max_s": lag[2],
                "queued_classify_jobs_max": max(queued) if queued else None,
                "queued_classify_jobs_mean": sum(queued) / len(queued) if queued else None,
                "pending_items_max": max(pending) if pending else None,
                "jobs_created_during_run": jobs, "failed_job_errors": failed_jobs}
    targets = [
        ["errors: 5xx + transport errors", five_xx, "0", "0"],
        ["errors: items lost (stored, never classified after 300 s drain)", lost, "0", "0"],
        ["items classified twice", doubled, "0", "0"],
        ["queued classification jobs, max of 2-s samples", pipeline["queued_classify_jobs_max"], "≤ 2", "1"],
        ["ingest → classified lag p95 s", lag[1], "≤ 30", "≤ 5"],
        ["ingest → classified lag p50 s", lag[0], "", ""],
        ["items classified per s (measured window)", pipeline["classified_per_s"], "≥ 50", "≥ 200"],
        ["items offered per s (stored by ingest)", pipeline["offered_items_per_s"], "", ""],
        [f"chat reply p95 ms at {chat_clients} concurrent visitors", ops["chat"]["p95_ms"], "≤ 150", "≤ 50"],
        ["worker RSS slope, last 20 min, worst worker MB/min", max(worker_slopes) if worker_slopes else None,
         "≤ 2", "≤ 0.5"],
        ["slowest process to stop on the run command's signals s", web_stop, "≤ 10", "≤ 3"],
        ["burst → signed webhook at receiver p95 s", burst_p95, "≤ 60", "≤ 10"],
        ["bursts whose webhook never arrived / signatures that failed",
         f"{webhooks['missing']} of {len(bursts)} / {receiver.bad_signatures}", "0", "0"],
    ]
    load_note = (f"Load average (1 min) during the measured window: mean {sum(loads) / len(loads):.1f}, "
                 f"max {max(loads):.1f} on {os.cpu_count()} cores (the machine is shared)." if loads else "")
    return {
        "summary": (f"{elapsed / 60:.1f}-minute soak after {warmup_s:.0f} s of warm-up, against the run command's "
                    f"server (gunicorn {gunicorn_workers} uvicorn workers) + PostgreSQL + Redis + 2 Celery workers "
                    f"(concurrency 1, nice {WORKER_NICE}) + beat, all on this machine; the window opens once the "
                    f"workers have drained what was pending ({before['pending_before_window']} items, "
                    f"{before['drained_in_s']:.0f} s). Offered load: {chat_clients} chat visitors "
                    + (f"(each waits a random think time, mean {chat_think_s:g} s, between messages)" if chat_think_s
                       else "(closed loop: no think time)")
                    + f", news ingest {'at ' + format(news_rate, 'g') + ' items/s' if news_rate else 'closed loop'} "
                    f"({news_clients} clients, {news_batch} items per call), recommend/score "
                    f"{'at ' + format(rec_rate, 'g') + ' calls/s' if rec_rate else 'closed loop'} ({rec_clients} clients), "
                    f"and a burst probe. {load_note}"),
        "seconds": elapsed, "warmup_s": warmup_s, "database": db, "redis": redis_url or "private redis-server",
        "clients": {"chat": chat_clients, "news": news_clients, "recommend": rec_clients, "news_batch": news_batch,
                    "news_rate_items_per_s": news_rate, "recommend_rate_per_s": rec_rate,
                    "chat_think_s": chat_think_s},
        "gunicorn_workers": gunicorn_workers, "celery_workers": 2, "worker_nice": int(WORKER_NICE),
        "models": info.get("models"), "before_window": before, "cores_used": cores_used,
        "stale_connection_retries": load.stale_retries,
        "ops": ops, "pipeline": pipeline, "webhooks": webhooks, "memory": memory, "stop_s": stop_s,
        "load_avg_during": {"mean": sum(loads) / len(loads) if loads else None, "max": max(loads) if loads else None},
        "samples": measured_rows[::5],
        "tables": [
            table("Targets of issue 15 (floor = must, goal)", ["figure", "measured", "floor", "goal"], targets,
                  [load_note,
                   f"Bursts: every {every_s:.0f} s one probe company (three days of quiet history, a 5-minute "
                   f"negative-count rule of its own) gets {BURST_ITEMS} negative headlines in one ingest call; "
                   "the time is from that call to the first alert.firing for it at a receiver on loopback that "
                   "checks the Standard Webhooks signature itself. A burst with no webhook counts as infinite."]),
            table("Requests", ["operation", "ok", "5xx/transport errors", "refused 429", "req/s", "p50 ms",
                               "p95 ms", "max ms"],
                  [[op, o["ok"], o["errors"], o["refused_429"], o["rps"], o["p50_ms"], o["p95_ms"], o["max_ms"]]
                   for op, o in ops.items()]),
            table("Resident memory (process with its forked children)",
                  ["process", "start MB", "end MB", "slope last 20 min MB/min", "slope whole run MB/min"],
                  [[n, m["start_mb"], m["end_mb"], m["slope_last_20min_mb_per_min"], m["slope_all_mb_per_min"]]
                   for n, m in memory.items()]),
            table("Classification pipeline", ["measure", "value"],
                  [[k, v if not isinstance(v, dict | list) else json.dumps(v)] for k, v in pipeline.items()]),
            table("Cores used on average in the window (CPU seconds / window seconds)", ["process", "cores"],
                  [list(kv) for kv in sorted(cores_used.items(), key=lambda kv: -kv[1])],
                  [f"{os.cpu_count()} cores in all; web and PostgreSQL at normal priority, the Celery "
                   f"workers at nice {WORKER_NICE}."]),
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=None, help="measured duration (at most 40)")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--chat-clients", type=int, default=8)
    parser.add_argument("--news-clients", type=int, default=2)
    parser.add_argument("--recommend-clients", type=int, default=2)
    parser.add_argument("--news-batch", type=int, default=50, help="items per ingest call")
    parser.add_argument("--news-rate", type=float, default=100.0, help="offered news items/s (0: closed loop)")
    parser.add_argument("--recommend-rate", type=float, default=4.0, help="recommend + score calls/s (0: closed loop)")
    parser.add_argument("--chat-think-s", type=float, default=3.0,
                        help="mean pause of a chat visitor between messages (0: closed loop)")
    parser.add_argument("--gunicorn-workers", type=int, default=2)
    parser.add_argument("--db", default=os.environ.get("SOAK_DB", DEFAULT_DB), help="PostgreSQL database (kept)")
    parser.add_argument("--redis-url", default=os.environ.get("SOAK_REDIS_URL") or None,
                        help="a Redis db to use (flushed first); default: a private redis-server")
    parser.add_argument("--root", default=os.environ.get("SOAK_ROOT") or None,
                        help="scratch folder (logs, artifacts, the prepared marker); default var/soak")
    args = parser.parse_args(argv)
    seconds = args.seconds if args.seconds is not None else 60 * (args.minutes or 1)
    if seconds > 2400:
        parser.error("a soak is bounded to 40 minutes")
    command = "python -m bench.soak " + " ".join(sys.argv[1:] if argv is None else argv)
    t0 = time.perf_counter()
    load_at_start = os.getloadavg()
    try:
        result = run(seconds, args.chat_clients, args.news_clients, args.recommend_clients, args.news_batch,
                     args.gunicorn_workers, db=args.db, redis_url=args.redis_url, news_rate=args.news_rate,
                     rec_rate=args.recommend_rate, chat_think_s=args.chat_think_s,
                     root=Path(args.root) if args.root else None)
    except StackUnavailable as exc:
        parser.error(str(exc))
    quick = seconds < 600
    path = write_result("soak", result, quick, time.perf_counter() - t0, command, load_at_start)
    from bench.report import regenerate

    regenerate()
    print(f"wrote {path}")
    for t in result["tables"][:2]:
        for row in t["rows"]:
            print(" | ".join(str(x) for x in row))
    bad = sum(o["errors"] for o in result["ops"].values()) + (result["pipeline"]["items_lost"] or 0)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
