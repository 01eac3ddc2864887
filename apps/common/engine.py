"""The one place Django settings become engine objects.

Apps get the registry and cached model loaders from here, so a model is read
from disk once per process and re-read only when the promoted version changes.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

log = logging.getLogger(__name__)
_lock = threading.Lock()
_cache: dict[str, LoadedModel] = {}


@dataclass
class LoadedModel:
    name: str
    version: int
    obj: Any
    warning: str | None = None  # set when we fell back from a broken version


def registry():
    from aigc_core.registry import Registry

    return Registry(Path(settings.AIGC_ARTIFACTS_DIR), keep_versions=getattr(settings, "AIGC_KEEP_VERSIONS", None))


def load_current(name: str, loader: Callable[[Path], Any]) -> LoadedModel | None:
    """The promoted version of ``name`` loaded with ``loader(path)``, cached.

    A version whose files fail their checksums is skipped for the newest one
    that verifies; the returned ``warning`` says so, for the dashboard.
    Returns None when nothing has been trained yet."""
    from aigc_core.registry import RegistryError

    reg = registry()
    try:
        current = reg.current(name)
    except RegistryError:  # the promoted version's manifest is gone or unreadable: fall back below
        current = False
    if current is None:
        return None
    with _lock:
        hit = _cache.get(name)
        if hit is not None and current and hit.version == current.version and hit.warning is None:
            return hit
        path, version, warning = reg.load_path_with_fallback(name)
        if hit is not None and hit.version == version.version:
            hit.warning = warning
            return hit
        if warning:
            log.warning("%s: %s", name, warning)
        loaded = LoadedModel(name=name, version=version.version, obj=loader(path), warning=warning)
        _cache[name] = loaded
        return loaded


def forget(name: str | None = None) -> None:
    """Drop cached models (after training or in tests)."""
    with _lock:
        if name is None:
            _cache.clear()
        else:
            _cache.pop(name, None)


_status: dict[str, tuple[tuple, str | None]] = {}


def model_warning(name: str) -> str | None:
    """For dashboards: None while the promoted version of ``name`` is intact (or
    nothing is trained), else what is wrong with it and which version is served
    instead. Checksums are re-verified only when the files' sizes or times change."""
    from aigc_core.registry import ArtifactCorrupt, RegistryError

    reg = registry()
    try:
        current = reg.current(name)
        if current is None:
            return None
        key = (current.version, tuple(_stat(current.path / rel) for rel in sorted(current.files)))
    except RegistryError:
        current, key = None, ("unreadable",)
    cached = _status.get(name)
    if cached is not None and cached[0] == key and key != ("unreadable",):
        return cached[1]
    warning = None
    try:
        if current is not None:
            reg.verify(current)
        else:
            raise ArtifactCorrupt("the promoted version cannot be read")
    except RegistryError:
        try:
            warning = reg.load_path_with_fallback(name)[2]
        except RegistryError as exc:
            warning = f"{name}: {exc}; nothing can be served until a model is trained or restored"
    _status[name] = (key, warning)
    return warning


def _stat(path: Path) -> tuple:
    try:
        st = path.stat()
        return (str(path), st.st_size, st.st_mtime_ns)
    except OSError:
        return (str(path), None, None)


def disk_usage_mb(name: str) -> dict:
    """For dashboards: the versions of ``name`` on disk and what they weigh, in MB."""
    usage = registry().disk_usage(name)["models"].get(name, {"total": 0, "versions": {}})
    return {"versions": len(usage["versions"]), "total_mb": round(usage["total"] / 1e6, 1),
            "keep": getattr(settings, "AIGC_KEEP_VERSIONS", None)}

