"""Area 8 — the suite served as in production, on loopback only, on the soak's
stack (``bench/stack.py``): PostgreSQL (127.0.0.1:5432, a scratch database
``aigc_bench``), Redis (127.0.0.1:6379, db 14) as the Celery broker, one Celery
worker, and the run command's server (gunicorn with ``config/gunicorn.py``: 2
uvicorn workers, one per core). The demo data (``manage.py demo``) is loaded and its training jobs run on
that worker; then, through the HTTP APIs with scoped API tokens:

- chat: ``POST /support/api/conversations/<id>/messages/`` (the bot's reply is
  in the response) with 1, 8 and 32 concurrent clients for a fixed time each
  (a thread-per-client load generator; a new conversation every 3 messages);
- sentiment: a batch of headlines ``POST /sentiment/api/news/``; the worker's
  classification job's items/s (job start to finish) and end to end;
- recommend: ``POST /recommend/api/score/`` with 100 candidate ids, and
  ``POST /recommend/api/recommend/`` (k=10), sequential calls, p50/p95.
Everything the stack starts it stops (by process group). The prepared
database and models (bench/.cache/serving, database ``aigc_bench``) are kept and
reused by the next run (BENCH_SERVING_FRESH=1 rebuilds them); the measurements
are always new.
"""
from __future__ import annotations

import http.client
import json
import os
import random
import shutil
import signal
import sys
import threading
import time

from bench.harness import CACHE_DIR, REPO, percentiles, table
from bench.stack import Stack, StackUnavailable, db_exists, drop_db, pg, reset_db

DB = "aigc_bench"
REDIS_DB = 14


def jobs(kind_prefix: str = "") -> list[tuple]:
    with pg(DB) as conn:
        return conn.execute("SELECT id, kind, state, started_at, finished_at, error FROM common_job "
                            "WHERE kind LIKE %s ORDER BY id", (kind_prefix + "%",)).fetchall()


def wait_jobs(deadline_s: float, kind_prefix: str = "") -> list[tuple]:
    t_end = time.monotonic() + deadline_s
    while time.monotonic() < t_end:
        rows = jobs(kind_prefix)
        if rows and all(r[2] in ("succeeded", "failed") for r in rows):
            return rows
        time.sleep(2)
    raise TimeoutError(f"jobs still running after {deadline_s:.0f} s: {[(r[1], r[2]) for r in jobs(kind_prefix)]}")


class Client:
    """One keep-alive HTTP/1.1 connection with a bearer token."""

    def __init__(self, port: int, token: str):
        self.port, self.token = port, token
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def call(self, method: str, path: str, body=None) -> tuple[int, dict, float]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        t0 = time.perf_counter()
        try:
            self.conn.request(method, path, body=data, headers=headers)
            resp = self.conn.getresponse()
            raw = resp.read()
        except (http.client.HTTPException, OSError):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            return 599, {}, time.perf_counter() - t0
        dt = time.perf_counter() - t0
        try:
            payload = json.loads(raw) if raw else {}
        except ValueError:
            payload = {}
        return resp.status, payload, dt


def chat_load(port: int, token: str, questions: list[str], clients: int, duration: float) -> dict:
    lat: list[float] = []
    errors = [0]
    handoffs = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + duration

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        c = Client(port, token)
        conv, sent = None, 0
        while time.monotonic() < stop_at:
            if conv is None or sent >= 3:
                st, body, _ = c.call("POST", "/support/api/conversations/", {})
                if st != 201:
                    with lock:
                        errors[0] += 1
                    continue
                conv, sent = body["id"], 0
            st, body, dt = c.call("POST", f"/support/api/conversations/{conv}/messages/", {"text": rng.choice(questions)})
            sent += 1
            with lock:
                if st == 201:
                    lat.append(dt)
                    if body.get("status") not in (None, "open", "bot"):
                        handoffs[0] += 1
                else:
                    errors[0] += 1
            if st == 201 and body.get("status") not in (None, "open", "bot"):
                conv = None  # handed off: the next message goes to a new conversation

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    return {"clients": clients, "duration_s": wall, "replies": len(lat), "errors": errors[0],
            "handed_off_replies": handoffs[0], "replies_per_s": len(lat) / wall,
            **{f"{k}_ms": v * 1e3 for k, v in percentiles(lat).items()}}


def demo_questions() -> list[str]:
    out = []
    for line in (REPO / "fixtures" / "support" / "transcripts.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row.get("speaker") == "customer" and len(row.get("text", "")) > 12:
            out.append(row["text"])
    return out[:500]


def run(quick: bool) -> dict:
    from bench import datasets

    root = CACHE_DIR / "serving"
    setup_file = root / "setup.json"
    reuse = setup_file.exists() and not os.environ.get("BENCH_SERVING_FRESH") and db_exists(DB)
    if not reuse:
        shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    keep = json.loads(setup_file.read_text())["env"] if reuse else {"AIGC_DEMO_PASSWORD": "bench-" + os.urandom(6).hex()}
    stack = Stack(root, DB, f"redis://127.0.0.1:6379/{REDIS_DB}", env=keep)
    try:
        stack.preflight()
    except StackUnavailable as exc:
        return {"status": "skipped", "status_detail": str(exc), "tables": []}
    # A time limit (SIGTERM) must still stop the servers this run started: turn it into SystemExit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ok = False
    try:
        if not reuse:
            reset_db(DB)
        stack.flush_redis()
        stack.start_services(migrate=False)
        stack.start_workers(1, concurrency=1)
        if reuse:
            setup = json.loads(setup_file.read_text())["setup"]
        else:
            # A fresh database, the demo data of each app, and its models trained (support and
            # recommend on the worker, sentiment inside its demo command, as the apps do).
            times: dict[str, float] = {}
            t0 = time.perf_counter()
            stack.manage("migrate", "--noinput")
            times["migrate_s"] = time.perf_counter() - t0
            for cmd in (["support_demo"], ["sentiment_demo"] + (["--epochs", "3"] if quick else []), ["recommend_demo"]):
                t0 = time.perf_counter()
                stack.manage(*cmd, timeout=3600)
                times[f"{cmd[0]}_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            wait_jobs(3600)
            times["queued_training_wait_s"] = time.perf_counter() - t0
            setup = {"times": times, "prepared_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     "load_avg": list(os.getloadavg()),
                     "jobs": [{"kind": r[1], "state": r[2], "s": (r[4] - r[3]).total_seconds() if r[3] and r[4] else None,
                               "error": (r[5] or "")[:300]} for r in jobs()]}
            setup_file.write_text(json.dumps({"setup": setup, "env": keep}, indent=2))
        demo_jobs = setup["jobs"]
        tokens = {app: stack.manage("create_token", f"bench-{app}", app).strip().splitlines()[-1]
                  for app in ("support", "sentiment", "recommend")}
        stack.start_web(2)  # the run command's server: gunicorn + uvicorn workers (config/gunicorn.py)
        port = stack.http_port

        # Chat.
        questions = demo_questions()
        warm = Client(port, tokens["support"])
        st, conv, _ = warm.call("POST", "/support/api/conversations/", {})
        for q in questions[:4]:
            warm.call("POST", f"/support/api/conversations/{conv.get('id')}/messages/", {"text": q})
        duration = 8.0 if quick else 20.0
        chat = [chat_load(port, tokens["support"], questions, c, duration) for c in (1, 8, 32)]

        # Sentiment classification on the worker.
        pb = datasets.phrasebank("50").data.texts
        n_items = 1000
        # Unique per run (the app deduplicates by url and by content): the run tag goes in url and body.
        tag = time.strftime("%Y%m%d%H%M%S", time.gmtime())
        c = Client(port, tokens["sentiment"])

        def post_batch(texts: list[str], prefix: str) -> tuple[dict, float, list]:
            items = [{"url": f"https://bench.invalid/{tag}/{prefix}/{i}", "headline": t[:490],
                      "body": f"Bench run {tag}.", "published_at": "2026-11-01T00:00:00Z"} for i, t in enumerate(texts)]
            t_post = time.perf_counter()
            st, body, post_s = c.call("POST", "/sentiment/api/news/", {"source": "bench", "items": items})
            if st not in (200, 201) or not body.get("classify_job"):
                raise RuntimeError(f"news batch refused or queued no classification job: {st} {body}")
            t_end = time.monotonic() + 600
            while True:
                done = [r for r in jobs("sentiment.classify") if r[0] >= body["classify_job"]]
                if done and all(r[2] in ("succeeded", "failed") for r in done):
                    return {**body, "post_s": post_s}, time.perf_counter() - t_post, done
                if time.monotonic() > t_end:
                    raise TimeoutError("classification jobs still running after 600 s")
                time.sleep(0.2)

        post_batch(pb[-20:], "warm-up")  # the worker loads the encoder and the classifier once
        body, e2e, cls_jobs = post_batch(pb[:n_items], "news")
        post_s = body["post_s"]
        job_s = (max(r[4] for r in cls_jobs) - min(r[3] for r in cls_jobs if r[3])).total_seconds()
        sentiment = {"items": n_items, "created": body.get("created"), "ingest_post_s": post_s,
                     "classify_job_s": job_s, "items_per_s_job": n_items / job_s if job_s else None,
                     "items_per_s_end_to_end": n_items / e2e, "jobs": len(cls_jobs),
                     "job_states": [r[2] for r in cls_jobs]}

        # Recommend: score 100 candidates, recommend k=10.
        import csv

        with (REPO / "fixtures" / "recommend" / "items.csv").open() as fh:
            item_rows = list(csv.DictReader(fh))
        with (REPO / "fixtures" / "recommend" / "events.csv").open() as fh:
            event_rows = list(csv.DictReader(fh))
        id_key = next(k for k in item_rows[0] if k in ("id", "item_id", "external_id"))
        user_key = next(k for k in event_rows[0] if k in ("user", "user_id"))
        item_ids = [r[id_key] for r in item_rows]
        users = sorted({r[user_key] for r in event_rows})
        rng = random.Random(0)
        c = Client(port, tokens["recommend"])
        n_calls = 60 if quick else 200
        score_lat, rec_lat, errors = [], [], 0
        for i in range(n_calls + 5):
            st, _, dt = c.call("POST", "/recommend/api/score/",
                               {"user_id": rng.choice(users), "candidates": rng.sample(item_ids, min(100, len(item_ids)))})
            if st == 200 and i >= 5:
                score_lat.append(dt)
            errors += st != 200
            st, _, dt = c.call("POST", "/recommend/api/recommend/", {"user_id": rng.choice(users), "k": 10})
            if st == 200 and i >= 5:
                rec_lat.append(dt)
            errors += st != 200
        recommend = {"calls": n_calls, "errors": errors, "candidates": min(100, len(item_ids)),
                     "score_ms": {k: v * 1e3 for k, v in percentiles(score_lat).items()},
                     "recommend_ms": {k: v * 1e3 for k, v in percentiles(rec_lat).items()}}
        ok = True
    finally:
        stack.stop()
        if not ok and not reuse:
            try:  # a half-prepared database is not worth keeping
                drop_db(DB)
                setup_file.unlink(missing_ok=True)
            except Exception:  # noqa: BLE001 - best effort clean-up
                pass

    chat_rows = [[r["clients"], r["replies"], r["replies_per_s"], r["p50_ms"], r["p95_ms"], r["p99_ms"], r["errors"]]
                 for r in chat]
    return {
        "summary": ("the run command's server (gunicorn, 2 uvicorn workers, config/gunicorn.py) + PostgreSQL + "
                    "Redis + 1 Celery worker on loopback (bench/stack.py, the soak's stack); the demo's own models."),
        "setup": {"gunicorn_workers": 2, "celery_concurrency": 1, "redis_db": REDIS_DB, "database": DB,
                  "reused_from_earlier_run": reuse, **setup, "demo_jobs": demo_jobs},
        "chat": chat,
        "sentiment": sentiment,
        "recommend": recommend,
        "tables": [
            table("Chat reply latency through the API (POST a customer message, reply in the response)",
                  ["concurrent clients", "replies", "replies/s", "p50 ms", "p95 ms", "p99 ms", "errors"], chat_rows,
                  [f"{duration:.0f} s per level; questions drawn from the demo transcripts; a new conversation every "
                   "3 messages or after a hand-off. Load generator, server and database share the same 2 cores.",
                   f"Database and models: the demo data and its trained models, prepared at {setup['prepared_at']} "
                   f"({'reused from an earlier run of this command' if reuse else 'in this run'}; setup times "
                   f"{ {k: round(v) for k, v in setup['times'].items()} } s at load average {setup['load_avg'][0]:.1f})."]),
            table("Sentiment classification on the Celery worker and recommend API latency",
                  ["measure", "value"],
                  [["news batch size (after a 20-item warm-up batch)", n_items],
                   ["classification items/s (worker job start → finish)", sentiment["items_per_s_job"]],
                   ["items/s end to end (POST → job finished)", sentiment["items_per_s_end_to_end"]],
                   ["score 100 candidates p50 ms", recommend["score_ms"]["p50"]],
                   ["score 100 candidates p95 ms", recommend["score_ms"]["p95"]],
                   ["recommend k=10 p50 ms", recommend["recommend_ms"]["p50"]],
                   ["recommend k=10 p95 ms", recommend["recommend_ms"]["p95"]]],
                  [f"Recommend figures: {n_calls} sequential calls each, 1 client."]),
        ],
        "published": [],
        "below_published": [],
    }
