#!/usr/bin/env bash
# One command for the whole test suite, browser tests included. Uses the
# embedded default unless DATABASE_URL / CELERY_BROKER_URL say otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
WITH_BROWSER=1 bash scripts/setup.sh
export HF_HUB_OFFLINE=1
export AIGC_VAR_DIR=${AIGC_VAR_DIR:-$PWD/var/test}
rm -rf "$AIGC_VAR_DIR/broker"
case "${CELERY_BROKER_URL:-}" in
  redis://*) # start from an empty test queue: no task left over from an earlier run
    .venv/bin/python -c "import os, redis; redis.Redis.from_url(os.environ['CELERY_BROKER_URL']).flushdb()" ;;
esac
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then echo "pytest collected no tests: failing on purpose"; exit 1; fi
exit $rc
