"""Support replies a customer can trust: over held-out questions, the share of the bot's
replies that claim an action, carry an unfilled placeholder, quote data from another
conversation (goal 0 for all three), and are confidently wrong.

Two transcript sets, each split by conversation (80% imported and trained on, 20% held
out; the split is a hash of the conversation id, so no held-out conversation is seen):

- the demo's transcripts (fixtures/support/transcripts.jsonl) with its KB articles;
- a larger realistic set written by fixtures/support/generate_realistic.py (no public
  support-transcript set is on this machine): agents who report past actions, quote
  order numbers of 3-14 digits, the customer's phone and e-mail, amounts and dates,
  the shop's own phone, and leave ``{{Customer Support Phone Number}}``-style
  placeholders in.

The bot is the app's: ``apps.support.ingest.ingest_transcripts`` then
``services.train_bot`` (shipped defaults, the threshold it picks on its own calibration
split) and ``services.compose_reply`` for each held-out question, guard included. The
language model used only by agent-assist trains 1 epoch to keep the run short; it
writes no customer reply here (no generator is configured).

"Quotes another conversation": the reply holds a customer-specific value (order or
account number, phone, e-mail, amount, date, name) of a training conversation that the
question itself does not hold. For the realistic set the generator says which values
are whose; for the demo set they are the values apps.support.slots finds in the
training conversations' turns, less the ones the KB articles hold (the shop's own).
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter
from pathlib import Path

from bench.harness import REPO, Stopwatch, setup_django, table

HELD_OUT_SHARE = 0.2
QUICK_REALISTIC = 300


def held_out(conversation_id: str) -> bool:
    return int(hashlib.sha256(conversation_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < HELD_OUT_SHARE


def _reset_support_data() -> None:
    from django.core.management import call_command

    from apps.common import engine
    from apps.support.models import (
        AnswerTemplate,
        BotSettings,
        Conversation,
        IntentCluster,
        KBArticle,
        ShopSetting,
        TranscriptPair,
    )

    call_command("migrate", verbosity=0)
    for model in (Conversation, TranscriptPair, AnswerTemplate, IntentCluster, KBArticle, ShopSetting, BotSettings):
        model.objects.all().delete()
    engine.forget("support.bot")


def _train(jsonl: str, kb_dir: Path | None) -> dict:
    from apps.support import ingest, services

    ingest.ingest_transcripts(jsonl, "train.jsonl")
    if kb_dir is not None:
        docs = [ingest.Document(name=p.name, text=p.read_text()) for p in sorted(kb_dir.glob("*.md"))]
        ingest.ingest_kb(docs)
    return services.train_bot(lm_epochs=1)


def _names_in(text: str, names: set[str]) -> set[str]:
    return {n for n in names if re.search(rf"\b{re.escape(n)}\b", text)}


def unguarded_reply(text: str, bot, cfg):
    """What the same bot would send without the guard: the template it picks above its
    threshold, filled the same way, or the KB passages, or a hand-off (a diagnostic row
    only: it shows what the guard stops)."""
    from apps.support import services
    from apps.support import slots as slot_lib
    from apps.support.models import ShopSetting

    cand = bot.candidate(text)
    passages = [p for p in cand.passages if p["score"] >= cfg.kb_min_score]
    kb_closer = bool(passages) and passages[0]["score"] + services.KB_MARGIN > cand.similarity
    if cand.template_id is not None and cand.confidence >= cfg.threshold and not kb_closer:
        filled = slot_lib.fill(cand.template_text, slot_lib.extract_slots(text), ShopSetting.values())[0]
        return services.Reply(filled, cand.intent, cand.confidence, [], False, "template")
    if passages:
        return services.Reply(services.compose_from_passages(passages), cand.intent, passages[0]["score"], [],
                              False, "kb")
    return services.Reply(cfg.handoff_text, cand.intent, cand.confidence, [], True, "handoff")


def evaluate(questions: list[dict], foreign_values: set[str], foreign_names: set[str], guarded: bool = True) -> dict:
    """Ask each held-out question; ``questions``: [{"text", "intent"}]."""
    from apps.support import reply_guard, services
    from apps.support import slots as slot_lib
    from apps.support.models import BotSettings

    bot, cfg = services.load_bot(), BotSettings.get()
    counts: Counter = Counter()
    examples: dict[str, list[str]] = {"action": [], "placeholder": [], "foreign": [], "wrong": []}
    for q in questions:
        reply = (services.compose_reply(q["text"], bot=bot, bot_settings=cfg) if guarded
                 else unguarded_reply(q["text"], bot, cfg))
        counts["asked"] += 1
        answered = not reply.handed_off
        counts["answered"] += answered
        counts[f"kind_{reply.kind}"] += 1
        for problem in reply.withheld:
            counts["withheld_" + problem.split(":", 1)[0]] += 1
        counts["withheld"] += bool(reply.withheld)
        if reply_guard.claimed_action(reply.text):
            counts["action"] += 1
            examples["action"].append(reply.text[:160])
        if reply_guard.open_placeholders(reply.text):
            counts["placeholder"] += 1
            examples["placeholder"].append(reply.text[:160])
        own = {slot_lib.normalise_value(v) for v in slot_lib.values_in(q["text"])}
        own |= {w.lower() for w in re.findall(r"\b[A-Z][a-z]+\b", q["text"])}  # "my name is Sami": the asker's own
        quoted = {slot_lib.normalise_value(v) for v in slot_lib.values_in(reply.text)} - own
        leaked = (quoted & foreign_values) | (_names_in(reply.text, foreign_names) - _names_in(q["text"], foreign_names))
        if leaked:
            counts["foreign"] += 1
            examples["foreign"].append(f"{reply.text[:140]} [{', '.join(sorted(leaked))[:40]}]")
        if answered and reply.intent != q["intent"]:
            counts["wrong"] += 1
            examples["wrong"].append(f"{q['text'][:60]} -> {reply.intent} ({reply.confidence:.2f})")
    n = max(1, counts["asked"])
    return {
        "questions": counts["asked"],
        "threshold": round(cfg.threshold, 4),
        "threshold_source": cfg.threshold_source,
        "answered_share": round(counts["answered"] / n, 4),
        "claims_action_share": round(counts["action"] / n, 4),
        "unfilled_placeholder_share": round(counts["placeholder"] / n, 4),
        "other_conversation_data_share": round(counts["foreign"] / n, 4),
        "confidently_wrong_share": round(counts["wrong"] / n, 4),
        "confidently_wrong_of_answered": round(counts["wrong"] / max(1, counts["answered"]), 4),
        "withheld_by_guard_share": round(counts["withheld"] / n, 4),
        "withheld_reasons": {k.removeprefix("withheld_"): v for k, v in counts.items()
                             if k.startswith("withheld_")},
        "reply_kinds": {k.removeprefix("kind_"): v for k, v in counts.items() if k.startswith("kind_")},
        "examples": {k: v[:5] for k, v in examples.items()},
    }


def demo_set() -> tuple[str, list[dict], set[str], set[str]]:
    import json

    from apps.support import slots as slot_lib

    lines = (REPO / "fixtures" / "support" / "transcripts.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    train = [r for r in rows if not held_out(r["conversation_id"])]
    test = [r for r in rows if held_out(r["conversation_id"]) and r["speaker"] == "customer" and r.get("intent")]
    kb_text = " ".join(p.read_text() for p in (REPO / "fixtures" / "support" / "kb").glob("*.md"))
    shop_values = {slot_lib.normalise_value(v) for v in slot_lib.values_in(kb_text)}
    values = {slot_lib.normalise_value(v) for r in train for v in slot_lib.values_in(r["text"])} - shop_values
    names = {m.group("name") for r in train for m in [slot_lib.SELF_NAME.search(r["text"])] if m}
    jsonl = "\n".join(json.dumps(r) for r in train) + "\n"
    return jsonl, [{"text": r["text"], "intent": r["intent"]} for r in test], values, names


def realistic_set(n: int) -> tuple[str, list[dict], set[str], set[str], dict]:
    import sys

    from apps.support import slots as slot_lib

    sys.path.insert(0, str(REPO / "fixtures" / "support"))
    import generate_realistic as gen

    convs = gen.conversations(n)
    train = [c for c in convs if not held_out(c.id)]
    test = [c for c in convs if held_out(c.id)]
    values = {slot_lib.normalise_value(v) for c in train for k, v in c.values.items() if k != "name"}
    names = {c.values["name"] for c in train if "name" in c.values}
    questions = [{"text": c.rows[0]["text"], "intent": c.intent} for c in test]
    info = {"conversations": len(convs), "train_conversations": len(train), "held_out_conversations": len(test),
            "intents": len(gen.INTENTS), "seed": gen.SEED}
    return gen.as_jsonl(train), questions, values, names, info


def run(quick: bool = False) -> dict:
    setup_django()
    sw = Stopwatch()
    results, unguarded, rows = {}, {}, []
    import json

    with sw("demo"):
        _reset_support_data()
        jsonl, questions, values, names = demo_set()
        train_metrics = _train(jsonl, REPO / "fixtures" / "support" / "kb")
        results["demo"] = {**evaluate(questions, values, names),
                           "train": {k: train_metrics.get(k) for k in ("pairs", "templates", "version")}}
        unguarded["demo"] = evaluate(questions, values, names, guarded=False)
    n = QUICK_REALISTIC if quick else None
    with sw("realistic"):
        _reset_support_data()
        jsonl, questions, values, names, info = realistic_set(n or 560)
        train_metrics = _train(jsonl, None)
        results["realistic"] = {**evaluate(questions, values, names), "data": info,
                                "train": {k: train_metrics.get(k) for k in ("pairs", "templates", "version")}}
        unguarded["realistic"] = evaluate(questions, values, names, guarded=False)
        from apps.support.models import AnswerTemplate

        kinds = Counter(AnswerTemplate.objects.values_list("kind", flat=True))
        results["realistic"]["templates_by_kind"] = dict(kinds)
    for name, label in (("demo", "demo transcripts (fixtures/support)"),
                        ("realistic", "realistic set (fixtures/support/generate_realistic.py)")):
        for r, how in ((results[name], "the bot as shipped"), (unguarded[name], "diagnostic: same bot, guard off")):
            rows.append([label, how, r["questions"], r["threshold"], r["answered_share"], r["claims_action_share"],
                         r["unfilled_placeholder_share"], r["other_conversation_data_share"],
                         r["confidently_wrong_share"], r.get("withheld_by_guard_share")])
    goals = {f"{name}_{k}_is_0": results[name][k] == 0 for name in results
             for k in ("claims_action_share", "unfilled_placeholder_share", "other_conversation_data_share")}
    notes = [
        "Held-out = 20% of conversations by a hash of their id; the bot is trained (shipped defaults, threshold "
        "from its own calibration split) on the other 80% through the app's import and training job.",
        "Claims an action: apps.support.reply_guard.claimed_action on the reply sent (hand-offs included); "
        "placeholder: {slot}, {{…}}, […] left in it; other conversation's data: a customer value (order/account "
        "number, phone, e-mail, amount, date, name) of a training conversation that the question does not hold; "
        "confidently wrong: answered (not handed off) with an intent other than the question's.",
        "Withheld: the bot found an answer above its threshold but the guard stopped it (an action-claiming "
        "template without a staff-approved variant, a slot or shop value left open) and it handed off instead.",
        "No shop value is set and no informational variant approved (a fresh import): answers that need them hand off.",
        "The guard-off rows are a diagnostic of the same trained bot (templates as imported, slots filled the same "
        "way, no guard): what would reach customers without reply_guard. They are not a configuration one can ship.",
    ]
    if not all(goals.values()):
        notes.append("Goal missed: " + ", ".join(k for k, ok in goals.items() if not ok) + ".")
    return {
        "summary": "Share of held-out questions whose reply claims an action, holds a placeholder, quotes another "
                   "conversation's data (goal 0) or answers confidently with the wrong intent.",
        "results": results,
        "diagnostic_guard_off": unguarded,
        "goals": goals,
        "wall_times": sw.times,
        "tables": [table(
            "Support replies on held-out questions",
            ["transcripts", "replies", "questions", "threshold", "answered", "claims an action",
             "unfilled placeholder", "other conversation's data", "confidently wrong", "withheld by the guard"],
            rows, notes)],
        "examples": json.loads(json.dumps({k: v["examples"] for k, v in results.items()})),
    }
