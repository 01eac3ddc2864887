"""Slots in support text: the customer-specific values of a reply, and the shop's own.

Two kinds of gap live in a template:

- customer slots, ``{order_id}`` style (order and account numbers of any length,
  names, e-mails, phone numbers, dates, amounts): filled only from what the
  customer wrote in this conversation;
- shop values, ``{{Support phone}}`` style: filled only from the shop's settings
  (ShopSetting rows staff keep on the settings page).

``templatize`` turns a concrete agent reply into a template: every customer-specific
value becomes a customer slot (so no customer's data is carried to another), and a
placeholder the export already held (``{{Customer Support Phone Number}}``,
``[Company Name]``) becomes a customer slot or a shop value by its name.
``extract_slots`` reads slot values from a customer message; ``fill`` puts values
back and says which gaps stayed open. A reply with an open gap is never sent
(apps/support/reply_guard.py).
"""
from __future__ import annotations

import re

SLOTS = ("order_id", "account_id", "name", "email", "phone", "date", "amount")

URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"')\]]+", re.I)
EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
# "24/7", "24x7": a promise of hours, never a date or a number to hide.
ROUND_THE_CLOCK = re.compile(r"\b24\s?(?:/|x)\s?7\b", re.I)
_MONTHS = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
    r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
DATE = re.compile(
    r"\b(?:\d{4}-\d{2}-\d{2}"
    r"|(?:0?[1-9]|[12]\d|3[01])[/.](?:0?[1-9]|1[0-2])(?:[/.]\d{2,4})?(?![\d/])"
    r"|(?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01])(?:/\d{2,4})?(?![\d/])"
    rf"|\d{{1,2}}(?:st|nd|rd|th)?(?: of)? {_MONTHS}(?: \d{{4}})?"
    rf"|{_MONTHS} \d{{1,2}}(?:st|nd|rd|th)?(?:,? \d{{4}})?)\b"
)
_CURRENCY = r"(?:EUR|USD|GBP|CHF|CAD|AUD|euros?|dollars?|pounds?|€|\$|£)"
AMOUNT = re.compile(
    rf"(?:[€$£]\s?\d[\d,]*(?:\.\d{{1,2}})?|\b\d[\d,]*(?:[.,]\d{{1,2}})?\s?{_CURRENCY}(?![A-Za-z]))", re.I)
# International (+49 30 1234567, 0049-...), North American ((555) 123-4567, 555-123-4567),
# or digits after a word that says it is a phone number.
PHONE = re.compile(
    r"(?:(?<![\w#])(?P<v>(?:\+|00)\d{1,3}[\s./-]?\(?\d{1,5}\)?(?:[\s./-]?\d{2,5}){1,4})\b"
    r"|(?<![\w#])(?P<v2>\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4})\b"
    r"|\b(?:call|phone|tel|telephone|mobile|ring|text|whatsapp|fax)\b(?:[\s.:]+(?:us|me|on|at|number|no\.?))*"
    r"[\s.:]*(?P<v3>\+?\d[\d\s()./-]{5,}\d))",
    re.I,
)
_ACCOUNT_WORDS = r"(?:account|customer|member(?:ship)?|loyalty|card|client)"
_ORDER_WORDS = r"(?:order|invoice|ticket|case|parcel|package|shipment|tracking|reference|ref|booking|return|rma)"
_NUMBER_WORDS = r"(?:\s+(?:number|no\.?|nr\.?|id|code))?\s*:?\s*"
ACCOUNT_ID = re.compile(rf"\b{_ACCOUNT_WORDS}{_NUMBER_WORDS}(?P<v>#?[A-Z]{{0,4}}-?\d[\d-]{{2,}})\b", re.I)
# Any length: "#123", "order 12345678901234", "ORD-5521", or a bare run of 5+ digits.
ORDER_ID = re.compile(
    rf"(?:(?P<v>#\s?[A-Z]{{0,4}}-?\d[\w-]*)"
    rf"|\b{_ORDER_WORDS}{_NUMBER_WORDS}(?P<v2>#?\s?[A-Z]{{0,4}}-?\d[\w-]{{2,}})"
    r"|\b(?P<v3>[A-Z]{2,4}-\d{3,})\b"
    r"|(?<![\w@/.,:-])(?P<v4>\d{5,})(?![\w/]))",
    re.I,
)


def _value_span(m: re.Match) -> tuple[int, int]:
    """Where the value itself sits in a match (the words before it, "order no.", stay)."""
    for name, value in m.groupdict().items():
        if value is not None:
            return m.span(name)
    return m.span()


def _value(m: re.Match) -> str:
    start, end = _value_span(m)
    return m.string[start:end].strip()


def _replace_value(m: re.Match, replacement: str) -> str:
    """The whole match with only its value swapped."""
    start, end = _value_span(m)
    return m.string[m.start():start] + replacement + m.string[end:m.end()]


# "Hi Anna," at the start of an agent reply; "my name is Anna" in a customer message.
GREETING_NAME = re.compile(r"^(?P<greet>(?:Hi|Hello|Hey|Dear|Thanks|Thank you),?) (?P<name>[A-Z][a-z]{1,20})\b")
# "…for you, Anna." / "Done, Zoe:": a name the agent addresses at the end of a clause.
VOCATIVE_NAME = re.compile(r"(?:,\s|^)(?P<name>[A-Z][a-z]{1,20})(?=\s*[.!?:](?:\s|$))")
SELF_NAME = re.compile(r"\b(?:[Mm]y name is|[Tt]his is|[Ii] am|[Ii]'m)\s+(?P<name>[A-Z][a-z]{1,20})\b")
_NOT_NAMES = {
    "Not", "Still", "Very", "So", "Really", "Just", "Trying", "Looking", "Waiting", "Sorry", "Here",
    "There", "Back", "Unable", "Having", "Getting", "Going", "The", "Your", "Our", "We", "You", "It",
    "Team", "All", "Everyone", "Again", "Customer", "Sir", "Madam", "Thanks", "Done", "Today", "Tomorrow",
    "Yesterday", "Please", "Yes", "No", "Ok", "Okay", "Great", "Perfect", "Sure", "Hi", "Hello", "Cheers", "Regards",
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday", "Support", "Now", "Later",
    "Soon", "Too", "Also", "Instead", "Online", "Europe", "Germany", "Canada",
}

# Customer slots a template may still read well without: the name and the order number
# are dropped or replaced by a neutral phrase. The others (a date, an amount, a phone
# number, an account number) stay open, so the reply is not sent.
FALLBACK = {"name": "there", "email": "your e-mail address"}
PLACEHOLDER = re.compile(r"\{(" + "|".join(SLOTS) + r")\}")
SHOP_VALUE = re.compile(r"\{\{\s*([^{}]{1,80}?)\s*\}\}")
# Placeholders an export may hold: {{…}}, {…} and [Some Name] (not a markdown link "[x](…)").
RAW_PLACEHOLDER = re.compile(r"\{\{\s*[^{}]{1,80}?\s*\}\}|\{[^{}\s][^{}]{0,80}\}|\[[A-Za-z][\w '’./-]{1,60}\](?!\()")

# What a placeholder's name says it holds. A name about the shop ("Customer Support Phone
# Number", "Website URL", "Company Name") is a shop value; one about the customer a slot.
_SHOP_HINTS = re.compile(
    r"\b(?:support|service|company|store|shop|website|web ?site|url|link|site|hours?|office|team|department|"
    r"business|hotline|helpline|headquarters|our|address|program|platform|app|policy|brand|portal|"
    r"contact|chat|social|live)\b", re.I)
# A customer slot only where the name says it is an identifier or a value of the customer
# ("Order Number", "Customer Name", "Refund Amount"); "{{Online Order Interaction}}" is a
# place in the shop's site, so a shop value.
_ID = r"\b(?:number|no|nr|id|code|#)\b"
_SLOT_BY_NAME = (
    (re.compile(rf"\b(?:order|invoice|ticket|tracking|parcel|package|shipment|reference|case|refund)\b.*{_ID}", re.I),
     "order_id"),
    (re.compile(rf"\b(?:account|customer|member(?:ship)?|client|loyalty)\b.*{_ID}", re.I), "account_id"),
    (re.compile(r"\be-?mail\b", re.I), "email"),
    (re.compile(r"\b(?:phone|mobile|telephone)\b", re.I), "phone"),
    (re.compile(r"\bdate\b", re.I), "date"),
    (re.compile(r"\b(?:amount|price|total|sum|balance|fee|cost)\b", re.I), "amount"),
    (re.compile(r"^(?:(?:customer|client|person|user)(?:'s)? )?(?:full |first |last )?name$", re.I), "name"),
)


def _clean_order(value: str) -> str:
    value = value.strip()
    return value if value.startswith("#") else f"#{value}"


def shop_value_name(name: str) -> str:
    """The canonical form of a shop value's name: spaces squeezed, case kept."""
    return re.sub(r"\s+", " ", name.strip())[:80]


def shop_key(name: str) -> str:
    """Shop values are looked up case- and space-insensitively."""
    return re.sub(r"[\s_-]+", " ", name.strip().lower())


def placeholder_slot(name: str) -> str:
    """What an export's placeholder becomes: a customer slot name, or ``{{Name}}``."""
    inner = name.strip().strip("{}[]").strip()
    if inner in SLOTS:
        return "{" + inner + "}"
    if not _SHOP_HINTS.search(inner):
        for pattern, slot in _SLOT_BY_NAME:
            if pattern.search(inner):
                return "{" + slot + "}"
    return "{{" + shop_value_name(inner) + "}}"


_MARK = "\x00{tag}{n}\x00"


def _mask(text: str, pattern: re.Pattern, tag: str) -> tuple[str, list[str]]:
    """Swap matches for inert markers (NUL, a tag letter, an index, NUL: no pattern matches
    letters after a NUL) so later patterns leave them alone."""
    kept: list[str] = []

    def keep(m: re.Match) -> str:
        kept.append(m.group(0))
        return _MARK.format(tag=tag, n=chr(ord("a") + len(kept) - 1) if len(kept) <= 26 else f"z{len(kept)}z")

    return pattern.sub(keep, text), kept


def _unmask(text: str, kept: list[str], tag: str) -> str:
    def back(m: re.Match) -> str:
        n = m.group(1)
        return kept[ord(n) - ord("a") if len(n) == 1 else int(n[1:-1]) - 1]

    return re.sub("\x00" + tag + r"([a-y]|z\d+z)\x00", back, text)


def extract_slots(text: str) -> dict[str, str]:
    """Slot values found in a customer message."""
    found: dict[str, str] = {}
    rest, _ = _mask(text, URL, "U")
    rest, _ = _mask(rest, ROUND_THE_CLOCK, "C")
    for slot, pattern in (("email", EMAIL), ("phone", PHONE), ("amount", AMOUNT), ("date", DATE),
                          ("account_id", ACCOUNT_ID), ("order_id", ORDER_ID)):
        m = pattern.search(rest)
        if m:
            value = _value(m)
            found[slot] = _clean_order(value) if slot == "order_id" else value
            rest = pattern.sub(" ", rest)
    m = SELF_NAME.search(text)
    if m and m.group("name") not in _NOT_NAMES:
        found["name"] = m.group("name")
    return found


def slot_values(text: str) -> list[tuple[str, str]]:
    """(slot, value) for every customer-specific value in a text, in the order templatize
    looks for them (an e-mail before the digits inside it, a phone before an order number)."""
    rest, _ = _mask(text, URL, "U")
    rest, _ = _mask(rest, ROUND_THE_CLOCK, "C")
    out: list[tuple[str, str]] = []
    for slot, pattern in (("email", EMAIL), ("phone", PHONE), ("amount", AMOUNT), ("date", DATE),
                          ("account_id", ACCOUNT_ID), ("order_id", ORDER_ID)):
        for m in pattern.finditer(rest):
            out.append((slot, _value(m)))
        rest = pattern.sub(" ", rest)
    out.extend(("name", n) for n in addressed_names(text))
    return out


def addressed_names(text: str) -> list[str]:
    """Names an agent addresses: "Hi Anna," at the start, "…for you, Anna." after a comma."""
    names = []
    m = GREETING_NAME.match(text.strip())
    if m and m.group("name") not in _NOT_NAMES:
        names.append(m.group("name"))
    names += [m.group("name") for m in VOCATIVE_NAME.finditer(text) if m.group("name") not in _NOT_NAMES]
    return list(dict.fromkeys(names))


def values_in(text: str) -> list[str]:
    """Every customer-specific value in a text (what must not travel between customers)."""
    return [v for _, v in slot_values(text)]


def normalise_value(value: str) -> str:
    """A value as compared across texts: digits only for numbers, lower case otherwise."""
    digits = re.sub(r"\D", "", value)
    return digits if len(digits) >= 3 else value.strip().lower()


def templatize(reply: str, known_names: set[str] | None = None,
               shop_constants: set[str] | None = None) -> tuple[str, list[str]]:
    """Replace the concrete customer values of an agent reply with slots.

    ``shop_constants``: values (normalised) that recur across many conversations (the shop's
    own phone number or shipping fee) and stay as written. Returns (template, slots)."""
    slots: list[str] = []
    text = reply.strip()
    constants = shop_constants or set()

    def add(slot: str) -> None:
        if slot not in slots:
            slots.append(slot)

    # The export's own placeholders first: "{{Order Number}}" -> "{order_id}".
    text, raw = _mask(text, RAW_PLACEHOLDER, "P")
    for i, ph in enumerate(raw):
        raw[i] = placeholder_slot(ph)
        m = PLACEHOLDER.fullmatch(raw[i])
        if m:
            add(m.group(1))
    text, urls = _mask(text, URL, "U")
    text, clock = _mask(text, ROUND_THE_CLOCK, "C")
    kept: list[str] = []

    for slot, pattern in (("email", EMAIL), ("phone", PHONE), ("amount", AMOUNT), ("date", DATE),
                          ("account_id", ACCOUNT_ID), ("order_id", ORDER_ID)):
        def repl(m: re.Match, slot: str = slot) -> str:
            if slot in ("email", "phone", "amount") and normalise_value(_value(m)) in constants:
                kept.append(m.group(0))  # the shop's own: later patterns must not take its digits
                return _MARK.format(tag="K", n=f"z{len(kept)}z")
            add(slot)
            return _replace_value(m, "{" + slot + "}")

        text = pattern.sub(repl, text)
    m = GREETING_NAME.match(text)
    if m and m.group("name") not in _NOT_NAMES:
        text = f"{m.group('greet')} {{name}}" + text[m.end():]
        add("name")

    def vocative(m: re.Match) -> str:
        if m.group("name") in _NOT_NAMES:
            return m.group(0)
        add("name")
        return m.group(0)[: m.start("name") - m.start()] + "{name}"

    text = VOCATIVE_NAME.sub(vocative, text)
    for name in sorted(known_names or (), key=len, reverse=True):
        if name and name not in _NOT_NAMES:
            new, n = re.subn(rf"\b{re.escape(name)}\b", "{name}", text)
            if n:
                text = new
                add("name")
    text = _unmask(_unmask(_unmask(_unmask(text, kept, "K"), clock, "C"), urls, "U"), raw, "P")
    return text, slots


def slots_in(template: str) -> list[str]:
    return list(dict.fromkeys(PLACEHOLDER.findall(template)))


def shop_values_in(template: str) -> list[str]:
    """Names of the shop values a template asks for (``{{Support phone}}`` -> "Support phone")."""
    return list(dict.fromkeys(shop_value_name(n) for n in SHOP_VALUE.findall(template)))


def fill(template: str, values: dict[str, str], shop: dict[str, str] | None = None) -> tuple[str, list[str]]:
    """Fill customer slots from ``values`` (the customer's own message) and shop values from
    ``shop`` (keyed by shop_key). Returns (text, gaps left open); an open gap stays in the
    text as its placeholder, so the guard refuses the reply."""
    missing: list[str] = []
    shop = shop or {}
    # A missing order number is left out with its little preposition, not padded.
    if not values.get("order_id") and "{order_id}" in template:
        template = re.sub(r"\s*(?:number\s+|no\.?\s+)?\{order_id\}", "", template)

    def repl(m: re.Match) -> str:
        slot = m.group(1)
        if values.get(slot):
            return values[slot]
        if slot in FALLBACK:
            return FALLBACK[slot]
        missing.append(slot)
        return m.group(0)

    def repl_shop(m: re.Match) -> str:
        name = shop_value_name(m.group(1))
        value = shop.get(shop_key(name), "").strip()
        if value:
            return value
        missing.append(name)
        return m.group(0)

    text = PLACEHOLDER.sub(repl, SHOP_VALUE.sub(repl_shop, template))
    return text, missing
