"""The one CSV reader for uploaded files (news, catalogue, transcripts).

``read_csv(text) -> (header, rows)`` where each row is ``(line, {column: value})``
with ``line`` the 1-based line the row starts on. A malformed row (an
unterminated quote, a field over ``csv.field_size_limit()`` = 128 KiB) or a
NUL character raises ``CSVInputError`` whose ``detail`` names the line, which
the importers answer with 400; ``csv.Error`` never escapes as a 500.
"""
from __future__ import annotations

import csv
import io

MAX_FIELD_BYTES = csv.field_size_limit()  # 131072: Python's default, kept on purpose


class CSVInputError(ValueError):
    def __init__(self, detail: str, line: int | None = None):
        super().__init__(detail)
        self.detail, self.line = detail, line


def read_csv(text: str) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise CSVInputError(f"line {line}: the CSV contains a NUL character", line)
    reader = csv.DictReader(io.StringIO(text), strict=True)  # strict: a stray or unclosed quote is an error
    rows: list[tuple[int, dict[str, str]]] = []
    start = 1
    try:
        header = [(h or "").strip() for h in (reader.fieldnames or [])]
        reader.fieldnames = header
        start = reader.line_num + 1
        for row in reader:
            rows.append((start, row))
            start = reader.line_num + 1
    except csv.Error as exc:
        line = start
        if "field larger than field limit" in str(exc):
            raise CSVInputError(f"line {line}: a field is larger than {MAX_FIELD_BYTES // 1024} KiB", line) from exc
        raise CSVInputError(f"line {line}: malformed CSV row ({exc})", line) from exc
    return header, rows
