"""Versioned model artifacts on disk, with their metrics, data hash and config.

Layout under ``root`` (AIGC_ARTIFACTS_DIR)::

    <name>/v0001/<weights, config, tokenizer...>   written by the model's own save()
    <name>/v0001/manifest.json                      version, created_at, metrics, data_hash,
                                                    config, sha256 of every file; written last
    <name>/CURRENT                                  "v0002": the promoted version

A version is built in a hidden temporary directory next to its siblings and
renamed into place, so it appears whole or not at all; a crash leaves at most a
``.tmp-*`` directory that every reader ignores. CURRENT is replaced atomically.
``load_path`` re-hashes the files, so a corrupt or truncated artifact raises
``ArtifactCorrupt`` instead of loading half a model.

Retention: with ``keep_versions=N`` each save removes the oldest versions beyond
the newest N (never the promoted one); ``disk_usage`` tells a dashboard what the
versions weigh.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aigc_core.config import artifacts_dir

MANIFEST = "manifest.json"
CURRENT = "CURRENT"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_VERSION_RE = re.compile(r"^v(\d{4,})$")
STALE_TEMP_S = 6 * 3600  # a temp dir untouched this long belongs to a dead writer (full fine-tunes save in seconds)


class RegistryError(RuntimeError):
    """Base for registry failures."""


class ArtifactNotFound(RegistryError, LookupError):
    """No such artifact name or version (or nothing promoted yet)."""


class ArtifactCorrupt(RegistryError):
    """A version's files do not match its manifest: missing, truncated or altered."""


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    path: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""  # ISO 8601, UTC
    data_hash: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256

    @property
    def tag(self) -> str:
        return _tag(self.version)


def _tag(version: int) -> str:
    return f"v{version:04d}"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class Registry:
    def __init__(self, root: str | Path | None = None, keep_versions: int | None = None):
        """``keep_versions``: versions kept per name after each save (None or 0: all)."""
        if keep_versions is not None and keep_versions < 0:
            raise ValueError("keep_versions must be >= 0")
        self.root = Path(root) if root is not None else artifacts_dir()
        self.keep_versions = keep_versions or None

    # -- writing -----------------------------------------------------------
    def save(
        self,
        name: str,
        writer: Callable[[Path], Any],
        metrics: dict[str, Any] | None = None,
        data_hash: str = "",
        config: dict[str, Any] | None = None,
        promote: bool = True,
    ) -> ModelVersion:
        """Run ``writer(dir)`` into a fresh directory and publish it as the next version."""
        base = self._base(name)
        base.mkdir(parents=True, exist_ok=True)
        self._sweep_stale_temp(base)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=base))
        try:
            writer(tmp)
            files = {}
            for f in sorted(p for p in tmp.rglob("*") if p.is_file()):
                if f.name == MANIFEST:
                    continue
                files[f.relative_to(tmp).as_posix()] = _sha256(f)
                _fsync_path(f)
            if not files:
                raise RegistryError(f"the writer for {name!r} wrote no files")
            manifest = {
                "name": name,
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "metrics": metrics or {},
                "data_hash": data_hash,
                "config": config or {},
                "files": files,
            }
            # Another process may take the same number first: rename fails on a non-empty
            # target, so take the next number and try again.
            for _ in range(100):
                version = self._next_version(name)
                manifest["version"] = version
                with open(tmp / MANIFEST, "w") as fh:
                    json.dump(manifest, fh, indent=2, sort_keys=True, default=_json_default)
                    fh.flush()
                    os.fsync(fh.fileno())
                _fsync_path(tmp)
                target = base / _tag(version)
                try:
                    os.rename(tmp, target)
                except OSError:
                    if target.exists():
                        time.sleep(0.01)
                        continue
                    raise
                _fsync_path(base)
                break
            else:
                raise RegistryError(f"could not allocate a version number for {name!r}")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        mv = self._read(name, version)
        if promote:
            self._write_current(name, version)
        if self.keep_versions:
            self.prune(name, self.keep_versions)
        return mv

    def prune(self, name: str, keep: int) -> list[int]:
        """Remove the oldest versions of ``name`` beyond the newest ``keep``; the promoted
        version always stays. Each is renamed out of sight first, so a reader never sees
        half a version. Returns the removed version numbers."""
        if keep < 1:
            raise ValueError("keep must be >= 1")
        current = self._current_version(name)
        versions = [mv.version for mv in self.versions(name)]
        keep_set = set(versions[-keep:]) | ({current} if current is not None else set())
        removed = []
        base = self._base(name)
        for v in versions:
            if v in keep_set:
                continue
            hidden = base / f".tmp-removed-{_tag(v)}-{os.getpid()}"
            try:
                os.rename(base / _tag(v), hidden)
            except FileNotFoundError:  # another process pruned it first
                continue
            shutil.rmtree(hidden, ignore_errors=True)
            removed.append(v)
        return removed

    def disk_usage(self, name: str | None = None) -> dict[str, Any]:
        """Bytes on disk: {"total": n, "models": {name: {"total": n, "versions": {tag: n}}}}."""
        names = [name] if name else self.names()
        out: dict[str, Any] = {"total": 0, "models": {}}
        for n in names:
            per = {mv.tag: sum(f.stat().st_size for f in mv.path.rglob("*") if f.is_file())
                   for mv in self.versions(n)}
            out["models"][n] = {"total": sum(per.values()), "versions": per}
            out["total"] += sum(per.values())
        return out

    def promote(self, name: str, version: int) -> ModelVersion:
        """Make ``version`` current, after checking its files."""
        mv = self._read(name, version)
        self.verify(mv)
        self._write_current(name, version)
        return mv

    def rollback(self, name: str) -> ModelVersion:
        """Promote the newest intact version older than the current one."""
        cur = self.current(name)
        if cur is None:
            raise ArtifactNotFound(f"{name!r} has no promoted version to roll back from")
        for mv in reversed(self.versions(name)):
            if mv.version < cur.version and self._intact(mv):
                self._write_current(name, mv.version)
                return mv
        raise ArtifactNotFound(f"{name!r} has no intact version older than {cur.tag}")

    # -- reading -----------------------------------------------------------
    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _NAME_RE.match(p.name))

    def versions(self, name: str) -> list[ModelVersion]:
        """Every published version, oldest first (half-written temp dirs are invisible)."""
        base = self._base(name)
        if not base.is_dir():
            return []
        out = []
        for p in base.iterdir():
            m = _VERSION_RE.match(p.name)
            if m and (p / MANIFEST).is_file():
                try:
                    out.append(self._read(name, int(m.group(1))))
                except ArtifactCorrupt:
                    continue
        return sorted(out, key=lambda mv: mv.version)

    def current(self, name: str) -> ModelVersion | None:
        version = self._current_version(name)
        return None if version is None else self._read(name, version)

    def _current_version(self, name: str) -> int | None:
        pointer = self._base(name) / CURRENT
        try:
            text = pointer.read_text().strip()
        except FileNotFoundError:
            return None
        m = _VERSION_RE.match(text)
        if not m:
            raise ArtifactCorrupt(f"{pointer} holds {text!r}, not a version tag")
        return int(m.group(1))

    def get(self, name: str, version: int | None = None) -> ModelVersion:
        if version is None:
            mv = self.current(name)
            if mv is None:
                raise ArtifactNotFound(f"no promoted version of {name!r} under {self.root}")
            return mv
        return self._read(name, version)

    def load_path(self, name: str, version: int | None = None) -> Path:
        """Directory of the current (or given) version, after verifying every checksum."""
        mv = self.get(name, version)
        self.verify(mv)
        return mv.path

    def load_path_with_fallback(self, name: str) -> tuple[Path, ModelVersion, str | None]:
        """The current version, or, if it is corrupt, the newest earlier one that verifies.

        Returns (path, version, warning); warning is None when the current version loaded.
        """
        current_version = self._current_version(name)
        if current_version is None:
            raise ArtifactNotFound(f"no promoted version of {name!r} under {self.root}")
        try:
            cur = self._read(name, current_version)
            self.verify(cur)
            return cur.path, cur, None
        except (ArtifactCorrupt, ArtifactNotFound) as exc:
            problem = str(exc)
        for mv in reversed(self.versions(name)):
            if mv.version < current_version and self._intact(mv):
                warning = f"{name} {_tag(current_version)} is unusable ({problem}); serving {mv.tag} instead"
                return mv.path, mv, warning
        raise ArtifactCorrupt(f"{problem}; and no earlier version of {name!r} is intact")

    def verify(self, mv: ModelVersion) -> None:
        for rel, digest in mv.files.items():
            f = mv.path / rel
            if not f.is_file():
                raise ArtifactCorrupt(f"{name_tag(mv)}: file {rel} is missing")
            if _sha256(f) != digest:
                raise ArtifactCorrupt(f"{name_tag(mv)}: file {rel} does not match its checksum")

    # -- internals ---------------------------------------------------------
    def _intact(self, mv: ModelVersion) -> bool:
        try:
            self.verify(mv)
            return True
        except ArtifactCorrupt:
            return False

    @staticmethod
    def _sweep_stale_temp(base: Path, older_than_s: float = STALE_TEMP_S) -> None:
        # Debris of writers killed mid-save; a live writer touches its dir far more often.
        now = time.time()
        for p in base.glob(".tmp-*"):
            try:
                if p.is_dir() and now - p.stat().st_mtime > older_than_s:
                    shutil.rmtree(p, ignore_errors=True)
            except FileNotFoundError:
                continue

    def _base(self, name: str) -> Path:
        if not _NAME_RE.match(name):
            raise ValueError(f"artifact name {name!r} must be letters, digits, '_', '.' or '-'")
        return self.root / name

    def _next_version(self, name: str) -> int:
        used = [int(m.group(1)) for p in self._base(name).iterdir() if (m := _VERSION_RE.match(p.name))]
        return max(used, default=0) + 1

    def _read(self, name: str, version: int) -> ModelVersion:
        path = self._base(name) / _tag(version)
        try:
            data = json.loads((path / MANIFEST).read_text())
        except FileNotFoundError:
            raise ArtifactNotFound(f"{name!r} has no version {_tag(version)} under {self.root}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ArtifactCorrupt(f"{name} {_tag(version)}: manifest.json is unreadable ({exc})") from None
        return ModelVersion(
            name=name,
            version=int(data.get("version", version)),
            path=path,
            metrics=data.get("metrics", {}),
            created_at=data.get("created_at", ""),
            data_hash=data.get("data_hash", ""),
            config=data.get("config", {}),
            files=data.get("files", {}),
        )

    def _write_current(self, name: str, version: int) -> None:
        base = self._base(name)
        tmp = base / f".{CURRENT}.tmp{os.getpid()}"
        with open(tmp, "w") as fh:
            fh.write(_tag(version) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, base / CURRENT)
        _fsync_path(base)


def name_tag(mv: ModelVersion) -> str:
    return f"{mv.name} {mv.tag}"
