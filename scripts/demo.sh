#!/usr/bin/env bash
# One command for a fresh machine: install, migrate, load demo data, train the
# demo models in the background, and serve web + worker on the embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
PY=.venv/bin/python
$PY manage.py migrate --noinput
PORT=${PORT:-8000}
AIGC_THREADS=${AIGC_THREADS:-1} .venv/bin/celery -A config worker -B -Q default,train,deliver --concurrency 2 --loglevel INFO \
  --logfile var/worker.log --pidfile= &
WORKER=$!
trap 'kill $WORKER 2>/dev/null; wait $WORKER 2>/dev/null' EXIT INT TERM
$PY manage.py demo
echo "Open http://127.0.0.1:$PORT/  (worker log: var/worker.log; jobs: http://127.0.0.1:$PORT/jobs/)"
$PY manage.py runserver "127.0.0.1:$PORT" --noreload
