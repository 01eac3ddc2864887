#!/usr/bin/env bash
# The run command: the suite on a production server, with its workers beside it.
#   gunicorn (config/gunicorn.py: uvicorn ASGI workers, WhiteNoise static files)
#   + a Celery worker (queues default, train, deliver) + Celery beat (the sweepers, pruning, feeds).
# Ctrl-C (or SIGTERM) stops all three within a few seconds:
#   - the children run in their own process groups (set -m), so the terminal's SIGINT reaches
#     this script only, and the script sends each the signal that stops it promptly;
#   - gunicorn gets SIGTERM (graceful, 3 s for requests in flight);
#   - the Celery worker gets SIGQUIT: a cold shutdown after worker_soft_shutdown_timeout (2 s).
#     SIGTERM would be Celery's *warm* shutdown, which waits for every running task to finish:
#     that is why the worker used to "ignore" SIGTERM for 40 s to 3 min (a training job ran).
#     Its tasks are acks_late: their messages go back to the queue and the Job rows are re-run.
# Environment: PORT (8000), HOST (127.0.0.1), WEB_CONCURRENCY (2), WORKER_CONCURRENCY (2), AIGC_VAR_DIR.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
VAR=${AIGC_VAR_DIR:-var}
mkdir -p "$VAR"
export PROMETHEUS_MULTIPROC_DIR=${PROMETHEUS_MULTIPROC_DIR:-$VAR/prometheus}
rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
export AIGC_THREADS=${AIGC_THREADS:-1}
set -m
# Workers run below the web server's priority: a request (a chat reply) takes a core at
# once, and classification and training use what the requests leave.
nice -n "${WORKER_NICE:-10}" $PY -m celery -A config worker -Q default,train,deliver --concurrency "${WORKER_CONCURRENCY:-2}" \
  --without-gossip --without-mingle --loglevel INFO --logfile "$VAR/worker.log" &
WORKER=$!
$PY -m celery -A config beat --loglevel INFO --logfile "$VAR/beat.log" \
  --schedule "$VAR/celerybeat-schedule" --pidfile= &
BEAT=$!
$PY -m gunicorn -c config/gunicorn.py &
WEB=$!
echo "serving on http://${HOST:-127.0.0.1}:${PORT:-8000}/ (gunicorn pid $WEB, worker $WORKER, beat $BEAT)"

stopping=0
stop() {
  [ "$stopping" = 1 ] && return
  stopping=1
  echo "stopping…"
  kill -TERM "$WEB" 2>/dev/null
  kill -QUIT "$WORKER" 2>/dev/null
  kill -TERM "$BEAT" 2>/dev/null
  t0=$SECONDS
  for p in "$WEB" "$WORKER" "$BEAT"; do wait "$p" 2>/dev/null; done
  echo "stopped in $((SECONDS - t0)) s"
}
trap 'stop; exit 0' INT TERM
# If one of them dies on its own, stop the others rather than serve half a suite.
wait -n "$WEB" "$WORKER" "$BEAT"
echo "a process exited; stopping the others" >&2
stop
exit 1
