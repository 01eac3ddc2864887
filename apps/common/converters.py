"""URL converters. ``<id:pk>`` is a row id: 1 to 18 digits, so it always fits the
64-bit integer columns of SQLite and PostgreSQL. A longer number matches no
URL and answers 404 (JSON under /api/), where ``<int:pk>`` let it reach the
database and fail there (an overflow 500 on SQLite, a 400 on PostgreSQL)."""
from __future__ import annotations


class RowIdConverter:
    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value) -> str:
        return str(int(value))
