"""``{% model_warning "sentiment.news" %}``: a banner on a dashboard when the
promoted model version is unusable and an older one is served instead."""
from __future__ import annotations

from django import template

from apps.common import engine

register = template.Library()


@register.inclusion_tag("common/_model_warning.html")
def model_warning(name: str) -> dict:
    name = name.encode().decode()  # a template literal is a SafeString, which pathlib will not join
    try:
        warning = engine.model_warning(name)
    except Exception as exc:  # the page still renders; the banner says what went wrong
        warning = f"{name}: the model's status could not be read ({type(exc).__name__}: {exc})"
    return {"name": name, "warning": warning}
