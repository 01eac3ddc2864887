#!/usr/bin/env bash
# One command for a fresh machine: install, migrate, create the staff user,
# serve web + worker (+ beat) on the embedded default, and load each app's
# demo data and train its models in the background (watch them on /jobs/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
PY=.venv/bin/python
PORT=${PORT:-8000}
$PY manage.py migrate --noinput
VAR=${AIGC_VAR_DIR:-var}; mkdir -p "$VAR"
AIGC_THREADS=${AIGC_THREADS:-1} .venv/bin/celery -A config worker -B -Q default,train,deliver --concurrency 2 \
  --loglevel INFO --logfile "$VAR/worker.log" --pidfile= &
WORKER=$!
$PY manage.py demo --stage user
AIGC_THREADS=${AIGC_THREADS:-1} $PY manage.py demo --stage apps > "$VAR/demo.log" 2>&1 &
LOADER=$!
trap 'kill $WORKER $LOADER 2>/dev/null; wait 2>/dev/null' EXIT INT TERM
echo "Open http://127.0.0.1:$PORT/ and log in as above. Demo data and models load in the background"
echo "(progress on http://127.0.0.1:$PORT/jobs/, log in $VAR/demo.log, worker log in $VAR/worker.log)."
$PY manage.py runserver "127.0.0.1:$PORT" --noreload
