"""Bounded soak: chat messages, news ingest and recommendation calls at once
against gunicorn + PostgreSQL + Redis + two Celery workers, on loopback only.

    python -m bench.soak --minutes 8            # prepares the soak database once (demo data, models)
    python -m bench.soak --seconds 30           # a short run while developing

Everything runs on this machine: its own PostgreSQL database (``aigc_soak`` on
127.0.0.1:5432, created if missing), its own ``redis-server`` on a free port
(broker and cache), its own var dir (var/soak). Reports requests per second,
p50/p95/max latency and errors per operation, jobs run, and the resident
memory of every process at the start of the measured window and at its end.
Writes bench/results/soak.json and prints a markdown table.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
RESULTS = ROOT / "bench" / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


def rss_kb(pid: int) -> int:
    """Resident memory of a process and its children (gunicorn and celery fork workers)."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


class Stack:
    """PostgreSQL database, private Redis, gunicorn and two workers, all stopped at the end."""

    def __init__(self, var_dir: Path, db: str, gunicorn_workers: int):
        self.var_dir = var_dir
        self.redis_port = free_port()
        self.http_port = free_port()
        self.gunicorn_workers = gunicorn_workers
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: list = []
        self.env = {
            **os.environ,
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{db}",
            "CELERY_BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "CACHE_URL": f"redis://127.0.0.1:{self.redis_port}/1",
            "SECRET_KEY": "soak-only-not-a-secret",
            "AIGC_VAR_DIR": str(var_dir),
            "AIGC_ARTIFACTS_DIR": str(var_dir / "artifacts"),
            "SECURE_COOKIES": "0",
            "HF_HUB_OFFLINE": "1",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
        self.db = db

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.var_dir / f"{name}.log", "w")
        self.logs.append(log)
        proc = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs[name] = proc
        return proc

    def manage(self, *args: str, timeout: float = 1800) -> str:
        out = subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True,
                             timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
        return out.stdout

    def start_services(self) -> None:
        self.var_dir.mkdir(parents=True, exist_ok=True)
        made = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-tAc",
                               f"SELECT 1 FROM pg_database WHERE datname = '{self.db}'"], capture_output=True,
                              text=True)
        if made.stdout.strip() != "1":
            subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", f'CREATE DATABASE "{self.db}"'],
                           check=True, capture_output=True)
        self._spawn("redis", ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no", "--loglevel", "warning"])
        wait_port(self.redis_port)
        self.manage("migrate", "--noinput")

    def start_workers(self) -> None:
        for i in (1, 2):
            self._spawn(f"worker{i}", [PY, "-m", "celery", "-A", "config", "worker", "-Q", "default,train,deliver",
                                       "-n", f"soak{i}@%h", "--concurrency", "1", "--without-gossip",
                                       "--without-mingle", "--loglevel", "WARNING"])

    def start_web(self) -> None:
        self._spawn("gunicorn", [PY, "-m", "gunicorn", "config.wsgi", "-b", f"127.0.0.1:{self.http_port}",
                                 "-w", str(self.gunicorn_workers), "--threads", "2", "--timeout", "60",
                                 "--log-level", "warning"])
        wait_port(self.http_port, timeout=120)

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(timeout=20)
                except (subprocess.TimeoutExpired, ProcessLookupError):
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        for log in self.logs:
            log.close()


PREPARE = """
import json
from apps.common.models import ApiToken
from apps.recommend.models import Item
from apps.common import engine
tokens = {a: ApiToken.issue(name="soak-" + a, app=a)[1] for a in ("support", "sentiment", "recommend")}
from apps.recommend.models import Event
users = sorted(set(Event.objects.values_list("user_id", flat=True)[:5000]))[:200]
items = list(Item.objects.filter(available=True).values_list("external_id", flat=True)[:500])
print("SOAK" + json.dumps({"tokens": tokens, "users": users, "items": items,
                           "models": {n: getattr(engine.registry().current(n), "version", None)
                                      for n in ("support.bot", "sentiment.news", "recommend.model")}}))
"""

QUESTIONS = [
    "Hi, where is my order 4711?", "My card was declined at checkout", "How do I return a damaged kettle?",
    "I forgot my password", "Can I change the delivery address for order 5521?", "Do you ship to Norway?",
    "The coupon code does not work", "When will my refund arrive?", "I want to talk to a human",
]


class Load:
    def __init__(self, port: int, info: dict, seed: int = 7):
        self.port = port
        self.info = info
        self.lock = threading.Lock()
        self.samples: dict[str, list[float]] = {"chat": [], "news_ingest": [], "recommend": [], "score": []}
        self.errors: dict[str, list[str]] = {k: [] for k in self.samples}
        self.seq = 0
        self.rng = random.Random(seed)

    def _next(self) -> int:
        with self.lock:
            self.seq += 1
            return self.seq

    def call(self, conn, op: str, method: str, path: str, token: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        t0 = time.perf_counter()
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            payload = resp.read()
            status = resp.status
        except (OSError, http.client.HTTPException) as exc:
            status, payload = 0, f"{type(exc).__name__}: {exc}".encode()
            conn.close()
        ms = (time.perf_counter() - t0) * 1000
        with self.lock:
            if 200 <= status < 300:
                self.samples[op].append(ms)
            else:
                self.errors[op].append(f"{status} {method} {path}: {payload[:200]!r}")
        return status, payload

    def client(self, stop: threading.Event, kind: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        tok = self.info["tokens"]
        conv = None
        rng = random.Random(hash(kind) ^ self._next())
        while not stop.is_set():
            n = self._next()
            if kind == "chat":
                if conv is None or n % 6 == 0:
                    st, body = self.call(conn, "chat", "POST", "/support/api/conversations/", tok["support"], {})
                    conv = json.loads(body)["id"] if st == 201 else None
                    continue
                self.call(conn, "chat", "POST", f"/support/api/conversations/{conv}/messages/", tok["support"],
                          {"text": rng.choice(QUESTIONS)})
            elif kind == "news":
                items = [{"url": f"https://soak.example.com/{os.getpid()}/{n}/{i}",
                          "headline": f"Soak {n}.{i}: {rng.choice(['Acme', 'Globex', 'Initech'])} "
                                      f"{rng.choice(['misses bond payment', 'beats estimates', 'faces probe'])}",
                          "published_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())} for i in range(5)]
                self.call(conn, "news_ingest", "POST", "/sentiment/api/news/", tok["sentiment"],
                          {"source": "soak", "items": items})
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


def percentile(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def prepare(stack: Stack) -> dict:
    """Demo data and models, once per soak database (idempotent commands)."""
    marker = stack.var_dir / "prepared"
    if not marker.exists():
        print("soak: preparing demo data and training models (once)…", flush=True)
        stack.manage("support_demo", "--sync")
        stack.manage("sentiment_demo")
        stack.manage("recommend_demo", "--no-train")
        stack.manage("shell", "-c", "from apps.recommend import services; "
                     "print(services.train_recommender(lambda p, m: None))")
        marker.write_text("ok")
    out = stack.manage("shell", "-c", PREPARE)
    info = json.loads(out.split("SOAK", 1)[1])
    return info


def run(seconds: float, clients_per_kind: int = 2, gunicorn_workers: int = 2, warmup_s: float = 30.0) -> dict:
    var_dir = ROOT / "var" / "soak"
    stack = Stack(var_dir, "aigc_soak", gunicorn_workers)
    try:
        stack.start_services()
        info = prepare(stack)
        stack.start_workers()
        stack.start_web()
        started_at = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        load = Load(stack.http_port, info)
        stop = threading.Event()
        threads = [threading.Thread(target=load.client, args=(stop, kind), daemon=True)
                   for kind in ("chat", "news", "recommend") for _ in range(clients_per_kind)]
        for t in threads:
            t.start()
        time.sleep(warmup_s)  # every process loads its models, caches warm: not measured
        with load.lock:
            for k in load.samples:
                load.samples[k].clear()
                load.errors[k].clear()
        mem_start = {name: rss_kb(p.pid) for name, p in stack.procs.items() if name != "redis"}
        mem_trace: list[dict] = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            time.sleep(min(10.0, max(0.5, seconds - (time.monotonic() - t0))))
            mem_trace.append({name: rss_kb(p.pid) for name, p in stack.procs.items() if name != "redis"})
        elapsed = time.monotonic() - t0
        with load.lock:
            samples = {k: list(v) for k, v in load.samples.items()}
            errors = {k: list(v) for k, v in load.errors.items()}
        stop.set()
        for t in threads:
            t.join(timeout=70)
        mem_end = {name: rss_kb(p.pid) for name, p in stack.procs.items() if name != "redis"}
        jobs = json.loads(stack.manage("shell", "-c", (
            "import json, time\nfrom apps.common.models import Job\n"
            f"run = Job.objects.filter(created_at__gte='{started_at}')\n"
            "t0 = time.time()\n"
            "backlog = run.filter(state__in=['queued', 'running']).count()\n"
            "while run.filter(state__in=['queued', 'running']).exists() and time.time() < t0 + 300:\n"
            "    time.sleep(1)\n"
            "from django.db.models import Count\n"
            "out = {r['state']: r['n'] for r in run.values('state').annotate(n=Count('id'))}\n"
            "out['backlog_when_load_stopped'] = backlog\n"
            "out['drain_s'] = round(time.time() - t0)\n"
            "print(json.dumps(out))"
        )).strip().splitlines()[-1])
    finally:
        stack.stop()
    ops = {}
    for op, xs in samples.items():
        ops[op] = {"ok": len(xs), "errors": len(errors[op]), "rps": round(len(xs) / elapsed, 2),
                   "p50_ms": round(percentile(xs, 0.5), 1), "p95_ms": round(percentile(xs, 0.95), 1),
                   "max_ms": round(max(xs), 1) if xs else None, "first_errors": errors[op][:5]}
    mid = mem_trace[len(mem_trace) // 2] if mem_trace else mem_start
    memory = {name: {"start_mb": round(mem_start[name] / 1024, 1), "mid_mb": round(mid.get(name, 0) / 1024, 1),
                     "end_mb": round(mem_end.get(name, 0) / 1024, 1),
                     "growth_mb": round((mem_end.get(name, 0) - mem_start[name]) / 1024, 1),
                     "growth_2nd_half_mb": round((mem_end.get(name, 0) - mid.get(name, 0)) / 1024, 1)}
              for name in mem_start}
    return {"seconds": round(elapsed, 1), "warmup_s": warmup_s, "clients": clients_per_kind * 3, "gunicorn_workers": gunicorn_workers,
            "celery_workers": 2, "models": info.get("models"), "ops": ops, "jobs": jobs, "memory": memory,
            "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def table(result: dict) -> str:
    lines = [f"Soak of {result['seconds']:.0f} s (after {result['warmup_s']:.0f} s of warm-up), {result['clients']} client threads, gunicorn "
             f"{result['gunicorn_workers']} workers x 2 threads, 2 Celery workers, PostgreSQL + Redis, "
             f"{result['machine']['cpus']} CPUs ({result['at']}).", "",
             "| operation | ok | errors | req/s | p50 ms | p95 ms | max ms |", "|---|---:|---:|---:|---:|---:|---:|"]
    for op, o in result["ops"].items():
        lines.append(f"| {op} | {o['ok']} | {o['errors']} | {o['rps']} | {o['p50_ms']} | {o['p95_ms']} | {o['max_ms']} |")
    lines += ["", "| process (with its forked children) | RSS start MB | RSS middle MB | RSS end MB | growth MB "
              "| growth in 2nd half MB |", "|---|---:|---:|---:|---:|---:|"]
    for name, m in result["memory"].items():
        lines.append(f"| {name} | {m['start_mb']} | {m['mid_mb']} | {m['end_mb']} | {m['growth_mb']} "
                     f"| {m['growth_2nd_half_mb']} |")
    lines += ["", f"Jobs created during the run, by state once the queue drained: {json.dumps(result['jobs'])}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=None, help="measured duration (at most 10)")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--clients", type=int, default=2, help="client threads per kind of call")
    parser.add_argument("--gunicorn-workers", type=int, default=2)
    args = parser.parse_args(argv)
    seconds = args.seconds if args.seconds is not None else 60 * (args.minutes or 1)
    if seconds > 600:
        parser.error("a soak is bounded to 10 minutes")
    if shutil.which("redis-server") is None:
        parser.error("redis-server is needed")
    result = run(seconds, args.clients, args.gunicorn_workers)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "soak.json").write_text(json.dumps(result, indent=2))
    print(table(result))
    bad = sum(o["errors"] for o in result["ops"].values())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
