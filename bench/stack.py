"""The one served stack the serving benchmark and the soak both run on: PostgreSQL
(a database of its own on 127.0.0.1:5432), Redis (a db of the local server, or a
private ``redis-server`` on a free port), Celery workers and the run command's web
server (gunicorn with ``config/gunicorn.py``: uvicorn ASGI workers, WhiteNoise),
all on loopback. Everything it starts it stops, by process group, and it records
how long each process took to stop on the run command's signals (SIGTERM for
gunicorn, SIGQUIT — Celery's cold shutdown — for the workers, as scripts/serve.sh).
"""
from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench.harness import REPO

PY = sys.executable
WORKER_NICE = os.environ.get("WORKER_NICE", "10")
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


class StackUnavailable(RuntimeError):
    pass


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


def pg(dbname: str = "postgres"):
    import psycopg

    return psycopg.connect(dbname=dbname, autocommit=True, connect_timeout=5, **PG)


def db_exists(db: str) -> bool:
    try:
        with pg() as conn:
            return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone() is not None
    except Exception:  # noqa: BLE001
        return False


def reset_db(db: str) -> None:
    with pg() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db}"')


def drop_db(db: str) -> None:
    with pg() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def rss_kb(pid: int) -> int:
    """Resident memory of a process and its direct children (gunicorn and celery fork workers)."""
    total = 0
    for p in [pid, *children(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def _cpu_ticks_s(pid: int | str, reaped: bool) -> float:
    """utime + stime of one process (+ cutime + cstime, its children already reaped), in s; 0 if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15 if reaped else 13]) / os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a process and its direct children, live or reaped
    (the live ones by their own counters, the reaped ones in the parent's)."""
    return _cpu_ticks_s(pid, True) + sum(_cpu_ticks_s(c, False) for c in children(pid))


def postgres_cpu_s() -> float:
    """CPU seconds of every postgres process on this machine (its backends come and go:
    the postmaster's reaped-children counters hold the ones that exited)."""
    total = 0.0
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and (d / "comm").read_text().strip() == "postgres":
                total += _cpu_ticks_s(d.name, True)
        except OSError:
            continue
    return total


class Stack:
    """``redis_url=None`` starts a private redis-server (no persistence) on a free port;
    otherwise that Redis db is used (and flushed by ``flush_redis``)."""

    def __init__(self, root: Path, db: str, redis_url: str | None = None, env: dict | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.db = db
        self.http_port = free_port()
        self.private_redis = redis_url is None
        self.redis_port = free_port() if self.private_redis else None
        self.redis_url = redis_url or f"redis://127.0.0.1:{self.redis_port}/0"
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: list = []
        self.stop_s: dict[str, float] = {}
        var = self.root / "var"
        self.env = {
            **os.environ,
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{db}",
            "CELERY_BROKER_URL": self.redis_url,
            "CACHE_URL": self.redis_url,
            "SECRET_KEY": "bench-stack-not-a-secret",
            "AIGC_VAR_DIR": str(var),
            "AIGC_ARTIFACTS_DIR": str(var / "artifacts"),
            "PROMETHEUS_MULTIPROC_DIR": str(self.root / "prometheus"),
            "SECURE_COOKIES": "0",
            "DEBUG": "0",
            "HF_HUB_OFFLINE": "1",
            "LOG_LEVEL": "WARNING",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "PYTHONUNBUFFERED": "1",
            "AIGC_THREADS": os.environ.get("AIGC_THREADS", "1"),
            **(env or {}),
        }

    # -- preflight ---------------------------------------------------------------
    def preflight(self) -> None:
        try:
            with pg() as conn:
                conn.execute("select 1")
        except Exception as exc:  # noqa: BLE001
            raise StackUnavailable(f"PostgreSQL at 127.0.0.1:5432 (user postgres) unreachable: {exc}") from exc
        if self.private_redis:
            if shutil.which("redis-server") is None:
                raise StackUnavailable("redis-server is not installed")
        else:
            try:
                import redis

                redis.Redis.from_url(self.redis_url, socket_timeout=5).ping()
            except Exception as exc:  # noqa: BLE001
                raise StackUnavailable(f"Redis at {self.redis_url} unreachable: {exc}") from exc
        for tool in ("gunicorn", "celery"):
            if not shutil.which(tool, path=str(Path(PY).parent)):
                raise StackUnavailable(f"{tool} is not installed in the virtual environment")

    def flush_redis(self) -> None:
        import redis

        redis.Redis.from_url(self.redis_url).flushdb()

    # -- processes -----------------------------------------------------------------
    def manage(self, *args: str, timeout: float = 1800) -> str:
        out = subprocess.run([PY, "manage.py", *args], cwd=REPO, env=self.env, capture_output=True, text=True,
                             timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
        return out.stdout

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.root / f"{name}.log", "w")  # noqa: SIM115 - closed in stop()
        self.logs.append(log)
        proc = subprocess.Popen(argv, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs[name] = proc
        return proc

    def start_services(self, migrate: bool = True) -> None:
        if not db_exists(self.db):
            with pg() as conn:
                conn.execute(f'CREATE DATABASE "{self.db}"')
        if self.private_redis:
            self.spawn("redis", ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                                 "--save", "", "--appendonly", "no", "--loglevel", "warning"])
            wait_port(self.redis_port)
        if migrate:
            self.manage("migrate", "--noinput")

    def reset_metrics_dir(self) -> None:
        """An empty PROMETHEUS_MULTIPROC_DIR before the served processes start (as serve.sh does)."""
        prom = Path(self.env["PROMETHEUS_MULTIPROC_DIR"])
        shutil.rmtree(prom, ignore_errors=True)
        prom.mkdir(parents=True)

    def start_workers(self, n: int = 1, concurrency: int = 1, queues: str = "default,train,deliver") -> None:
        if not any(name.startswith(("worker", "gunicorn", "beat")) for name in self.procs):
            self.reset_metrics_dir()
        for i in range(1, n + 1):
            # Below the web server's priority, as serve.sh starts them (WORKER_NICE).
            self.spawn(f"worker{i}", ["nice", "-n", WORKER_NICE, PY, "-m", "celery", "-A", "config", "worker",
                                      "-Q", queues, "-n", f"bench{i}@%h", "--concurrency", str(concurrency),
                                      "--without-gossip", "--without-mingle", "--loglevel", "WARNING"])

    def start_beat(self) -> None:
        self.spawn("beat", [PY, "-m", "celery", "-A", "config", "beat", "--loglevel", "WARNING",
                            "--schedule", str(self.root / "celerybeat-schedule"), "--pidfile="])

    def start_web(self, workers: int = 2, timeout: float = 120) -> None:
        """The run command's server: gunicorn with config/gunicorn.py (uvicorn ASGI workers)."""
        if not any(name.startswith(("worker", "beat")) for name in self.procs):
            self.reset_metrics_dir()
        self.env.update({"HOST": "127.0.0.1", "PORT": str(self.http_port), "WEB_CONCURRENCY": str(workers)})
        self.spawn("gunicorn", [PY, "-m", "gunicorn", "-c", "config/gunicorn.py"])
        wait_port(self.http_port, timeout=timeout)
        self.wait_http(timeout)

    def wait_http(self, timeout: float = 60) -> None:
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=5)
                c.request("GET", "/healthz")
                c.getresponse().read()
                return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError("the web server did not answer /healthz")

    def rss(self) -> dict[str, int]:
        return {name: rss_kb(p.pid) for name, p in self.procs.items() if name != "redis" and p.poll() is None}

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far per process of this stack, and of PostgreSQL."""
        out = {name: cpu_s(p.pid) for name, p in self.procs.items() if p.poll() is None}
        out["postgres"] = postgres_cpu_s()
        return out

    def stop(self) -> dict[str, float]:
        """Stop every process with the run command's signal and time each one; SIGKILL after 20 s."""
        # The broker last, once the rest is down: a Celery worker whose broker vanished retries
        # its shutdown publishes against it and never exits (the first soak runs here did so).
        self._stop_together([n for n in self.procs if n != "redis"])
        self._stop_together([n for n in self.procs if n == "redis"])
        for log in self.logs:
            log.close()
        self.logs.clear()
        return self.stop_s

    def _stop_together(self, names: list[str]) -> None:
        """Signal the named processes at once and record each one's time to exit
        (inf for one that needed SIGKILL after 20 s)."""
        t0 = {}
        for name in names:
            proc = self.procs[name]
            if proc.poll() is None:
                sig = signal.SIGQUIT if name.startswith("worker") else signal.SIGTERM
                try:
                    os.kill(proc.pid, sig)  # the main process: it stops its own children
                except ProcessLookupError:
                    pass
                t0[name] = time.monotonic()
        # Poll them together: each one's time is its own, not its wait behind another.
        waiting = set(t0)
        dumped: set[str] = set()
        while waiting:
            for name in list(waiting):
                proc = self.procs[name]
                elapsed = time.monotonic() - t0[name]
                if proc.poll() is not None:
                    self.stop_s[name] = round(elapsed, 2)
                    waiting.discard(name)
                elif elapsed > 8 and name.startswith("worker") and name not in dumped:
                    # Why is it still up? Celery answers SIGUSR1 with every thread's stack in its log.
                    dumped.add(name)
                    for pid in [proc.pid, *children(proc.pid)]:
                        try:
                            os.kill(pid, signal.SIGUSR1)
                        except ProcessLookupError:
                            pass
                elif elapsed > 20:
                    self.stop_s[name] = float("inf")
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    proc.wait(timeout=10)
                    waiting.discard(name)
            time.sleep(0.05)

