"""CSV and JSONL loaders that return TextRecords and name the file and line of bad input."""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aigc_core.data.cleaning import MAX_CHARS, clean_label, clean_text
from aigc_core.data.records import DataError, TextRecord


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError("file not found", path) from None
    except OSError as exc:
        raise DataError(f"cannot read: {exc.strerror}", path) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError("not valid UTF-8", path, line) from None


def parse_timestamp(value: Any, path: Path | None = None, line: int | None = None) -> datetime | None:
    """ISO 8601 text or Unix seconds; naive times are taken as UTC so all compare."""
    if value is None or value == "":
        return None
    try:
        if isinstance(value, (int, float)) or (isinstance(value, str) and value.strip().lstrip("-").replace(".", "", 1).isdigit()):
            ts = datetime.fromtimestamp(float(value), tz=UTC)
        else:
            ts = datetime.fromisoformat(str(value).strip())
    except (ValueError, OverflowError, OSError):
        raise DataError(f"timestamp {value!r} is neither ISO 8601 nor Unix seconds", path, line) from None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _record(
    fields: dict[str, Any], text_col: str, label_cols: Sequence[str], id_col: str | None, time_col: str | None,
    row_no: int, path: Path, line: int, clean: bool, max_chars: int, labels_dict: bool = False,
) -> TextRecord | None:
    text = fields.get(text_col)
    if not isinstance(text, str):
        if text is None:
            raise DataError(f"missing text field {text_col!r}", path, line)
        raise DataError(f"text field {text_col!r} is {type(text).__name__}, not a string", path, line)
    text = clean_text(text, max_chars) if clean else text
    if not text:
        return None
    if labels_dict:
        raw_labels = fields.get("labels") or {}
        if not isinstance(raw_labels, dict):
            raise DataError("'labels' must be an object of head -> label", path, line)
        labels = {str(k): clean_label(v) for k, v in raw_labels.items()}
    else:
        labels = {col: clean_label(fields.get(col)) for col in label_cols}
    rid = fields.get(id_col) if id_col else None
    used = {text_col, *label_cols, *(c for c in (id_col, time_col) if c), "labels" if labels_dict else ""}
    meta = {k: v for k, v in fields.items() if k not in used and k is not None}
    if labels_dict and isinstance(fields.get("meta"), dict):
        meta = {**{k: v for k, v in meta.items() if k != "meta"}, **fields["meta"]}
    return TextRecord(
        id=str(rid) if rid not in (None, "") else str(row_no),
        text=text,
        labels=labels,
        timestamp=parse_timestamp(fields.get(time_col), path, line) if time_col else None,
        meta=meta,
    )


def load_csv(
    path: str | Path,
    text_col: str = "text",
    label_cols: Sequence[str] = (),
    id_col: str | None = None,
    time_col: str | None = None,
    clean: bool = True,
    max_chars: int = MAX_CHARS,
    delimiter: str = ",",
) -> list[TextRecord]:
    """Rows of a headed CSV as records; rows whose text is empty after cleaning are skipped."""
    path = Path(path)
    reader = csv.reader(io.StringIO(_read_text(path), newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise DataError("the file is empty (no header row)", path, 1) from None
    except csv.Error as exc:
        raise DataError(f"malformed CSV: {exc}", path, reader.line_num) from None
    header = [h.strip() for h in header]
    missing = [c for c in [text_col, *label_cols, id_col, time_col] if c and c not in header]
    if missing:
        raise DataError(f"missing column(s) {missing}; the header has {header}", path, 1)
    out: list[TextRecord] = []
    row_no = 0
    while True:
        start_line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise DataError(f"malformed CSV: {exc}", path, start_line) from None
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise DataError(f"expected {len(header)} fields, found {len(row)}", path, start_line)
        row_no += 1
        rec = _record(dict(zip(header, row, strict=True)), text_col, label_cols, id_col, time_col,
                      row_no, path, start_line, clean, max_chars)
        if rec is not None:
            out.append(rec)
    return out


def load_jsonl(
    path: str | Path,
    text_key: str = "text",
    label_keys: Sequence[str] | None = None,
    id_key: str | None = "id",
    time_key: str | None = "timestamp",
    clean: bool = True,
    max_chars: int = MAX_CHARS,
) -> list[TextRecord]:
    """One JSON object per line. Without ``label_keys`` the labels come from a "labels"
    object (the format ``save_jsonl`` writes)."""
    path = Path(path)
    out: list[TextRecord] = []
    row_no = 0
    for line_no, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"invalid JSON ({exc.msg} at column {exc.colno})", path, line_no) from None
        if not isinstance(obj, dict):
            raise DataError(f"expected a JSON object, found {type(obj).__name__}", path, line_no)
        row_no += 1
        rec = _record(obj, text_key, label_keys or (), id_key if id_key in obj else None,
                      time_key if time_key in obj else None, row_no, path, line_no, clean, max_chars,
                      labels_dict=label_keys is None)
        if rec is not None:
            out.append(rec)
    return out


def save_jsonl(records: Iterable[TextRecord], path: str | Path) -> Path:
    """Write records atomically (tmp + rename) in the format ``load_jsonl`` reads back."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec.to_json(), ensure_ascii=False, default=str) + "\n")
    tmp.replace(path)
    return path


def load_records(path: str | Path, **kwargs: Any) -> list[TextRecord]:
    """By extension: .csv (text_col, label_cols...) or .jsonl/.json (text_key, label_keys...)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return load_csv(path, **kwargs)
    if suffix in {".jsonl", ".json", ".ndjson"}:
        return load_jsonl(path, **kwargs)
    raise DataError(f"unknown file type {suffix!r}: use .csv or .jsonl", path)
