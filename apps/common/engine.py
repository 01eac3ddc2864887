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

    return Registry(Path(settings.AIGC_ARTIFACTS_DIR))


def load_current(name: str, loader: Callable[[Path], Any]) -> LoadedModel | None:
    """The promoted version of ``name`` loaded with ``loader(path)``, cached.

    A version whose files fail their checksums is skipped for the newest one
    that verifies; the returned ``warning`` says so, for the dashboard.
    Returns None when nothing has been trained yet."""
    reg = registry()
    current = reg.current(name)
    if current is None:
        return None
    with _lock:
        hit = _cache.get(name)
        if hit is not None and hit.version == current.version and hit.warning is None:
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
