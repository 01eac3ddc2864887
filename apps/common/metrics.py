"""Prometheus metrics (``GET /metrics``, text exposition format, prometheus_client).

Two kinds of series:

- measured in-process and aggregated over every process when
  ``PROMETHEUS_MULTIPROC_DIR`` is set (the run command sets it for gunicorn's
  workers and the Celery workers alike): request latency by view, model
  inference time;
- read from the database and the broker at scrape time (so they are right
  whichever process did the work): jobs by kind and state, queue depth per
  Celery queue, items waiting for classification and the backpressure limit,
  webhook delivery attempts by outcome over the retention window.

``apps.common`` does not import the other apps: they register their gauges with
``register_gauge`` from their AppConfig.ready().
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Each process writes its samples there; a missing folder would fail the first observation.
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

from prometheus_client import (  # noqa: E402 - after the folder exists
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily  # noqa: E402

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUEST_SECONDS = Histogram(
    "aigc_http_request_duration_seconds", "Time to answer an HTTP request, by Django view",
    ["view", "method", "status"], buckets=LATENCY_BUCKETS)
INFERENCE_SECONDS = Histogram(
    "aigc_model_inference_seconds", "Time of one model forward pass over a batch", ["model"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
INFERENCE_ITEMS = Counter("aigc_model_inference_items", "Texts passed through a model", ["model"])


def observe_inference(model: str, seconds: float, items: int = 1) -> None:
    INFERENCE_SECONDS.labels(model=model).observe(seconds)
    INFERENCE_ITEMS.labels(model=model).inc(items)


# name -> (help, reader returning {label tuple: value}, label names)
_GAUGES: dict[str, tuple[str, Callable[[], dict[tuple, float]], tuple[str, ...]]] = {}


def register_gauge(name: str, help_text: str, labels: Iterable[str], reader: Callable[[], dict[tuple, float]]):
    """A gauge computed at scrape time (``reader`` returns {label values: value})."""
    _GAUGES[name] = (help_text, reader, tuple(labels))


class _ScrapeTime:
    """Collector for the gauges read at scrape time; one failing reader is skipped
    (and counted in aigc_metrics_errors) rather than failing the whole scrape."""

    def collect(self):
        errors = GaugeMetricFamily("aigc_metrics_errors", "Gauges that could not be read in this scrape")
        failed = 0
        for name, (help_text, reader, labels) in _GAUGES.items():
            try:
                values = reader()
            except Exception as exc:  # noqa: BLE001 - a down database must not hide the other series
                log.warning("metric %s unreadable: %s", name, exc)
                failed += 1
                continue
            family = GaugeMetricFamily(name, help_text, labels=list(labels))
            for key, value in values.items():
                family.add_metric([str(k) for k in key], float(value))
            yield family
        errors.add_metric([], failed)
        yield errors


def _jobs_by_state() -> dict[tuple, float]:
    from django.db.models import Count

    from apps.common.models import Job

    return {(r["kind"], r["state"]): r["n"] for r in Job.objects.order_by().values("kind", "state")
            .annotate(n=Count("id"))}


def _queue_depth() -> dict[tuple, float]:
    return {(q,): n for q, n in queue_depths().items()}


QUEUES = ("default", "train", "deliver")


def queue_depths(queues: Iterable[str] = QUEUES) -> dict[str, int]:
    """Messages waiting in each Celery queue (not counting those a worker holds)."""
    from celery import current_app

    url = current_app.conf.broker_url or ""
    out: dict[str, int] = {}
    if url.startswith("filesystem"):
        folder = current_app.conf.broker_transport_options.get("data_folder_in", "")
        names = os.listdir(folder) if folder else []
        for q in queues:
            out[q] = sum(1 for n in names if n.partition(".")[2] == f"{q}.msg")
        return out
    if url.startswith(("redis", "rediss")):
        with current_app.connection_for_write() as conn:
            client = conn.default_channel.client
            for q in queues:
                out[q] = sum(client.llen(k) for k in [q, *(f"{q}\x06\x16{p}" for p in range(1, 10))])
        return out
    return out


register_gauge("aigc_jobs", "Job rows by kind and state", ("kind", "state"), _jobs_by_state)
register_gauge("aigc_queue_depth", "Messages waiting in a Celery queue", ("queue",), _queue_depth)


def render() -> tuple[bytes, str]:
    """The exposition text of every series and its content type."""
    scrape = CollectorRegistry()
    scrape.register(_ScrapeTime())
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        measured = CollectorRegistry()
        multiprocess.MultiProcessCollector(measured)
    else:
        measured = REGISTRY
    return generate_latest(measured) + generate_latest(scrape), CONTENT_TYPE_LATEST


class RequestMetricsMiddleware:
    """Times every request under its URL pattern's name (never the raw path, which
    would make a series per id). Sync and async capable."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        from asgiref.sync import iscoroutinefunction, markcoroutinefunction

        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self._async:
            return self.__acall__(request)
        t0 = time.perf_counter()
        response = self.get_response(request)
        self._observe(request, response, time.perf_counter() - t0)
        return response

    async def __acall__(self, request):
        t0 = time.perf_counter()
        response = await self.get_response(request)
        self._observe(request, response, time.perf_counter() - t0)
        return response

    @staticmethod
    def _observe(request, response, seconds: float) -> None:
        match = getattr(request, "resolver_match", None)
        view = (match.view_name or match._func_path) if match else "unmatched"
        status = f"{response.status_code // 100}xx"
        try:
            REQUEST_SECONDS.labels(view=view, method=request.method, status=status).observe(seconds)
        except Exception:  # noqa: BLE001 - metrics never break a request
            log.debug("request metric not recorded", exc_info=True)
