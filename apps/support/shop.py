"""The shop's own values (support phone, opening hours, URLs, addresses) that templates
ask for as ``{{Name}}``, and which templates still wait for one. Staff keep them on
/support/shop/; apps/support/services.py fills templates from them."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from django.db import transaction

from apps.support import slots as slot_lib
from apps.support.models import AnswerTemplate, ShopSetting

MAX_VALUE = 500


class ShopSettingError(ValueError):
    """A shop value staff cannot save as given; the message says why."""


@dataclass
class WantedValue:
    """A value templates ask for: its name, whether it is set, and which templates wait."""

    name: str
    value: str = ""
    pk: int | None = None  # the ShopSetting row, once staff set it
    templates: list[AnswerTemplate] = field(default_factory=list)

    @property
    def is_set(self) -> bool:
        return bool(self.value.strip())


def wanted_values() -> list[WantedValue]:
    """Every shop value a template (or its informational variant) names, and every value
    staff set, with the templates that use it; unset ones first."""
    by_key: dict[str, WantedValue] = {}
    for s in ShopSetting.objects.all():
        by_key[s.key] = WantedValue(s.name, s.value, s.pk)
    users: dict[str, list[AnswerTemplate]] = defaultdict(list)
    for tpl in AnswerTemplate.objects.order_by("-uses", "id"):
        for name in slot_lib.shop_values_in(tpl.text + "\n" + tpl.informational_variant):
            key = slot_lib.shop_key(name)
            by_key.setdefault(key, WantedValue(name))
            users[key].append(tpl)
    for key, wanted in by_key.items():
        wanted.templates = users.get(key, [])
    return sorted(by_key.values(), key=lambda w: (w.is_set, -len(w.templates), w.name.lower()))


def waiting_templates() -> list[WantedValue]:
    """The unset values that keep templates from being sent (the dashboard lists them)."""
    return [w for w in wanted_values() if not w.is_set and w.templates]


def set_value(name: str, value: str) -> ShopSetting:
    name, value = slot_lib.shop_value_name(name or ""), (value or "").strip()
    if not name:
        raise ShopSettingError("The value needs a name, e.g. Customer Support Phone Number.")
    if not value:
        raise ShopSettingError(f"Write the value of {name}, or delete it.")
    if len(value) > MAX_VALUE:
        raise ShopSettingError(f"The value of {name} is longer than {MAX_VALUE} characters.")
    if slot_lib.RAW_PLACEHOLDER.search(value):
        raise ShopSettingError(f"The value of {name} holds a placeholder; write the value itself.")
    with transaction.atomic():
        setting = ShopSetting.objects.filter(key=slot_lib.shop_key(name)).first() or ShopSetting(name=name)
        setting.name, setting.value = name, value
        setting.save()
    return setting


def delete_value(pk: int) -> str:
    setting = ShopSetting.objects.filter(pk=pk).first()
    if setting is None:
        raise ShopSettingError("That value is already gone.")
    setting.delete()
    return setting.name
