"""gunicorn settings of the run command (scripts/serve.sh) and of the benchmarks'
stack: the ASGI app under uvicorn workers, so an open SSE stream (async views) is a
coroutine, not a thread held for its whole duration; Django's sync views run in
the worker's thread pool. Static files are served by WhiteNoise (middleware).

Every value can be overridden from the environment (HOST, PORT, WEB_CONCURRENCY,
WEB_TIMEOUT) or on gunicorn's command line."""
import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
wsgi_app = "config.asgi:application"
worker_class = "uvicorn.workers.UvicornWorker"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))  # one per core on the 2-core target
timeout = int(os.environ.get("WEB_TIMEOUT", "60"))
# Ctrl-C / SIGTERM: requests in flight get this long, then the workers are stopped.
graceful_timeout = 3
keepalive = 5
accesslog = os.environ.get("WEB_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("WEB_LOG_LEVEL", "warning")
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def child_exit(server, worker):
    """A dead worker's metric files are merged into the totals, not read as live."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
