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
