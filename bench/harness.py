"""The small harness every area uses: paths, machine description, data hashes,
wall-time stopwatch, cached encoder embeddings, Django set-up, result files.

An area module exposes ``run(quick: bool) -> dict``; the dict it returns is
written to ``bench/results/<area>.json`` with the machine and timing fields
added here. ``tables`` in that dict drive the README (see ``report.py``).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
CACHE_DIR = BENCH_DIR / ".cache"  # git-ignored: embeddings, scratch var dir, indexes
DATA_DIR = Path(os.environ.get("BENCH_DATA_DIR", REPO.parent / "shared" / "data")).resolve()


class DataMissing(RuntimeError):
    """A public data set is not where the README says it is."""


def dev_limit() -> int:
    """BENCH_DEV_LIMIT=N: development only — the loaders keep a small slice; results say so."""
    return int(os.environ.get("BENCH_DEV_LIMIT", "0") or 0)


def data_path(*parts: str) -> Path:
    path = DATA_DIR.joinpath(*parts)
    if not path.exists():
        raise DataMissing(f"{path} not found: the public data sets live in ../shared/data (BENCH_DATA_DIR)")
    return path


def sha256_files(paths: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(Path(x) for x in paths):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def sha256_texts(texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()[:16]


# -- machine -------------------------------------------------------------------
def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def machine() -> dict[str, Any]:
    cpu = next((ln.split(":", 1)[1].strip() for ln in _read("/proc/cpuinfo").splitlines()
                if ln.startswith("model name")), platform.processor())
    flags = next((ln for ln in _read("/proc/cpuinfo").splitlines() if ln.startswith("flags")), "")
    mem_kb = next((int(ln.split()[1]) for ln in _read("/proc/meminfo").splitlines()
                   if ln.startswith("MemTotal")), 0)
    versions: dict[str, str] = {"python": platform.python_version()}
    for mod in ("torch", "faiss", "numpy", "sklearn", "transformers", "django"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - a missing library is just not listed
            continue
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(mem_kb / 2**20, 1),
        "isa": [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags.split()],
        "os": platform.platform(),
        "versions": versions,
        "git_commit": commit,
        "load_avg_at_start": list(os.getloadavg()),
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001
        pass
    return info


# -- timing ----------------------------------------------------------------------
class Stopwatch:
    """Named wall times: ``with sw("train"): ...``; ``sw.times`` -> {name: seconds}."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.times[name] = round(self.times.get(name, 0.0) + time.perf_counter() - t0, 3)


def median(xs: Sequence[float]) -> float:
    return float(np.median(np.asarray(xs, dtype=np.float64))) if len(xs) else float("nan")


def percentiles(xs: Sequence[float], qs=(50, 95, 99)) -> dict[str, float]:
    arr = np.asarray(xs, dtype=np.float64)
    if not len(arr):
        return {f"p{q}": float("nan") for q in qs}
    return {f"p{q}": float(np.percentile(arr, q)) for q in qs}


# -- embeddings --------------------------------------------------------------------
def embed(texts: Sequence[str], progress: bool = True) -> np.ndarray:
    """The shipped encoder's vectors (the project's one encoder), cached on disk
    under bench/.cache by a hash of the texts."""
    from aigc_core.retrieval.encoder import encode

    key = sha256_texts(texts)
    path = CACHE_DIR / f"emb_{key}_{len(texts)}.npy"
    if path.exists():
        return np.load(path)
    vecs = encode(list(texts), batch_size=128, progress=progress)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, vecs)
    os.replace(tmp, path)
    return vecs


# -- Django ------------------------------------------------------------------------
_django_ready = False


def setup_django() -> None:
    """Import-ready apps.* with a scratch var dir under bench/.cache (SQLite, artifacts)."""
    global _django_ready
    if _django_ready:
        return
    var = CACHE_DIR / "var"
    var.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("AIGC_VAR_DIR", str(var))
    os.environ.setdefault("AIGC_ARTIFACTS_DIR", str(var / "artifacts"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import django

    django.setup()
    _django_ready = True


# -- results -------------------------------------------------------------------------
def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_result(area: str, result: dict[str, Any], quick: bool, wall_s: float, command: str,
                 load_at_start: tuple[float, float, float] | None = None) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    info = machine()
    info["load_avg_at_end"] = info.pop("load_avg_at_start")
    info["load_avg_at_start"] = list(load_at_start) if load_at_start else None
    payload = {
        "area": area,
        "mode": ("quick" if quick else "full") + (f" DEV SLICE {dev_limit()}" if dev_limit() else ""),
        "command": command,
        "finished_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "wall_s": round(wall_s, 1),
        "machine": info,
        **result,
    }
    path = RESULTS_DIR / f"{area}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_jsonable(payload), indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
    return path


def table(title: str, columns: list[str], rows: list[list[Any]], notes: list[str] | None = None) -> dict:
    """One README table: rows of plain values; floats are formatted by the report."""
    return {"title": title, "columns": columns, "rows": rows, "notes": notes or []}
