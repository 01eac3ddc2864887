#!/usr/bin/env bash
# One command for a fresh machine: install, migrate, create the staff user, load each
# app's demo data and train its models in the background (watch them on /jobs/), and
# serve with the run command (scripts/serve.sh: gunicorn + uvicorn workers, Celery
# worker + beat). Ctrl-C stops everything within a few seconds. A second run does not
# re-queue the demo's trainings or its demo job (manage.py demo --again to redo them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
PY=.venv/bin/python
PORT=${PORT:-8000}
VAR=${AIGC_VAR_DIR:-var}; mkdir -p "$VAR"
$PY manage.py migrate --noinput
$PY manage.py demo --stage user
# Own process group (set -m): the terminal's Ctrl-C goes to the server; the EXIT trap stops this.
set -m
AIGC_THREADS=${AIGC_THREADS:-1} $PY manage.py demo --stage apps > "$VAR/demo.log" 2>&1 &
LOADER=$!
set +m
trap 'kill -TERM $LOADER 2>/dev/null || true' EXIT
echo "Open http://127.0.0.1:$PORT/ and log in as above. Demo data and models load in the background"
echo "(progress on http://127.0.0.1:$PORT/jobs/, log in $VAR/demo.log, worker log in $VAR/worker.log)."
PORT=$PORT bash scripts/serve.sh
