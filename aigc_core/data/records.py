"""The small typed record every loader returns, its error type and its content hash."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any


class DataError(ValueError):
    """Bad input data; names the file and, when known, the 1-based line."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.path, self.line, self.reason = (str(path) if path else None), line, message
        where = f"{path}:{line}: " if path and line else f"{path}: " if path else ""
        super().__init__(where + message)


@dataclass
class TextRecord:
    id: str
    text: str
    labels: dict[str, str | None] = field(default_factory=dict)  # head -> label; None = unlabelled
    timestamp: datetime | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "text": self.text,
            "labels": self.labels,
            "timestamp": self.timestamp.isoformat() if self.timestamp else None,
            "meta": self.meta,
        }


def dataset_hash(items: Iterable[TextRecord | str]) -> str:
    """sha256 over the content in order (ids, texts, labels, timestamps; strings as texts).

    Order counts on purpose: cached features are stored row by row.
    """
    h = hashlib.sha256()
    for item in items:
        if isinstance(item, str):
            row: Any = item
        else:
            row = [item.id, item.text, sorted(item.labels.items(), key=lambda kv: kv[0]),
                   item.timestamp.isoformat() if item.timestamp else None]
        h.update(json.dumps(row, ensure_ascii=False, default=str).encode())
        h.update(b"\n")
    return h.hexdigest()
