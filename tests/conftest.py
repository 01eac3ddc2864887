"""Shared personas, API clients and a real Celery worker for integration tests."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _eager_celery(request):
    """Unit tests run tasks in-process; tests marked ``worker`` use a real worker."""
    from config.celery import app

    eager = "worker" not in request.keywords
    old = app.conf.task_always_eager
    app.conf.task_always_eager = eager
    yield
    app.conf.task_always_eager = old


@pytest.fixture
def owner(django_user_model):
    return django_user_model.objects.create_superuser("owner", "owner@example.com", "owner-pass-123")


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("staff", "staff@example.com", "staff-pass-123", is_staff=True)


@pytest.fixture
def outsider(django_user_model):
    return django_user_model.objects.create_user("outsider", "out@example.com", "outsider-pass-123")


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def _token_client(app: str):
    from rest_framework.test import APIClient

    from apps.common.models import ApiToken

    _, raw = ApiToken.issue(name=f"test-{app}", app=app)
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return c


@pytest.fixture
def support_api(db):
    return _token_client("support")


@pytest.fixture
def sentiment_api(db):
    return _token_client("sentiment")


@pytest.fixture
def recommend_api(db):
    return _token_client("recommend")


def worker_env() -> dict[str, str]:
    """Environment for a worker subprocess that sees the test database."""
    env = dict(os.environ)
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    else:
        host, port = db.get("HOST") or "127.0.0.1", db.get("PORT") or 5432
        auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
        env["DATABASE_URL"] = f"postgres://{auth}@{host}:{port}/{db['NAME']}"
    env.setdefault("SECRET_KEY", settings.SECRET_KEY)
    env["SECRET_KEY"] = settings.SECRET_KEY
    env["CELERY_BROKER_URL"] = settings.CELERY_BROKER_URL
    env["AIGC_ALLOW_PRIVATE_URLS"] = "1"
    env["AIGC_ARTIFACTS_DIR"] = str(settings.AIGC_ARTIFACTS_DIR)
    env["PYTHONUNBUFFERED"] = "1"
    # The test process and the worker share 2 cores; one torch thread each
    # avoids oversubscription, which slows small models many-fold.
    env.setdefault("AIGC_THREADS", "1")
    return env


class LiveWorker:
    """A real ``celery worker`` process consuming every queue."""

    def __init__(self, name: str = "w1", queues: str = "default,train,deliver", env: dict | None = None):
        self.name = name
        self.queues = queues
        self.env = env or {}  # overrides of worker_env(), e.g. another CELERY_BROKER_URL
        self.log_path = Path(settings.VAR_DIR) / f"worker-{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> LiveWorker:
        from apps.common.models import WorkerHeartbeat

        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", self.queues,
             "-n", f"{self.name}@%h", "--concurrency", "1", "--pool", "prefork",
             "--without-gossip", "--without-mingle", "--loglevel", "INFO"],
            cwd=ROOT, env={**worker_env(), **self.env}, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log_path.read_text()[-3000:]}")
            if WorkerHeartbeat.objects.filter(hostname__startswith=f"{self.name}@").exists():
                return self
            time.sleep(0.3)
        raise RuntimeError(f"worker did not report in {timeout}s:\n{self.log_path.read_text()[-3000:]}")

    def kill(self, sig=signal.SIGKILL) -> None:
        """Kill the whole process group (main process and pool children)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        if getattr(self, "log", None):
            self.log.close()


@pytest.fixture
def live_worker(transactional_db):
    """A real worker for one test (transactional: it must see committed rows)."""
    from config.celery import app

    app.conf.task_always_eager = False
    worker = LiveWorker().start()
    yield worker
    worker.stop()


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.25, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
