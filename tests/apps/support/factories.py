"""Tiny transcript and KB builders for the support tests."""
from __future__ import annotations

import json

SHIPPING = "Hi {name}, your order {order} shipped yesterday and should arrive within 3 days."
REFUND = "I'm sorry about that. I have started a refund for order {order}; the money is back within 5 working days."
PASSWORD = "You can reset your password from the login page: click 'Forgot password' and follow the e-mail."

QUESTIONS = {
    "order_status": ["Where is my order {order}?", "Has order {order} shipped yet?",
                     "When will my package {order} arrive?", "Can you tell me the status of order {order}?"],
    "refund": ["I want my money back for order {order}", "Please refund order {order}, it arrived broken",
               "How do I get a refund for {order}?", "Order {order} was damaged, I need a refund"],
    "password": ["I forgot my password", "How can I reset my password?", "I can't log in, password lost",
                 "Password reset please"],
}
ANSWERS = {"order_status": SHIPPING, "refund": REFUND, "password": PASSWORD}
NAMES = ["Anna", "Ben", "Carla", "Dmitri"]


def transcript_rows(repeat: int = 2, intents: bool = True) -> list[dict]:
    rows = []
    n = 0
    for _ in range(repeat):
        for intent, questions in QUESTIONS.items():
            for q in questions:
                n += 1
                name = NAMES[n % len(NAMES)]
                order = f"#{40000 + n * 7}"
                conv = f"c{n}"
                cust = {"conversation_id": conv, "speaker": "customer",
                        "text": f"Hello, my name is {name}. " + q.format(order=order),
                        "time": f"2026-01-01T10:{n % 60:02d}:00"}
                if intents:
                    cust["intent"] = intent
                rows.append(cust)
                rows.append({"conversation_id": conv, "speaker": "agent",
                             "text": ANSWERS[intent].format(name=name, order=order),
                             "time": f"2026-01-01T10:{n % 60:02d}:30"})
    return rows


def as_jsonl(rows: list[dict]) -> str:
    return "\n".join(json.dumps(r) for r in rows) + "\n"


KB = {
    "shipping-abroad.md": "# Shipping abroad\n\nWe ship to Canada, Mexico and every EU country. "
                          "International delivery takes 7 to 12 working days and costs 15 EUR.\n\n"
                          "## Customs\n\nCustoms duties are paid by the recipient on delivery.",
    "gift-cards.md": "# Gift cards\n\nGift cards never expire and can be used for any product. "
                     "They cannot be exchanged for cash.",
}


OUT_OF_SCOPE = "What is the boiling point of mercury in Kelvin?"


def training_lists() -> tuple[list[dict], dict[int, dict], list[dict]]:
    """Pairs, templates and KB chunks as build_bot takes them (no database)."""
    from apps.support.ingest import split_markdown
    from apps.support.slots import templatize

    pairs, templates = [], {}
    for tid, intent in enumerate(QUESTIONS, start=1):
        templates[tid] = {"text": templatize(ANSWERS[intent].format(name="Anna", order="#40001"), {"Anna"})[0],
                          "intent": intent}
    for row_q, row_a in zip(transcript_rows(repeat=2)[::2], transcript_rows(repeat=2)[1::2], strict=True):
        tid = list(QUESTIONS).index(row_q["intent"]) + 1
        pairs.append({"question": row_q["text"], "answer": row_a["text"], "label": row_q["intent"],
                      "template_id": tid})
    chunks = []
    for art_id, (name, text) in enumerate(KB.items(), start=1):
        title, parts = split_markdown(text)
        for j, (heading, chunk) in enumerate(parts):
            chunks.append({"chunk_id": art_id * 100 + j, "article_id": art_id, "title": title,
                           "slug": name[:-3], "url": f"/help/{name[:-3]}", "heading": heading, "text": chunk})
    return pairs, templates, chunks


# -- transcripts whose agents quote customers' data and claim actions (apps/support/reply_guard.py) --

REFUNDED = "Hi {name}, I have refunded order {order}. The money is back on your card within 5 days."
COURIER = ("Thanks for order {order}. The courier books the delivery slot with you: call them on {phone} "
           "and give them the order number.")
SUPPORT_LINE = "You can reach our support team on {{Customer Support Phone Number}}. Available 24/7."
GUARD_QUESTIONS = {
    "refund": ["I want a refund for order {order}", "Please refund my order {order}",
               "Can I get my money back for order {order}?", "Refund order {order} please"],
    "delivery_slot": ["When will order {order} be delivered?", "Delivery date for order {order}?",
                      "When does order {order} arrive?", "What day will order {order} come?"],
    "support_phone": ["What is your phone number?", "How can I call your support team?",
                      "Can I phone you?", "What number do I call for help?"],
    "password": QUESTIONS["password"],
}
GUARD_ORDERS = ["#123", "12345678901234", "#4455", "#98761", "#31", "556677889900", "#7001", "#64"]
GUARD_PHONES = ["+44 20 7946 0958", "+44 20 7946 0123", "+1 415 555 0142", "+49 30 901820"]


def guard_transcript_rows() -> list[dict]:
    """Agents refund orders, quote a 14-digit order number and a courier's phone, and point
    to a support line left as an export placeholder; each value belongs to one conversation."""
    rows, n = [], 0
    answers = {"refund": REFUNDED, "delivery_slot": COURIER, "support_phone": SUPPORT_LINE, "password": PASSWORD}
    for intent, questions in GUARD_QUESTIONS.items():
        for k, q in enumerate(questions * 2):
            n += 1
            order = GUARD_ORDERS[(n + k) % len(GUARD_ORDERS)] if intent != "refund" or k else "#123"
            if intent == "delivery_slot" and k == 0:
                order = "12345678901234"
            name = NAMES[n % len(NAMES)]
            conv = f"g{n}"
            rows.append({"conversation_id": conv, "speaker": "customer", "intent": intent,
                         "text": f"My name is {name}. " + q.format(order=order)})
            answer = answers[intent].replace("{{", "\x01").replace("}}", "\x02")
            answer = answer.format(name=name, order=order, phone=GUARD_PHONES[n % len(GUARD_PHONES)])
            rows.append({"conversation_id": conv, "speaker": "agent",
                         "text": answer.replace("\x01", "{{").replace("\x02", "}}")})
    return rows
