"""Text cleaning shared by every loader: one normal form for the models to see."""
from __future__ import annotations

import re
import unicodedata

MAX_CHARS = 2000  # ~4x MiniLM's 128-token window: longer text is truncated by the encoder anyway

_SPACE_RE = re.compile(r"\s+")


def clean_text(text: str, max_chars: int = MAX_CHARS) -> str:
    """NFC-normalise, turn control characters into spaces, collapse whitespace, cap the length."""
    text = unicodedata.normalize("NFC", text)
    # Cc = control characters (NUL, escape sequences...); Cf = zero-width and direction marks.
    text = "".join(
        " " if unicodedata.category(ch) == "Cc" else "" if unicodedata.category(ch) == "Cf" else ch
        for ch in text
    )
    text = _SPACE_RE.sub(" ", text).strip()
    if max_chars and len(text) > max_chars:
        cut = text.rfind(" ", 0, max_chars + 1)
        text = text[: cut if cut > max_chars // 2 else max_chars].rstrip()
    return text


def clean_label(value: object) -> str | None:
    """Labels are strings; empty cells and nulls mean 'no label for this head'."""
    if value is None:
        return None
    if isinstance(value, float) and value != value:  # NaN from pandas-made files
        return None
    label = clean_text(str(value), max_chars=200)
    return label or None
