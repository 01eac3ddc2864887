"""The last check before text reaches a customer: every path that sends the bot's
words (templates, KB passages, the LLM, the in-house language model, streamed or
not) asks ``check_reply`` first, and sends nothing it objects to.

It refuses three things the bot cannot stand behind:

- an action claimed in the agent's name ("I have refunded order #123", "your
  order shipped yesterday"): the bot takes no actions and knows no order's status;
- a gap still open: a slot or placeholder (``{order_id}``, ``{{Support phone}}``,
  ``[Company Name]``) the customer's message and the shop's settings did not fill;
- a customer-specific value (order number, phone, e-mail, amount, date, a name the
  reply addresses) that came
  from neither the customer's own words nor the text the reply was built from
  (a generator recalling another customer's order number).

``template_kind`` uses the same test to mark templates at ingest: an
action-claiming template is never sent as it is (apps/support/services.py hands
off, or sends the staff-approved informational variant).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from apps.support import slots as slot_lib

INFORMATIONAL = "informational"
ACTION = "action"

# Things an agent does to an order or an account, in the past tense (and the base
# form, for "I'll refund" / "I will cancel").
_ACTIONS_PAST = (
    r"refunded|reimbursed|credited|issued|processed|updated|changed|amended|modified|corrected|cancell?ed|"
    r"shipped|dispatched|sent|re-?sent|e-?mailed|mailed|posted|forwarded|delivered|applied|added|removed|deleted|"
    r"started|initiated|opened|closed|created|reserved|booked|scheduled|arranged|ordered|replaced|exchanged|"
    r"reset|unlocked|locked|blocked|unblocked|activated|deactivated|reactivated|suspended|unsubscribed|subscribed|"
    r"upgraded|downgraded|extended|renewed|approved|authori[sz]ed|confirmed|verified|waived|reversed|voided|"
    r"adjusted|transferred|paid|charged|refunding|escalated|submitted|filed|logged|registered|raised|released|"
    r"put through|set up|taken care of|sorted out|fixed|resolved|returned|collected|picked up"
)
_ACTIONS_BASE = (
    r"refund|reimburse|credit|issue|process|update|change|amend|modify|correct|cancel|ship|dispatch|send|"
    r"re-?send|e-?mail|forward|apply|add|remove|delete|start|initiate|open|close|create|reserve|book|schedule|"
    r"arrange|replace|exchange|reset|unlock|block|unblock|activate|deactivate|unsubscribe|upgrade|extend|"
    r"approve|authori[sz]e|waive|reverse|adjust|transfer|charge|escalate|submit|file|raise|release|"
    r"set up|take care of|sort out|fix|resolve|arrange for|get .{1,20} (?:sent|shipped|refunded)|"
    r"call (?:you|them)(?: back)?|ring you|phone you|contact you|get back to you"
)
_AGENT = r"\b(?:I|we)(?:'ve|'d|’ve| have| had)?(?:\s+(?:just|now|already|also|successfully|gone ahead and|personally))*\s+"
CLAIMED_ACTION = re.compile(rf"{_AGENT}(?:{_ACTIONS_PAST})\b", re.I)
# "I'll refund you": the agent's own promise ("we will e-mail you when it is back" is the
# shop's process, not a promise the bot makes about this customer's order).
_PROMISED = rf"(?:\s+(?:now|also|just|gladly|happily|immediately|personally))*\s+(?:{_ACTIONS_BASE})\b"
PROMISED_ACTION = re.compile(
    rf"\bI(?:'ll|’ll| will| shall| am going to|'m going to| can now){_PROMISED}"
    # "we will cancel it for you now": the shop's "we will" made a promise about this customer.
    rf"|\bwe(?:'ll|’ll| will| shall| are going to|'re going to){_PROMISED}"
    rf"(?=[^.!?]{{0,40}}\b(?:for you|right away|right now|now|immediately|straight away|today)\b)", re.I)
# "your refund was issued", "the order has been cancelled", "order {order_id} shipped on {date}".
_THING = (r"(?:order|orders|refund|parcel|package|shipment|item|items|replacement|return|payment|account|exchange|"
          r"invoice|label|code|voucher|credit|subscription|delivery|address|request|claim|case|ticket|money|"
          r"difference|cancellation|reservation|booking|card|password)")
_AUX = (r"(?:has been|have been|had been|was|were|is being|are being|got|is now|are now|is already|are already)"
        r"(?:\s+(?:now|already|just|successfully|fully))*")
_MOVED = (r"(?:shipped|dispatched|arrived|left (?:our|the) warehouse|is on its way|are on their way|is out for delivery|"
          r"is in transit|was delivered|has arrived|is ready for (?:pick-?up|collection)|is being (?:packed|prepared|processed))")
_OWNER = r"\b(?:your|the|this|that|my)\s+(?:\w+\s+){0,2}"
STATUS_CLAIM = re.compile(
    # "the refund for order {order_id} was issued": a passive report, a few words apart.
    rf"{_OWNER}{_THING}\b(?:(?!\bnot\b)[^.!?\n]){{0,60}}?\b{_AUX}\s+(?:{_ACTIONS_PAST})\b"
    # "your order {order_id} shipped": the thing, maybe its number, then the news.
    rf"|{_OWNER}{_THING}\b(?:\s+(?:for\s+)?(?:order\s+)?(?:\{{order_id\}}|#\s?\w*\d\w*|\d{{3,}}))?"
    rf"\s+(?:has\s+|have\s+)?{_MOVED}\b",
    re.I)
_ORDER_REF = r"(?:\{order_id\}|\{\{[^{}]*order[^{}]*\}\}|#\s?\w*\d\w*|\b\d{5,}\b)"
ORDER_STATUS = re.compile(
    rf"{_ORDER_REF}[^.!?\n]{{0,40}}?\b(?:shipped|dispatched|arrived|delivered|is on its way|in transit|"
    rf"out for delivery|(?:was|is|is now|has been) (?:{_ACTIONS_PAST})|will arrive|should arrive|arrives)\b"
    rf"|\b(?:shipped|dispatched|delivered|arrived|cancell?ed|refunded)\b[^.!?\n]{{0,20}}?{_ORDER_REF}",
    re.I)


@dataclass(frozen=True)
class Problem:
    code: str  # action | placeholder | foreign_value
    detail: str

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


# "once the order has shipped", "as long as it has not shipped": a condition, not news.
_CONDITION = re.compile(r"\b(?:once|when|whenever|after|until|till|before|if|unless|as soon as|as long as)\s+$", re.I)
_NEGATED = re.compile(r"\b(?:not|never|n't)\b|n't\b", re.I)


def claimed_action(text: str) -> str:
    """The words that claim an action or an order's status, or ''."""
    for pattern in (CLAIMED_ACTION, PROMISED_ACTION, STATUS_CLAIM, ORDER_STATUS):
        for m in pattern.finditer(text):
            if _CONDITION.search(text[max(0, m.start() - 14):m.start()]) or _NEGATED.search(m.group(0)):
                continue
            return m.group(0).strip()
    return ""


def template_kind(text: str) -> str:
    return ACTION if claimed_action(text) else INFORMATIONAL


def open_placeholders(text: str) -> list[str]:
    """Slots and placeholders still in the text: {order_id}, {{…}}, {…}, [Some Name]."""
    return list(dict.fromkeys(m.group(0) for m in slot_lib.RAW_PLACEHOLDER.finditer(text)))


def foreign_values(text: str, allowed_text: str) -> list[str]:
    """Customer-specific values in ``text`` that ``allowed_text`` (the customer's own words,
    the shop's values, the passages a reply was built from) does not hold."""
    allowed = {slot_lib.normalise_value(v) for v in slot_lib.values_in(allowed_text)}
    allowed_digits = re.sub(r"\D", "", allowed_text)
    allowed_lower = allowed_text.lower()
    out = []
    for value in slot_lib.values_in(text):
        norm = slot_lib.normalise_value(value)
        if norm in allowed or (norm.isdigit() and norm in allowed_digits) or value.lower() in allowed_lower:
            continue
        out.append(value)
    return out


def check_reply(text: str, *, allowed_text: str | None = None, action_approved: bool = False) -> list[Problem]:
    """What stops ``text`` from going to the customer (empty: it may go).

    ``allowed_text``: when given, a customer-specific value outside it is refused (for
    generated text; a template's values come from fill() and a KB passage's from staff).
    ``action_approved``: staff marked this wording informational, so the action test
    is theirs to overrule (placeholders are refused all the same)."""
    problems: list[Problem] = []
    if not action_approved:
        claim = claimed_action(text)
        if claim:
            problems.append(Problem("action", claim))
    for ph in open_placeholders(text):
        problems.append(Problem("placeholder", ph))
    if allowed_text is not None:
        for value in foreign_values(text, allowed_text):
            problems.append(Problem("foreign_value", value))
    return problems


def streamable_prefix(text: str) -> str:
    """The part of a reply still being generated that may be shown now: everything before
    a bracket that is not closed yet (it may become a placeholder)."""
    cut = len(text)
    for opener, closer in (("{", "}"), ("[", "]")):
        i = text.rfind(opener)
        if i != -1 and text.find(closer, i) == -1:
            cut = min(cut, i)
    return text[:cut]
