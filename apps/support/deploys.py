"""The deploy gate: is a freshly trained bot at least as good as the live one?

Both versions answer the same calibration questions (the new build's, which
``building.split_rows`` keeps stable per question across retrains) and the same
out-of-scope probes, each through its own saved artifact, leaving out the stored
copy of the question being asked (both indexes hold every past question). The
new version goes live when it is at least as good on both figures the dashboard
shows: answer accuracy and coverage at the aimed precision. Otherwise it stays a
candidate, and the promote page shows this diff: figures side by side, the
calibration questions that change answer, and the questions staff marked
unanswered that the new version now answers.
"""
from __future__ import annotations

from typing import Any

from apps.support import building, training
from apps.support.bot import Bot, _encode

MAX_CHANGES = 50  # calibration questions listed on the promote page
MAX_UNANSWERED = 50  # unanswered questions tried on both versions


def score_version(bot: Bot, questions: list[str], vecs, labels: list[str], template_ids: list) -> dict[str, Any]:
    rows = building.score_rows(bot, questions, vecs, labels, template_ids, skip_same=True)
    probes = training.OUT_OF_SCOPE_PROBES
    probe_rows = building.score_rows(bot, probes, _encode(probes), [""] * len(probes), [None] * len(probes))
    figures = building.summarise(rows, probe_rows)
    return {"rows": rows, "figures": figures}


def _coverage(figures: dict) -> float:
    return float((figures.get("coverage_at_precision") or {}).get(str(figures.get("aimed_precision")), {})
                 .get("coverage", 0.0))


def compare_with_live(candidate: Bot, metrics: dict, pairs: list[dict], live_mv, live: Bot | None) -> dict:
    """The gate's verdict, stored in the new version's metrics (``metrics["gate"]``)."""
    if live is None or live_mv is None:
        return {"promote": True, "reason": "no version is live yet", "live_version": None,
                "newly_answered": newly_answered(candidate, None, metrics)}
    split = building.split_rows(pairs)
    cal = split.calibration
    if not cal:
        return {"promote": True, "reason": "no calibration questions to compare on (too few labelled pairs)",
                "live_version": live_mv.version}
    questions = [pairs[i]["question"] for i in cal]
    labels = [pairs[i].get("label") or "" for i in cal]
    tids = [pairs[i].get("template_id") for i in cal]
    vecs = _encode(questions)
    new = score_version(candidate, questions, vecs, labels, tids)
    old = score_version(live, questions, vecs, labels, tids)
    keys = ("answer_accuracy", "answer_recall_at_3", "intent_accuracy", "probes_handed_off")
    figures = {"candidate": {k: new["figures"].get(k) for k in keys}, "live": {k: old["figures"].get(k) for k in keys}}
    figures["candidate"]["coverage_at_aimed_precision"] = _coverage(new["figures"])
    figures["live"]["coverage_at_aimed_precision"] = _coverage(old["figures"])
    acc_ok = new["figures"]["answer_accuracy"] >= old["figures"]["answer_accuracy"]
    cov_ok = _coverage(new["figures"]) >= _coverage(old["figures"])
    if acc_ok and cov_ok:
        reason = (f"at least as good as live version {live_mv.version} on the same {len(cal)} calibration questions")
    else:
        worse = [name for name, ok in (("answer accuracy", acc_ok), ("coverage at the aimed precision", cov_ok))
                 if not ok]
        reason = (f"worse than live version {live_mv.version} on {' and '.join(worse)} on the same {len(cal)} "
                  "calibration questions: kept as a candidate")
    new_t = new["figures"]["suggested_threshold"]
    old_t = old["figures"]["suggested_threshold"]
    changes = []
    for a, b in zip(building.answers_at(old["rows"], old_t), building.answers_at(new["rows"], new_t), strict=True):
        if a["answer"] != b["answer"]:
            changes.append({"question": a["question"], "label": a["label"], "live": a["answer"],
                            "live_correct": a["correct"], "candidate": b["answer"], "candidate_correct": b["correct"]})
    return {
        "promote": acc_ok and cov_ok,
        "reason": reason,
        "live_version": live_mv.version,
        "compared_on": len(cal),
        "figures": figures,
        "changes": changes[:MAX_CHANGES],
        "changes_total": len(changes),
        "newly_answered": newly_answered(candidate, live, metrics),
    }


def newly_answered(candidate: Bot, live: Bot | None, metrics: dict) -> list[str]:
    """Questions on the dashboard's unanswered list that the new version answers and the
    live one does not, each at the threshold it would run with."""
    from apps.support import services
    from apps.support.models import BotSettings

    cfg = BotSettings.get()
    new_cfg = BotSettings(threshold=cfg.threshold, threshold_source=cfg.threshold_source,
                          kb_min_score=cfg.kb_min_score, handoff_text=cfg.handoff_text)
    if cfg.threshold_source != "staff" and metrics.get("suggested_threshold") is not None:
        new_cfg.threshold = metrics["suggested_threshold"]
    out = []
    for text in dict.fromkeys(m.text for m in services.unanswered_questions(MAX_UNANSWERED)):
        if (not services.compose_reply(text, bot=candidate, bot_settings=new_cfg, generate=False).handed_off
                and (live is None or services.compose_reply(text, bot=live, bot_settings=cfg, generate=False).handed_off)):
            out.append(text)
    return out
