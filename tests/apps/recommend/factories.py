"""Small factories: a catalogue with distinct kinds of items and users with hidden tastes."""
from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

KINDS = {
    "coffee": ["espresso beans", "arabica coffee", "cold brew coffee", "dark roast coffee", "coffee grinder",
               "pour-over coffee kit", "decaf coffee beans", "french press"],
    "hiking": ["hiking boots", "trekking poles", "waterproof rain jacket", "hiking backpack", "trail map",
               "camping headlamp", "merino hiking socks", "water filter for hiking"],
    "gaming": ["gaming mouse", "mechanical keyboard", "gaming headset", "video game controller",
               "gaming monitor", "console game", "gaming chair", "streaming microphone"],
    "baby": ["baby stroller", "baby bottles", "diapers", "baby crib", "baby monitor", "baby onesie",
             "teething toy", "baby car seat"],
}
START = datetime(2026, 1, 1, tzinfo=UTC)


def catalogue(per_kind: int = 12) -> list[dict]:
    items = []
    for kind, nouns in KINDS.items():
        for j in range(per_kind):
            noun = nouns[j % len(nouns)]
            items.append({"id": f"{kind}-{j}", "title": f"{noun.title()} model {j}",
                          "text": f"{noun.title()} model {j}. {kind}. A {noun} for {kind} lovers.",
                          "description": f"A {noun} for {kind} lovers.", "category": kind,
                          "price": 10.0 + 5 * j, "created_at": START - timedelta(days=30 + j)})
    return items


def simulate(items: list[dict], n_users: int = 120, per_user: int = 24, seed: int = 7) -> list[dict]:
    """Each user loves one kind (80% of their positives), the rest goes to a few bestsellers
    everyone clicks; views of other items are exposures. Events spread over 60 days."""
    rng = random.Random(seed)
    by_kind: dict[str, list[str]] = {}
    for it in items:
        by_kind.setdefault(it["category"], []).append(it["id"])
    bestsellers = [ids[0] for ids in by_kind.values()]
    kinds = sorted(by_kind)
    events = []
    for u in range(n_users):
        taste = kinds[u % len(kinds)]
        for _ in range(per_user):
            at = START + timedelta(seconds=rng.uniform(0, 60 * 86400))
            item = rng.choice(by_kind[taste]) if rng.random() < 0.8 else rng.choice(bestsellers)
            events.append({"user": f"u{u}", "item": item, "kind": rng.choice(["click", "click", "purchase"]),
                           "at": at})
            shown = rng.choice(items)["id"]
            events.append({"user": f"u{u}", "item": shown, "kind": "view", "at": at - timedelta(seconds=5)})
    events.sort(key=lambda e: e["at"])
    for n, ev in enumerate(events):
        ev["id"] = f"e{n}"
    return events
