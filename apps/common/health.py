"""Reachability checks of the database, the broker and the workers."""
from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone


def check_database() -> dict:
    try:
        with connection.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchone()
        return {"ok": True, "engine": connection.vendor}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}


def check_broker() -> dict:
    from config.celery import app

    url = settings.CELERY_BROKER_URL
    transport = url.split("://", 1)[0]
    try:
        if transport == "filesystem":
            folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]
            import os

            if not os.access(folder, os.W_OK):
                raise OSError(f"broker folder {folder} is not writable")
        with app.connection_for_write(url) as conn:
            conn.ensure_connection(max_retries=1, timeout=2, interval_start=0, interval_step=0)
            if transport.startswith("redis"):
                conn.default_channel.client.ping()
        return {"ok": True, "transport": transport}
    except Exception as exc:
        return {"ok": False, "transport": transport, "error": f"{type(exc).__name__}: {exc}"[:300]}


def check_workers() -> dict:
    from apps.common.models import WorkerHeartbeat

    try:
        cutoff = timezone.now() - timedelta(seconds=settings.AIGC_WORKER_STALE_AFTER)
        alive = list(WorkerHeartbeat.objects.filter(seen_at__gte=cutoff).values("hostname", "queues", "seen_at"))
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    if not alive:
        return {"ok": False, "error": "no worker has reported in the last "
                f"{settings.AIGC_WORKER_STALE_AFTER} s", "workers": []}
    return {"ok": True, "workers": [
        {"hostname": w["hostname"], "queues": w["queues"], "seen_at": w["seen_at"].isoformat()} for w in alive
    ]}


# Backlogs an app exposes (its pending work against its backpressure limit); apps
# register a reader from AppConfig.ready() (apps.common imports no other app).
BACKLOGS: dict[str, Callable[[], dict]] = {}


def register_backlog(name: str, reader: Callable[[], dict]) -> None:
    """``reader()`` returns {"depth": int, "limit": int, ...}."""
    BACKLOGS[name] = reader


def backlogs() -> dict[str, dict]:
    out = {}
    for name, reader in BACKLOGS.items():
        try:
            b = dict(reader())
        except Exception as exc:  # noqa: BLE001 - the database check reports the outage itself
            out[name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            continue
        b["over_limit"] = bool(b.get("limit")) and b.get("depth", 0) >= b["limit"]
        out[name] = b
    return out


def health() -> dict:
    checks = {"database": check_database(), "broker": check_broker(), "workers": check_workers()}
    down = [name for name, c in checks.items() if not c["ok"]]
    # A backlog over its limit is not "down" (ingest answers 429, everything else works).
    return {"ok": not down, "down": down, "checks": checks, "backlog": backlogs()}
