"""python -m bench all|intent|sentiment|spikes|recommend|lm|gan|retrieval|serving|support_replies [--quick]"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback

from bench.report import AREAS, regenerate

MODULES = {area: f"bench.{area}" for area in AREAS}
# The soak has its own command (python -m bench.soak --minutes 30): not part of "all".
RUNNABLE = [a for a in AREAS if a != "soak"]


def keep_previous(area: str, command: str, detail: str) -> bool:
    """When a re-run fails, an earlier successful result stays, with the failure noted in it."""
    import json
    from datetime import UTC, datetime

    from bench.harness import RESULTS_DIR

    path = RESULTS_DIR / f"{area}.json"
    if not path.exists():
        return False
    data = json.loads(path.read_text())
    if data.get("status", "ok") != "ok":
        return False
    data.setdefault("notes", []).append(
        f"A later run, `{command}` at {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}, failed ({detail[:300]}); "
        "the figures above are from the earlier run named at the top of this section.")
    path.write_text(json.dumps(data, indent=2) + "\n")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("areas", nargs="+", choices=["all", *RUNNABLE, "report"])
    parser.add_argument("--quick", action="store_true", help="reduced sizes: each area in a few minutes")
    args = parser.parse_args(argv)
    areas = RUNNABLE if "all" in args.areas else [a for a in args.areas if a != "report"]
    from bench.harness import write_result

    failed = []
    for area in areas:
        command = f"python -m bench {area}{' --quick' if args.quick else ''}"
        print(f"== {area}: {command}", flush=True)
        t0 = time.perf_counter()
        load_at_start = os.getloadavg()
        try:
            result = importlib.import_module(MODULES[area]).run(quick=args.quick)
        except Exception as exc:  # noqa: BLE001 - one area failing must not hide the others
            traceback.print_exc()
            failed.append(area)
            detail = f"{type(exc).__name__}: {exc}"
            if keep_previous(area, command, detail):
                print(f"== {area}: FAILED ({detail}); the previous result is kept and marked", flush=True)
                regenerate()
                continue
            result = {"status": "failed", "status_detail": detail, "tables": []}
        path = write_result(area, result, args.quick, time.perf_counter() - t0, command, load_at_start)
        print(f"== {area}: wrote {path} ({time.perf_counter() - t0:.0f} s)", flush=True)
        regenerate()
    if not areas:
        regenerate()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
