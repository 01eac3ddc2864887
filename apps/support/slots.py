"""Slots in support text: order numbers, names, dates and e-mail addresses.

``templatize`` turns a concrete agent reply into a template with ``{order_id}``
style placeholders; ``extract_slots`` reads slot values from a customer
message; ``fill`` puts them back, with a neutral phrase for a missing slot.
"""
from __future__ import annotations

import re

SLOTS = ("order_id", "name", "date", "email")

EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
ORDER_ID = re.compile(r"(?<![\w@/.-])#?(?:[A-Z]{2,4}-)?\d{5,10}\b")
_MONTHS = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
    r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
DATE = re.compile(
    r"\b(?:\d{4}-\d{2}-\d{2}"
    r"|\d{1,2}/\d{1,2}(?:/\d{2,4})?"
    rf"|\d{{1,2}}(?:st|nd|rd|th)?(?: of)? {_MONTHS}(?: \d{{4}})?"
    rf"|{_MONTHS} \d{{1,2}}(?:st|nd|rd|th)?(?:,? \d{{4}})?)\b"
)
# "Hi Anna," at the start of an agent reply; "my name is Anna" in a customer message.
GREETING_NAME = re.compile(r"^(?P<greet>(?:Hi|Hello|Hey|Dear|Thanks|Thank you),?) (?P<name>[A-Z][a-z]{1,20})\b")
SELF_NAME = re.compile(r"\b(?:[Mm]y name is|[Tt]his is|[Ii] am|[Ii]'m)\s+(?P<name>[A-Z][a-z]{1,20})\b")
_NOT_NAMES = {
    "Not", "Still", "Very", "So", "Really", "Just", "Trying", "Looking", "Waiting", "Sorry", "Here",
    "There", "Back", "Unable", "Having", "Getting", "Going", "The", "Your", "Our", "We", "You", "It",
}

FALLBACK = {"order_id": "your order", "name": "there", "date": "the date you mentioned", "email": "your e-mail address"}
PLACEHOLDER = re.compile(r"\{(order_id|name|date|email)\}")


def _clean_order(value: str) -> str:
    return value if value.startswith("#") else f"#{value}"


def extract_slots(text: str) -> dict[str, str]:
    """Slot values found in a customer message."""
    found: dict[str, str] = {}
    m = EMAIL.search(text)
    if m:
        found["email"] = m.group(0)
    rest = EMAIL.sub(" ", text)
    m = DATE.search(rest)
    if m:
        found["date"] = m.group(0)
    m = ORDER_ID.search(DATE.sub(" ", rest))
    if m:
        found["order_id"] = _clean_order(m.group(0))
    m = SELF_NAME.search(text)
    if m and m.group("name") not in _NOT_NAMES:
        found["name"] = m.group("name")
    return found


def templatize(reply: str, known_names: set[str] | None = None) -> tuple[str, list[str]]:
    """Replace concrete slot values in an agent reply with placeholders."""
    slots: list[str] = []
    text = reply.strip()

    def sub(pattern: re.Pattern, slot: str, s: str) -> str:
        new, n = pattern.subn("{" + slot + "}", s)
        if n and slot not in slots:
            slots.append(slot)
        return new

    text = sub(EMAIL, "email", text)
    text = sub(DATE, "date", text)
    text = sub(ORDER_ID, "order_id", text)
    m = GREETING_NAME.match(text)
    if m and m.group("name") not in _NOT_NAMES:
        text = f"{m.group('greet')} {{name}}" + text[m.end():]
        slots.append("name")
    for name in sorted(known_names or (), key=len, reverse=True):
        if name and name not in _NOT_NAMES:
            new, n = re.subn(rf"\b{re.escape(name)}\b", "{name}", text)
            if n:
                text = new
                if "name" not in slots:
                    slots.append("name")
    return text, slots


def slots_in(template: str) -> list[str]:
    return list(dict.fromkeys(PLACEHOLDER.findall(template)))


def fill(template: str, values: dict[str, str]) -> tuple[str, list[str]]:
    """Fill placeholders; returns (text, slots that had no value and got a neutral phrase)."""
    missing: list[str] = []
    # A missing order number or date is left out with its little preposition, not padded.
    for slot, pattern in (("order_id", r"\s*(?:number\s+)?\{order_id\}"), ("date", r"\s*(?:on|by|from|since)?\s*\{date\}")):
        if not values.get(slot) and "{" + slot + "}" in template:
            missing.append(slot)
            template = re.sub(pattern, "", template)

    def repl(m: re.Match) -> str:
        slot = m.group(1)
        if values.get(slot):
            return values[slot]
        missing.append(slot)
        return FALLBACK[slot]

    return PLACEHOLDER.sub(repl, template), missing
