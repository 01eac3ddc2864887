"""Workers announce themselves on the database every few seconds, so /healthz
can tell whether any worker is alive on any transport (filesystem included,
which has no broadcast for ``control.ping``)."""
from __future__ import annotations

import threading

from celery.signals import worker_ready, worker_shutdown

INTERVAL_S = 5.0
_stop = threading.Event()


def _beat(hostname: str, queues: str) -> None:
    from django.db import close_old_connections
    from django.utils import timezone

    from apps.common.models import WorkerHeartbeat

    while not _stop.is_set():
        try:
            WorkerHeartbeat.objects.update_or_create(
                hostname=hostname, defaults={"seen_at": timezone.now(), "queues": queues}
            )
        except Exception:  # the database may be briefly away; try again next tick
            close_old_connections()
        _stop.wait(INTERVAL_S)


@worker_ready.connect
def _start(sender=None, **_kwargs) -> None:
    hostname = getattr(sender, "hostname", "worker")
    try:
        queues = ",".join(sorted(q.name for q in sender.app.amqp.queues.consume_from.values()))
    except Exception:
        queues = ""
    _stop.clear()
    threading.Thread(target=_beat, args=(hostname, queues), daemon=True, name="aigc-heartbeat").start()


@worker_shutdown.connect
def _stop_beat(sender=None, **_kwargs) -> None:
    _stop.set()
    try:
        from apps.common.models import WorkerHeartbeat

        WorkerHeartbeat.objects.filter(hostname=getattr(sender, "hostname", "")).delete()
    except Exception:
        pass
