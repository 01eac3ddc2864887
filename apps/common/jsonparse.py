"""The project's one JSON parser and its one text check.

Everything that reads JSON from outside (API bodies through DRF, the widget,
uploaded catalogue and transcript files) and every service that takes text
from a user goes through here, so hostile input gets one answer everywhere:
a 400 with a ``detail`` that names the field, never a 500 and never silent
coercion.

The API (keep it this small):

``parse_json(raw, *, max_depth=MAX_DEPTH, where="body") -> Any``
    Parse ``raw`` (bytes must be UTF-8; a BOM is refused like any other
    non-JSON byte). Refuses, raising ``JSONInputError``: invalid JSON, nesting
    deeper than ``max_depth`` (arrays + objects), ``NaN``/``Infinity``,
    integers too long to convert, and any string or key holding a lone
    surrogate (``"\\ud800"``) or a NUL. ``where`` prefixes the field path in
    messages ("body", "line 3").

``clean_text(value, field, *, allow_empty=True, max_length=None) -> str``
    A user-supplied text field: must already be a ``str`` (``12345`` or
    ``[...]`` is refused, not stored as ``"12345"``), without lone surrogates
    or NUL, optionally non-empty and bounded. Returns it unchanged.

``JSONInputError(ValueError)``
    ``.detail`` (the message for the client) and ``.field`` (a path such as
    ``body.items[3].title`` or None). Views map it to 400; DRF does so through
    ``JSONParser`` (it is raised there as ``ParseError``).

``JSONParser``
    The DRF parser class named in ``REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]``.

``StrictCharField``
    A DRF ``CharField`` that runs ``clean_text`` first (DRF's own turns
    ``12345`` into ``"12345"``); use it for every user-text serializer field.
"""
from __future__ import annotations

import json
from typing import Any

from rest_framework import parsers, serializers
from rest_framework.exceptions import ParseError

# Real payloads nest a handful of levels; this is far below the recursion limit.
MAX_DEPTH = 32


class JSONInputError(ValueError):
    """Input the client must fix; ``detail`` says what and ``field`` where."""

    def __init__(self, detail: str, field: str | None = None):
        super().__init__(detail)
        self.detail = detail
        self.field = field


def _reject_constant(name: str):
    raise JSONInputError(f"{name} is not a JSON number.")


def _bad_char(text: str) -> str | None:
    """'NUL' or 'a lone surrogate' when ``text`` holds one, else None."""
    if "\x00" in text:
        return "a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "a lone surrogate (invalid Unicode)"
    return None


def _check_tree(value: Any, where: str, max_depth: int) -> None:
    """Iterative walk (no recursion of our own): depth and every string/key."""
    stack: list[tuple[Any, str, int]] = [(value, where, 0)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, str):
            bad = _bad_char(node)
            if bad:
                raise JSONInputError(f"{path} contains {bad}.", path)
        elif isinstance(node, dict | list):
            if depth >= max_depth:
                raise JSONInputError(f"{path} nests deeper than {max_depth} levels.", path)
            if isinstance(node, dict):
                for key, item in node.items():
                    bad = _bad_char(key)
                    if bad:
                        raise JSONInputError(f"A key in {path} contains {bad}.", path)
                    stack.append((item, f"{path}.{key}", depth + 1))
            else:
                for i, item in enumerate(node):
                    stack.append((item, f"{path}[{i}]", depth + 1))


def parse_json(raw: bytes | str, *, max_depth: int = MAX_DEPTH, where: str = "body") -> Any:
    """Parse untrusted JSON; see the module docstring for what is refused."""
    if isinstance(raw, bytes | bytearray | memoryview):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONInputError(f"{where} is not UTF-8 text (byte {exc.start}).", where) from exc
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except JSONInputError as exc:
        exc.field = exc.field or where
        exc.detail = f"{where}: {exc.detail}"
        exc.args = (exc.detail,)
        raise
    except RecursionError as exc:
        raise JSONInputError(f"{where} nests deeper than {max_depth} levels.", where) from exc
    except json.JSONDecodeError as exc:
        raise JSONInputError(f"{where} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).",
                             where) from exc
    except ValueError as exc:  # e.g. an integer longer than sys.get_int_max_str_digits()
        raise JSONInputError(f"{where} holds a value that cannot be read: {exc}.", where) from exc
    _check_tree(value, where, max_depth)
    return value


def clean_text(value: Any, field: str, *, allow_empty: bool = True, max_length: int | None = None) -> str:
    """``value`` if it is acceptable user text, else ``JSONInputError`` naming ``field``."""
    if not isinstance(value, str):
        raise JSONInputError(f"{field} must be a string, not {_json_type(value)}.", field)
    bad = _bad_char(value)
    if bad:
        raise JSONInputError(f"{field} contains {bad}.", field)
    if not allow_empty and not value.strip():
        raise JSONInputError(f"{field} must not be empty.", field)
    if max_length is not None and len(value) > max_length:
        raise JSONInputError(f"{field} is longer than {max_length} characters.", field)
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser on ``parse_json``: every token API gets the same refusals."""

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        try:
            return parse_json(raw)
        except JSONInputError as exc:
            raise ParseError(exc.detail) from exc


class StrictCharField(serializers.CharField):
    """A CharField that refuses non-strings (DRF's coerces 12345 to "12345"),
    lone surrogates and NUL, with the field's name in the message."""

    default_error_messages = {"not_text": "{message}"}

    def to_internal_value(self, data):
        try:
            clean_text(data, self.field_name or "value")
        except JSONInputError as exc:
            self.fail("not_text", message=exc.detail)
        return super().to_internal_value(data)
