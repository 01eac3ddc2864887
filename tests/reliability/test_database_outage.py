"""Fault: the database goes away for a few seconds, with a real worker mid-task.

Only the test's own database is touched. On PostgreSQL (the CI's second pass)
its sessions are terminated and new ones refused (``ALLOW_CONNECTIONS false``)
from an admin connection to the ``postgres`` database; on SQLite (the first
pass) another connection holds an exclusive lock and this process waits at
most half a second for it. Either way the web tier answers 503 with a message
and Retry-After, never 500, and serves again by itself once the database is
back, with no restart.

The worker: on PostgreSQL its connection dies under it, the task cannot even
record a failure, so it is retried under the same message until the database
is back (``run_job``). On SQLite a worker waits out a lock (30 s busy timeout)
instead of failing, so there the job simply finishes once, after the lock.
"""
from __future__ import annotations

import sqlite3
import time

import pytest
from django.db import connection

from apps.common.jobs import enqueue
from apps.common.models import ApiToken, Job
from apps.common.tasks import demo_countdown
from tests.conftest import LiveWorker, wait_for


class DatabaseOutage:
    def __init__(self):
        self.vendor = connection.vendor
        self.settings = connection.settings_dict
        self._lock: sqlite3.Connection | None = None
        self._old_timeout = None

    def down(self) -> None:
        if self.vendor == "postgresql":
            self._admin("ALTER DATABASE {db} ALLOW_CONNECTIONS false")
            self._admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = %s AND pid <> pg_backend_pid()", [self.settings["NAME"]])
        else:
            self._old_timeout = self.settings["OPTIONS"].get("timeout")
            self.settings["OPTIONS"]["timeout"] = 0.5
            connection.close()
            self._lock = sqlite3.connect(self.settings["NAME"], isolation_level=None)
            self._lock.execute("BEGIN EXCLUSIVE")
        connection.close()

    def up(self) -> None:
        if self.vendor == "postgresql":
            self._admin("ALTER DATABASE {db} ALLOW_CONNECTIONS true")
        elif self._lock is not None:
            self._lock.execute("ROLLBACK")
            self._lock.close()
            self._lock = None
            self.settings["OPTIONS"]["timeout"] = self._old_timeout
        connection.close()

    def _admin(self, sql: str, params=None) -> None:
        import psycopg
        from psycopg import sql as pgsql

        s = self.settings
        with psycopg.connect(host=s.get("HOST") or "127.0.0.1", port=s.get("PORT") or 5432, user=s["USER"],
                             password=s.get("PASSWORD") or None, dbname="postgres", autocommit=True) as admin:
            admin.execute(pgsql.SQL(sql).format(db=pgsql.Identifier(s["NAME"])), params)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_it_answers_503_while_the_database_is_away_and_recovers_by_itself(client, staff):
    from config.celery import app

    app.conf.task_always_eager = False
    _, raw = ApiToken.issue(name="rel-db", app="sentiment")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    client.force_login(staff)
    pages = [("get", "/sentiment/api/news/", auth), ("get", "/sentiment/", {}), ("get", "/jobs/", {}),
             ("post", "/sentiment/api/news/", auth)]

    def hit():
        out = []
        for method, url, extra in pages:
            kw = {"data": {"items": [{"url": "https://n.example.com/db", "headline": "Bank outage"}]},
                  "content_type": "application/json"} if method == "post" else {}
            out.append(getattr(client, method)(url, **kw, **extra))
        return out

    assert [r.status_code for r in hit()] == [200, 200, 200, 201]
    worker = LiveWorker("rel-db").start()
    outage = DatabaseOutage()
    try:
        job = enqueue(demo_countdown, "common.demo", steps=30, delay_s=0.1)
        wait_for(lambda: Job.objects.filter(pk=job.pk, progress__gte=10).exists(), timeout=60,
                 what="the job to be running")
        outage.down()
        try:
            down = hit()
            time.sleep(3)  # the worker keeps writing progress into the outage meanwhile
        finally:
            outage.up()
        for r in down:
            assert r.status_code == 503, (r.request["PATH_INFO"], r.status_code, r.content[:300])
            assert "database is unavailable" in r.json()["detail"] and r["Retry-After"]
        # Back by itself: same process, no restart.
        assert [r.status_code for r in hit()][:3] == [200, 200, 200]
        done = wait_for(lambda: Job.objects.filter(pk=job.pk, state="succeeded").first(), timeout=90,
                        what="the job to finish after the outage")
    finally:
        outage.up()
        worker.kill()
        worker.stop()
    assert done.result == {"steps": 30} and done.progress == 100
    if connection.vendor == "postgresql":
        assert done.attempts == 2  # cut off, retried under the same message once the database was back
        log = worker.log_path.read_text()
        assert "database unavailable" in log and "retry 1" in log
    else:
        assert done.attempts == 1  # SQLite: the worker waited for the lock


@pytest.mark.parametrize("exc,code", [
    ("OperationalError", 503), ("InterfaceError", 503), ("IntegrityError", 409), ("DataError", 400),
    ("ProgrammingError", None),
])
def test_it_calls_only_connection_failures_an_outage(exc, code, rf):
    """A duplicate or a bad value is the client's to fix (409/400); a bug such as a
    missing column must stay a logged 500, not pose as "database unavailable"."""
    from django import db

    from apps.common.api import exception_handler
    from apps.common.middleware import ServiceUnavailableMiddleware

    error = getattr(db, exc)("boom")
    api_answer = exception_handler(error, {})
    page_answer = ServiceUnavailableMiddleware(lambda r: None).process_exception(rf.get("/x"), error)
    if code is None:
        assert api_answer is None and page_answer is None
        return
    assert api_answer.status_code == code == page_answer.status_code
    assert api_answer.data["detail"] and (code != 503 or api_answer["Retry-After"] == "5")
