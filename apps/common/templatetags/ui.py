"""Template helpers of the staff UI: SVG icons from lucide-static (npm), human dates
in the user's timezone, and readable tables for job parameters and results."""
from __future__ import annotations

import re
from datetime import UTC, date, datetime
from functools import lru_cache

from django import template
from django.conf import settings
from django.template.defaultfilters import date as date_filter
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

register = template.Library()

_NAME = re.compile(r"^[a-z0-9-]+$")


@lru_cache(maxsize=256)
def _svg(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"bad icon name {name!r}")
    path = settings.NODE_MODULES / "lucide-static" / "icons" / f"{name}.svg"
    text = path.read_text()
    text = re.sub(r"<!--.*?-->\s*", "", text, flags=re.S)
    # Decorative by default: the text beside an icon says what it means.
    return re.sub(r"<svg\b", '<svg aria-hidden="true" focusable="false"', text, count=1).replace(
        'class="lucide', 'class="icon lucide', 1).replace('width="24"', 'width="1em"').replace(
        'height="24"', 'height="1em"')


@register.simple_tag
def icon(name: str) -> str:
    """``{% icon "message-circle" %}``: the inline SVG of a lucide icon (no emoji, no web font)."""
    return mark_safe(_svg(str(name)))


@register.filter
def when(value, fmt: str = "DATETIME_FORMAT"):
    """``{{ dt|when }}``: a <time> in the user's timezone in the suite's one format."""
    if value in (None, ""):
        return "—"
    if isinstance(value, str):
        from django.utils.dateparse import parse_datetime
        parsed = parse_datetime(value)
        if parsed is None:
            return value
        value = parsed
    if isinstance(value, datetime):
        if timezone.is_naive(value):
            value = timezone.make_aware(value, UTC)
        local = timezone.localtime(value)
        return format_html('<time datetime="{}" title="{}">{}</time>', value.isoformat(),
                           local.strftime("%Y-%m-%d %H:%M:%S %Z"), date_filter(local, fmt))
    if isinstance(value, date):
        return format_html('<time datetime="{}">{}</time>', value.isoformat(), date_filter(value, "DATE_FORMAT"))
    return value


@register.inclusion_tag("common/_data_table.html")
def data_table(value, caption: str = ""):
    """A dict (job parameters, results) as a two-column table; nested dicts nest."""
    return {"rows": _rows(value), "caption": caption, "scalar": None if isinstance(value, dict) else value}


def _rows(value) -> list[dict]:
    if not isinstance(value, dict):
        return []
    rows = []
    for k, v in value.items():
        if isinstance(v, dict):
            rows.append({"key": k, "nested": _rows(v), "empty": not v})
        elif isinstance(v, list | tuple):
            simple = all(not isinstance(x, dict | list | tuple) for x in v)
            rows.append({"key": k, "text": ", ".join(_fmt(x) for x in v) if simple else None,
                         "list_rows": None if simple else [_rows(x) if isinstance(x, dict) else [{"key": "", "text": _fmt(x)}]
                                                       for x in v]})
        else:
            rows.append({"key": k, "text": _fmt(v)})
    return rows


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
