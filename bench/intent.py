"""Area 1 — intent detection on BANKING77 (official split as is: 6 test texts
also occur in train, train has 4 internal duplicates).

Ours: the support bot exactly as the app's training job builds it —
``apps.support.building.build_bot`` on BANKING77 turned into (question, intent,
one answer template per intent) pairs. build_bot splits the pairs with
``training.intent_splits`` (80% train / 10% validation / 10% calibration),
trains the intent classifier with the engine recipe (full fine-tune + a
frozen-feature probe blended in, both chosen on validation), and picks its
confidence threshold on the calibration rows. We then score, on the official
test set: the classifier's accuracy, and the bot's own hand-off decision
(``Bot.candidate`` → ``combine()`` of intent probability and similarity, the
function the chat API uses) at the threshold the bot chose.

Baselines in the same run: majority class, TF-IDF + LR and frozen MiniLM
embeddings + LR (C tuned on a held-out 15% of train). 10-shot: 10 training
texts per intent (fixed seeds); ours = ``training.train_intent_classifier``
with 1 of each 10 for validation.
"""
from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from bench import baselines, datasets
from bench.harness import Stopwatch, embed, median, setup_django, table

PUBLISHED = [
    "Full training data: fine-tuned BERT-large 93.66% accuracy, USE+ConveRT 93.36% (Casanueva et al. 2020, arXiv:2003.04807).",
    "10-shot: 85.19% (USE+ConveRT, Casanueva et al. 2020) to 89.79% (ICDA, 2023).",
]
TARGETS = (0.95, 0.99)
GOAL_ACCURACY, GOAL_SHOT, GOAL_COVERAGE = 0.94, 0.88, 0.85
QUICK_PER_INTENT, QUICK_TEST = 20, 770  # quick mode: a stratified slice of train, a slice of test


def _progress_bar(desc: str):
    bar = tqdm(total=100, desc=desc, unit="%", leave=False)

    def on_progress(pct: float, msg: str) -> None:
        bar.n = min(100, int(pct))
        bar.set_postfix_str(msg[:40])
        bar.refresh()

    return bar, on_progress


def bot_pairs(texts, labels, intents):
    """BANKING77 as the bot's training data: one answer template per intent."""
    tid = {lab: i + 1 for i, lab in enumerate(intents)}
    templates = {tid[lab]: {"text": f"[answer for {lab}]", "intent": lab} for lab in intents}
    pairs = [{"question": t, "answer": "", "label": lab, "template_id": tid[lab]} for t, lab in zip(texts, labels,
                                                                                                     strict=True)]
    return pairs, templates


def bot_handoff(bot, threshold: float, texts, labels, vecs) -> dict:
    """Precision and coverage of the bot's own decision on ``texts``: answer when
    ``Bot.candidate(...).confidence`` (``combine()``) reaches the bot's threshold."""
    conf, correct = [], []
    for i, text in enumerate(tqdm(texts, desc="bot hand-off (test)", unit="msg", leave=False)):
        cand = bot.candidate(text, vecs[i : i + 1])
        conf.append(cand.confidence)
        correct.append(cand.template_id is not None and bot.templates[cand.template_id]["intent"] == labels[i])
    conf_a, ok = np.asarray(conf), np.asarray(correct)
    answered = conf_a >= threshold
    return {"threshold": threshold, "coverage": round(float(answered.mean()), 4),
            "precision": round(float(ok[answered].mean()), 4) if answered.any() else 1.0,
            "accuracy_all": round(float(ok.mean()), 4), "n": len(texts)}


def eval_classifier(training, model, test) -> dict:
    classes = list(model.config.heads["intent"])
    t0 = time.perf_counter()
    probs = model.predict_proba(test.texts, batch_size=64)["intent"]
    predict_s = time.perf_counter() - t0
    pred = [classes[i] for i in probs.argmax(1)]
    out = baselines.evaluate_predictions(test.labels, pred)
    out["coverage_at_precision_test_oracle"] = training.coverage_at_precision(probs, test.labels, TARGETS,
                                                                              classes=classes)
    out["predict_texts_per_s"] = len(test.texts) / predict_s
    return out


def _quick_slice(train, test):
    by: dict[str, list[int]] = {}
    for i, lab in enumerate(train.labels):
        by.setdefault(lab, []).append(i)
    rng = random.Random(0)
    keep = sorted(i for idx in by.values() for i in rng.sample(idx, min(QUICK_PER_INTENT, len(idx))))
    keep_te = sorted(rng.sample(range(len(test)), min(QUICK_TEST, len(test))))
    return (datasets.LabelledTexts([train.texts[i] for i in keep], [train.labels[i] for i in keep]),
            datasets.LabelledTexts([test.texts[i] for i in keep_te], [test.labels[i] for i in keep_te]))


def _ten_shot_cache(data_hash: str, seeds) -> Path:
    import hashlib

    from bench.harness import CACHE_DIR

    code = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]
    return CACHE_DIR / f"intent_ten_shot_{data_hash[:12]}_{code}_{'-'.join(map(str, seeds))}.json"


def ten_shot(training, train, test, etr, ete, seeds, data_hash) -> dict:
    """Ours and the baselines on 10 texts per intent, one draw per seed. A result written by
    ``python -c "import bench.intent as b; b.ten_shot_only()"`` (same code file, data and
    seeds, so the same figures) is reused instead of recomputed: on 2 shared cores the
    10-shot fine-tunes can run beside the full-data one."""
    import json
    import os

    cache = _ten_shot_cache(data_hash, seeds)
    if os.environ.get("BENCH_TEN_SHOT_ELSEWHERE") == "1":  # ten_shot_only() runs beside this process
        deadline = time.time() + 3600
        while not cache.exists() and time.time() < deadline:
            time.sleep(10)
    if cache.exists():
        out = json.loads(cache.read_text())
        out["ran_in"] = f"a separate process on the same code ({cache.name})"
        return out
    shots = {"ours": [], "frozen_lr": [], "tfidf_lr": [], "ours_detail": []}
    idx = {t: i for i, t in enumerate(train.texts)}
    t_start = time.perf_counter()
    for seed in tqdm(seeds, desc="10-shot", unit="seed"):
        fs = datasets.few_shot(train, 10, seed)
        tr, va = training.holdout_split(fs.labels, val_ratio=0.1, seed=seed)
        bar, cb = _progress_bar(f"ours 10-shot seed {seed}")
        m, m_metrics = training.train_intent_classifier(
            [fs.texts[i] for i in tr], [fs.labels[i] for i in tr], [fs.texts[i] for i in va],
            [fs.labels[i] for i in va], on_progress=cb, seed=seed)
        bar.close()
        shots["ours"].append(eval_classifier(training, m, test)["accuracy"])
        shots["ours_detail"].append({k: v for k, v in m_metrics.items() if not isinstance(v, dict)})
        fe = etr[[idx[t] for t in fs.texts]] if etr is not None else embed(fs.texts, progress=False)
        lr, _, _ = baselines.fit_lr(fe, fs.labels, baselines.C_GRID_FROZEN, tune=False)
        shots["frozen_lr"].append(baselines.evaluate_predictions(test.labels, lr.predict(ete).tolist())["accuracy"])
        xtr, xte = baselines.tfidf_features(fs.texts, test.texts)
        lr, _, _ = baselines.fit_lr(xtr, fs.labels, baselines.C_GRID_TFIDF, tune=False)
        shots["tfidf_lr"].append(baselines.evaluate_predictions(test.labels, lr.predict(xte).tolist())["accuracy"])
    shots["wall_s"] = round(time.perf_counter() - t_start, 1)
    return shots


def ten_shot_results(shots: dict, seeds) -> dict:
    out = {k: {"accuracy_per_seed": v, "median": median(v)} for k, v in shots.items()
           if k in ("ours", "frozen_lr", "tfidf_lr")}
    out.update({"ours_detail": shots["ours_detail"], "seeds": list(seeds),
                "ran_in": shots.get("ran_in", "this process"), "wall_s": shots.get("wall_s")})
    return out


def ten_shot_rows(ts: dict) -> list[list]:
    n = len(ts["seeds"])
    shot_mode = ts["ours_detail"][0].get("mode", "?")
    return [
        [f"ours: support app intent classifier ({shot_mode})", f"10-shot (median of {n} draws)",
         ts["ours"]["median"], None, None, None],
        [f"baseline: frozen MiniLM + LR (C={baselines.C_GRID_FROZEN[len(baselines.C_GRID_FROZEN) // 2]:g})",
         f"10-shot (median of {n} draws)", ts["frozen_lr"]["median"], None, None, None],
        [f"baseline: TF-IDF + LR (C={baselines.C_GRID_TFIDF[len(baselines.C_GRID_TFIDF) // 2]:g})",
         f"10-shot (median of {n} draws)", ts["tfidf_lr"]["median"], None, None, None],
    ]


def ten_shot_verdict(ts: dict) -> tuple[bool, bool, list[str]]:
    """(floor held, goal reached, the README lines saying what was missed)."""
    ours, frozen = ts["ours"]["median"], ts["frozen_lr"]["median"]
    floor, goal, lines = ours > frozen, ours >= GOAL_SHOT, []
    if not floor:
        lines.append(f"FLOOR MISSED: 10-shot ours {100 * ours:.2f}% is not above frozen MiniLM + LR "
                     f"{100 * frozen:.2f}%.")
    if not goal:
        lines.append(f"Goal missed: 10-shot {100 * ours:.2f}% is {100 * (GOAL_SHOT - ours):.2f} points below the "
                     "88% goal (published range 85.19–89.79%).")
    return floor, goal, lines


def ten_shot_note(ts: dict) -> str:
    d = ts["ours_detail"][0]
    how = (f"{d.get('mode')} mode ({d.get('mode_reason', '')})" if d.get("mode") else "the app's recipe")
    per_seed = ", ".join(f"{100 * a:.2f}" for a in ts["ours"]["accuracy_per_seed"])
    base = ", ".join(f"{100 * a:.2f}" for a in ts["frozen_lr"]["accuracy_per_seed"])
    blends = ", ".join(f"{x.get('intent/blend_weight', '—')}" for x in ts["ours_detail"])
    return (f"10-shot: ran in {ts['ran_in']}; ours = {how}, trained on 9 of each intent's 10 texts and validated "
            f"on the 10th (the validation row chooses the head's C and the blend with the frozen-feature probe; "
            f"head and probe are then refitted on all 10). Per draw (seeds {ts['seeds']}): ours {per_seed}; "
            f"frozen MiniLM + LR {base}; blend weight of the tuned head chosen on validation: {blends}.")


TEN_SHOT_LINE = ("FLOOR MISSED: 10-shot", "Goal missed: 10-shot")


def _part_path(data_hash: str, seed: int) -> Path:
    from bench.harness import CACHE_DIR

    return CACHE_DIR / f"intent_ten_shot_part_{data_hash[:12]}_{seed}.json"


def ten_shot_part(seed: int) -> Path:
    """One draw of the 10-shot section (ours and both baselines, in this process), kept
    for ``merge_ten_shot``: on 2 shared cores the draws can run side by side
    (``python -m bench.intent --ten-shot-part SEED``)."""
    import json
    import os

    from bench.harness import machine

    setup_django()
    from apps.support import training

    load_start = os.getloadavg()
    train, test, _, data_hash = datasets.banking77()
    shots = ten_shot(training, train, test, None, embed(test.texts), [seed], data_hash)
    info = machine()
    shots["part"] = {"seed": seed, "git_commit": info.get("git_commit"), "load_avg_at_start": list(load_start),
                     "load_avg_at_end": info.get("load_avg_at_start")}
    path = _part_path(data_hash, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(shots))
    os.replace(tmp, path)
    return path


def _from_parts(data_hash: str, seeds) -> dict | None:
    """The draws written by ``ten_shot_part``, when every seed has one from one commit."""
    import json

    paths = [_part_path(data_hash, s) for s in seeds]
    if not all(p.exists() for p in paths):
        return None
    parts = [json.loads(p.read_text()) for p in paths]
    commits = {p["part"]["git_commit"] for p in parts}
    if len(commits) != 1:
        raise RuntimeError(f"the 10-shot parts come from different commits {sorted(commits)}: re-run them")
    shots = {k: [x for p in parts for x in p[k]] for k in ("ours", "frozen_lr", "tfidf_lr", "ours_detail")}
    shots["wall_s"] = max(p["wall_s"] for p in parts)
    shots["ran_in"] = (f"{len(parts)} processes side by side, one draw each, ours and both baselines in each "
                       f"(commit {commits.pop()})")
    shots["parts"] = [p["part"] for p in parts]
    return shots


def merge_ten_shot(seeds=(0, 1, 2)) -> Path:
    """Re-run only the 10-shot section (ours and its baselines, in this one process) and
    merge it into ``bench/results/intent.json``, whose full-train figures stay as the full
    run wrote them: ``python -m bench.intent --ten-shot-only``."""
    import json
    import os
    from datetime import UTC, datetime

    from bench.harness import RESULTS_DIR, machine
    from bench.report import regenerate

    setup_django()
    from apps.support import training

    path = RESULTS_DIR / "intent.json"
    data = json.loads(path.read_text())
    load_start = os.getloadavg()
    train, test, _, data_hash = datasets.banking77()
    shots = _from_parts(data_hash, seeds) or ten_shot(training, train, test, None, embed(test.texts), list(seeds),
                                                      data_hash)
    ts = ten_shot_results(shots, seeds)
    if shots.get("parts"):
        ts["parts"] = shots["parts"]
    info = machine()
    command = "python -m bench.intent --ten-shot-only"
    ts["run"] = {"command": command, "finished_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                 "wall_s": shots.get("wall_s"), "git_commit": info.get("git_commit"),
                 "load_avg_at_start": list(load_start), "load_avg_at_end": info.get("load_avg_at_start")}
    data["results"]["ten_shot"] = ts
    floor, goal, lines = ten_shot_verdict(ts)
    data["floors"]["ten_shot_above_frozen_lr"], data["goals"]["ten_shot_ge_88"] = floor, goal
    below = [b for b in data.get("below_published", []) if not b.startswith(TEN_SHOT_LINE)]
    data["below_published"] = lines + below
    tab = data["tables"][0]
    tab["rows"] = [r for r in tab["rows"] if not str(r[1]).startswith("10-shot")] + ten_shot_rows(ts)
    tab["notes"] = [n for n in tab["notes"] if not n.startswith("10-shot:")] + [ten_shot_note(ts)]
    if shots.get("parts"):
        loads = ", ".join(f"{p['load_avg_at_start'][0]:.1f} → {p['load_avg_at_end'][0]:.1f}" for p in shots["parts"])
        made = (f"`python -m bench.intent --ten-shot-part SEED` for seeds {list(seeds)} side by side (ours and both "
                f"baselines in each process; slowest wall {ts['wall_s']} s; load average per process {loads}), "
                f"merged into this file by `{command}` ({ts['run']['finished_at']}, commit "
                f"{ts['run']['git_commit']})")
    else:
        made = (f"`{command}` (finished {ts['run']['finished_at']}, wall {ts['run']['wall_s']} s, commit "
                f"{ts['run']['git_commit']}, load average {load_start[0]:.1f} → "
                f"{ts['run']['load_avg_at_end'][0]:.1f}; ours and both baselines in that one process), merged into "
                "this file")
    data["notes"] = [n for n in data.get("notes", []) if not n.startswith("The 10-shot rows")] + [
        f"The 10-shot rows come from {made}; every other figure is from the full run named "
        "at the top of this section. Timings were taken on 2 cores shared with other work."]
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
    regenerate()
    return path


def ten_shot_only(seeds=(0, 1, 2)) -> Path:
    """The full run's 10-shot part alone, cached for ``run`` to pick up (see ``ten_shot``)."""
    import json

    setup_django()
    from apps.support import training

    train, test, _, data_hash = datasets.banking77()
    shots = ten_shot(training, train, test, embed(train.texts), embed(test.texts), list(seeds), data_hash)
    cache = _ten_shot_cache(data_hash, list(seeds))
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(shots))
    return cache


def run(quick: bool) -> dict:
    import os

    setup_django()
    if os.environ.get(OOS_ONLY_ENV) == "out_of_scope":
        return run_out_of_scope_only(quick)
    from apps.support import bot as bot_mod
    from apps.support import building, training

    sw = Stopwatch()
    train, test, intents, data_hash = datasets.banking77()
    if quick:
        train, test = _quick_slice(train, test)
    rows, results = [], {}

    # Ours: the bot as the app builds it.
    pairs, templates = bot_pairs(train.texts, train.labels, sorted(set(train.labels)))
    with tempfile.TemporaryDirectory(prefix="bench-bot-") as tmp, sw("ours_build_bot"):
        bar, cb = _progress_bar("ours: build_bot")
        t0 = time.perf_counter()
        bot_metrics = building.build_bot(Path(tmp), pairs, templates, [], cb)
        train_s = time.perf_counter() - t0
        bar.close()
        bot = bot_mod.Bot.load(tmp)
        model = bot.classifier
        with sw("ours_eval"):
            ours = eval_classifier(training, model, test)
        with sw("ours_handoff"):
            test_vecs = embed(test.texts)
            # None: no threshold reached the aimed precision on calibration; the bot answers nothing.
            threshold = (float(bot_metrics["suggested_threshold"]) if bot_metrics.get("suggested_threshold") is not None
                         else 1.01)
            handoff = bot_handoff(bot, threshold, test.texts, test.labels, test_vecs)
    intent_m = bot_metrics.get("intent", {})
    target = max(training.PRECISION_TARGETS)
    handoff["aimed_precision"] = target
    handoff["calibration_rows"] = bot_metrics.get("heldout")
    ours.update({"train_s": train_s, "bot_metrics": {k: v for k, v in bot_metrics.items() if k != "curve"},
                 "handoff": handoff,
                 "config": {"mode": model.config.mode, "hidden": model.config.hidden,
                            "max_tokens": model.config.max_tokens, "label_smoothing": model.config.label_smoothing,
                            "layer_decay": model.config.layer_decay, "blend": model.config.blend,
                            "probe_c": model.config.probe_c, "epochs": intent_m.get("epochs"),
                            "best_epoch": intent_m.get("best_epoch"), "mode_reason": intent_m.get("mode_reason")}})
    results["ours"] = ours
    blend = model.config.blend.get("intent", 1.0)
    rows.append([f"ours: support bot's intent classifier ({model.config.mode} fine-tune, probe blend w={blend:g})",
                 "full (80% train, 10% val, 10% calib.)", ours["accuracy"], ours["macro_f1"],
                 f"{handoff['coverage']:.3f} @ {handoff['precision']:.3f}", train_s])
    n_tr = intent_m.get("n_train")

    # Baselines on the whole training set.
    with sw("majority"):
        results["majority"] = baselines.majority(train.labels, test.labels)
    rows.append(["baseline: majority class", "full", results["majority"]["accuracy"], results["majority"]["macro_f1"],
                 None, 0.0])
    with sw("tfidf_lr"):
        t0 = time.perf_counter()
        xtr, xte = baselines.tfidf_features(train.texts, test.texts)
        lr, c, scores = baselines.fit_lr(xtr, train.labels, baselines.C_GRID_TFIDF, tune=not quick)
        res = baselines.evaluate_predictions(test.labels, lr.predict(xte).tolist())
        res.update({"C": c, "val_macro_f1_by_C": scores, "train_s": time.perf_counter() - t0})
        results["tfidf_lr"] = res
    rows.append([f"baseline: TF-IDF (1-2 grams) + LR, C={c:g}{'' if quick else ' (tuned)'}", "full", res["accuracy"],
                 res["macro_f1"], None, res["train_s"]])
    with sw("frozen_embed"):
        etr = embed(train.texts)
        ete = test_vecs
    with sw("frozen_lr"):
        t0 = time.perf_counter()
        lr, c, scores = baselines.fit_lr(etr, train.labels, baselines.C_GRID_FROZEN, tune=not quick)
        res = baselines.evaluate_predictions(test.labels, lr.predict(ete).tolist())
        res.update({"C": c, "val_macro_f1_by_C": scores, "train_s": time.perf_counter() - t0})
        results["frozen_lr"] = res
    rows.append([f"baseline: frozen MiniLM + LR, C={c:g}{'' if quick else ' (tuned)'}", "full", res["accuracy"],
                 res["macro_f1"], None, res["train_s"]])

    # 10-shot (may come from a separate process run on the same code and data: see ten_shot()).
    seeds = [0] if quick else [0, 1, 2]
    with sw("ten_shot"):
        shots = ten_shot(training, train, test, etr, ete, seeds, data_hash)
    results["ten_shot"] = ten_shot_results(shots, seeds)
    rows += ten_shot_rows(results["ten_shot"])
    shot_floor, shot_goal, shot_lines = ten_shot_verdict(results["ten_shot"])

    # Out-of-scope: a quarter of the intents held out (also runnable alone: BENCH_INTENT_ONLY=out_of_scope).
    with sw("out_of_scope"):
        oos = out_of_scope(quick)
    results["out_of_scope"] = {k: v for k, v in oos.items() if k != "table"}

    # Floors and goals, said plainly.
    below = []
    best_base = max(results["tfidf_lr"]["accuracy"], results["frozen_lr"]["accuracy"])
    acc = ours["accuracy"]
    floors = {
        "full_above_every_baseline": acc > best_base,
        "ten_shot_above_frozen_lr": shot_floor,
        "handoff_precision_within_1pt": abs(handoff["precision"] - target) <= 0.01 or handoff["precision"] >= target,
    }
    goals = {"accuracy_ge_94": acc >= GOAL_ACCURACY, "ten_shot_ge_88": shot_goal,
             "coverage_ge_85_at_95": handoff["coverage"] >= GOAL_COVERAGE and handoff["precision"] >= target,
             "train_wall_le_15min": train_s <= 900, "inference_ge_500_per_s": ours["predict_texts_per_s"] >= 500}
    below += [line for line in shot_lines if line.startswith("FLOOR")]
    if not floors["full_above_every_baseline"]:
        below.append(f"FLOOR MISSED: ours ({100 * acc:.2f}%) is not above the best baseline in this run "
                     f"({100 * best_base:.2f}%).")
    if not floors["handoff_precision_within_1pt"]:
        below.append(f"FLOOR MISSED: the bot aimed for {target:.0%} precision and achieved "
                     f"{100 * handoff['precision']:.1f}% on test.")
    if not goals["accuracy_ge_94"]:
        below.append(f"Goal missed: full-data accuracy {100 * acc:.2f}% is {100 * (GOAL_ACCURACY - acc):.2f} points "
                     "below the 94.0% goal.")
    if acc < 0.9366:
        below.append(f"Full data: our {100 * acc:.2f}% is below fine-tuned BERT-large (93.66%) by "
                     f"{100 * (0.9366 - acc):.2f} points.")
    below += [line for line in shot_lines if not line.startswith("FLOOR")]
    if not goals["coverage_ge_85_at_95"]:
        below.append(f"Goal missed: the bot's own hand-off answers {100 * handoff['coverage']:.1f}% of test messages "
                     f"at {100 * handoff['precision']:.1f}% precision (goal: coverage >= 85% at 95%).")
    if not goals["train_wall_le_15min"]:
        below.append(f"Goal missed: building the bot (fine-tune included) took {train_s / 60:.1f} min (goal <= 15).")
    if not goals["inference_ge_500_per_s"]:
        below.append(f"Goal missed: inference {ours['predict_texts_per_s']:.0f} texts/s (goal >= 500).")
    return {
        "summary": "BANKING77 official split; ours = the support bot as apps.support.building.build_bot builds it "
                   "(engine fine-tuning recipe; threshold chosen on its calibration split).",
        "data": {"hash": data_hash, "train": len(train), "test": len(test), "intents": len(intents),
                 "quirks": "6 test texts also in train; 4 duplicates inside train; reported as is"},
        "model": ours["config"],
        "results": results,
        "floors": floors,
        "goals": goals,
        "wall_times": sw.times,
        "tables": [table(
            f"BANKING77 test set ({len(test):,} texts, {len(set(test.labels))} intents)",
            ["model", "training data", "accuracy", "macro-F1", "bot's own hand-off: coverage @ precision", "train s"],
            rows,
            [f"Hand-off: the bot answers a test message when combine(intent probability, similarity) reaches the "
             f"threshold it chose itself ({threshold:.4f}) on its {handoff['calibration_rows']} calibration rows "
             f"(+ {len(training.OUT_OF_SCOPE_PROBES)} out-of-scope probes) aiming at {target:.0%} precision; "
             "coverage = share of test messages answered, precision = share of those answered with the right intent.",
             f"Ours: {model.config.mode} fine-tune ({ours['config']['mode_reason']}), {intent_m.get('epochs')} epochs "
             f"(best on validation: {intent_m.get('best_epoch')}), trained on {n_tr} rows; blend weight of the "
             f"fine-tuned head {blend:g} and probe C={model.config.probe_c.get('intent', '—')} chosen on validation. "
             "Train s includes embedding the questions and choosing the threshold. Baselines train on all of train "
             "(C tuned on a held-out 15%)." + (f" Quick mode: {QUICK_PER_INTENT} texts per intent, {QUICK_TEST} "
                                             "test texts, C not tuned, 1 draw." if quick else ""),
             f"Prediction speed of ours (fine-tuned encoder + heads + frozen-encoder probe, batch 64): "
             f"{ours['predict_texts_per_s']:,.0f} texts/s.",
             ten_shot_note(results["ten_shot"]),
             "The classifier alone at a threshold set on the test labels (an oracle, for comparison with older "
             f"runs): coverage {ours['coverage_at_precision_test_oracle']['0.95']['coverage']:.3f} at 95% precision."],
        ), oos["table"]],
        "published": PUBLISHED,
        "below_published": below,
    }


# -- out-of-scope: a quarter of the intents held out of training --------------------------------

OOS_SEED = 77  # which intents are unknown: a fixed seeded draw
OOS_SHARE = 0.25
OOS_ONLY_ENV = "BENCH_INTENT_ONLY"  # =out_of_scope: run this section alone, carry the rest of intent.json over


def _auroc(known: np.ndarray, unknown: np.ndarray) -> float:
    """P(a known question scores above an unknown one), ties half."""
    scores = np.concatenate([known, unknown])
    ranks = scores.argsort().argsort().astype(np.float64) + 1
    # average ranks over ties
    _, inv, counts = np.unique(scores, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, ranks)
    ranks = (sums / counts)[inv]
    return float((ranks[: len(known)].sum() - len(known) * (len(known) + 1) / 2) / (len(known) * len(unknown)))


def out_of_scope(quick: bool) -> dict:
    """The standard open-set check: hold OOS_SHARE of BANKING77's intents (seeded) out of
    training, build the bot on the rest (head mode on the frozen encoder: cheap, and the
    decision rule is what is measured), and report on the official test set, at the
    threshold the bot chose itself on its calibration rows, the share of unknown-intent
    questions handed off and of known ones answered. Alternative scores are compared with
    their threshold chosen the same way on the same calibration rows (leave-one-out
    retrieval), never on test."""
    from apps.support import building, training
    from apps.support.bot import Bot, calibrate

    train, test, intents, data_hash = datasets.banking77()
    if quick:
        train, test = _quick_slice(train, test)
    names = sorted(set(train.labels))
    unknown = set(random.Random(OOS_SEED).sample(names, round(len(names) * OOS_SHARE)))
    known_idx = [i for i, lab in enumerate(train.labels) if lab not in unknown]
    texts = [train.texts[i] for i in known_idx]
    labels = [train.labels[i] for i in known_idx]
    pairs, templates = bot_pairs(texts, labels, sorted(set(labels)))
    vecs = embed(train.texts)[known_idx]
    test_vecs = embed(test.texts)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-oos-") as tmp:
        metrics = building.build_bot(Path(tmp), pairs, templates, [], intent_mode="head",
                                     vectors=(vecs, np.zeros((0, vecs.shape[1]), np.float32)))
        bot = Bot.load(tmp)
    build_s = time.perf_counter() - t0
    threshold = metrics["suggested_threshold"]
    is_unknown = np.asarray([lab in unknown for lab in test.labels])

    def features(qs, qvecs, skip_same: bool):
        """Per question: the shipped confidence, its parts and the alternatives."""
        raw = bot.classifier.predict_proba_from_embeddings(qvecs)["intent"]
        cal = calibrate(raw, temperature)
        out = {"shipped": [], "combine_calibrated_p": [], "msp_calibrated": [], "nearest_similarity": [],
               "correct": []}
        for i, q in enumerate(tqdm(qs, desc="out-of-scope scoring", unit="msg", leave=False)):
            cand = bot.candidate(q, qvecs[i : i + 1], skip_same=skip_same)
            j = bot.meta["labels"].index(cand.intent) if cand.intent in bot.meta["labels"] else None
            out["shipped"].append(cand.confidence)
            out["combine_calibrated_p"].append(bot_mod_combine(float(cal[i, j]) if j is not None else 0.0,
                                                               cand.similarity))
            out["msp_calibrated"].append(float(cal[i].max()))
            out["nearest_similarity"].append(cand.neighbours[0]["score"] if cand.neighbours else 0.0)
            out["correct"].append(cand.template_id is not None and cand.intent == (labels_of.get(q) or ""))
        return {k: np.asarray(v) for k, v in out.items()}

    from apps.support.bot import combine as bot_mod_combine

    temperature = float(metrics["intent"]["temperature"])  # fitted on validation rows; the bot does not apply it

    split = building.split_rows(pairs)
    cal_q = [pairs[i]["question"] for i in split.calibration]
    labels_of = {pairs[i]["question"]: pairs[i]["label"] for i in split.calibration}
    labels_of.update({t: lab for t, lab in zip(test.texts, test.labels, strict=True)})
    probes = training.OUT_OF_SCOPE_PROBES
    cal_f = features(cal_q, vecs[split.calibration], skip_same=True)
    probe_f = features(probes, embed(probes, progress=False), skip_same=False)
    test_f = features(test.texts, test_vecs, skip_same=False)

    rows, detail = [], {}
    for name, label in (("shipped", "shipped: combine(p, similarity) at the bot's own threshold"),
                        ("combine_calibrated_p", "combine(temperature-scaled p, similarity)"),
                        ("msp_calibrated", "max softmax after temperature scaling"),
                        ("nearest_similarity", "similarity to the nearest training question")):
        if name == "shipped":
            t = threshold
        else:
            conf = np.concatenate([cal_f[name], probe_f[name]])
            ok = np.concatenate([cal_f["correct"], np.zeros(len(probes), bool)])
            scope = np.concatenate([np.ones(len(cal_q), bool), np.zeros(len(probes), bool)])
            reached = training.coverage_at_precision_from_confidence(conf, ok, (building.AIMED_PRECISION,),
                                                                     in_scope=scope)[str(building.AIMED_PRECISION)]
            t = building.midway_threshold(conf, reached) if reached["coverage"] else None
        s = test_f[name]
        answered = s >= (t if t is not None else np.inf)
        known_ans = answered & ~is_unknown
        row = {"threshold": t,
               "unknown_handed_off": round(float((~answered[is_unknown]).mean()), 4),
               "known_answered": round(float(answered[~is_unknown].mean()), 4),
               "known_precision": round(float(test_f["correct"][known_ans].mean()), 4) if known_ans.any() else None,
               "auroc_known_vs_unknown": round(_auroc(s[~is_unknown], s[is_unknown]), 4)}
        detail[name] = row
        rows.append([label, t, row["unknown_handed_off"], row["known_answered"], row["known_precision"],
                     row["auroc_known_vs_unknown"]])
    shipped = detail["shipped"]
    return {
        "command": f"{OOS_ONLY_ENV}=out_of_scope python -m bench intent{' --quick' if quick else ''}",
        "unknown_intents": sorted(unknown),
        "known_intents": len(names) - len(unknown),
        "test_known": int((~is_unknown).sum()), "test_unknown": int(is_unknown.sum()),
        "calibration_rows": len(cal_q), "probes": len(probes),
        "temperature_fitted": temperature,
        "build_s": round(build_s, 1),
        "bot_metrics": {k: v for k, v in metrics.items() if k not in ("curve", "calibration_answers")},
        "scores": detail,
        "data_hash": data_hash,
        "table": table(
            f"Out-of-scope: {len(unknown)} of {len(names)} BANKING77 intents held out of training "
            f"(seed {OOS_SEED}); test: {int((~is_unknown).sum())} known, {int(is_unknown.sum())} unknown questions",
            ["decision score", "threshold (calibration)", "unknown handed off", "known answered",
             "precision on known answered", "AUROC known vs unknown"],
            rows,
            [f"Shipped row: the bot's own decision (Bot.candidate -> combine(), the chat API's rule) at the threshold "
             f"it chose on its {len(cal_q)} calibration rows + {len(probes)} generic out-of-scope probes, aiming at "
             f"{building.AIMED_PRECISION:.0%} precision; no held-out intent is in calibration. Head mode on the frozen "
             f"encoder (temperature {temperature} fitted on validation rows, applied only in its own row); built in "
             f"{build_s:.0f} s on 2 shared cores.",
             "Other rows: the same bot, the threshold chosen the same way on the same calibration rows (their own "
             "stored copy left out of retrieval). Unknown handed off + known answered: higher is better for both.",
             f"Shipped: {100 * shipped['unknown_handed_off']:.1f}% of unknown-intent questions handed off, "
             f"{100 * shipped['known_answered']:.1f}% of known ones answered."]),
    }


def run_out_of_scope_only(quick: bool) -> dict:
    """This section alone; every other figure of intent.json is carried over from its last run."""
    import json

    from bench.harness import RESULTS_DIR

    section = out_of_scope(quick)
    path = RESULTS_DIR / "intent.json"
    old = json.loads(path.read_text()) if path.exists() else {"summary": "intent", "results": {}, "tables": []}
    carried = {"command": old.get("command"), "finished_at": old.get("finished_at"), "mode": old.get("mode")}
    keep = {k: v for k, v in old.items() if k not in ("area", "mode", "command", "finished_at", "wall_s", "machine")}
    keep.setdefault("results", {})["out_of_scope"] = {k: v for k, v in section.items() if k != "table"}
    keep["tables"] = [t for t in keep.get("tables", []) if not t["title"].startswith("Out-of-scope")] + [section["table"]]
    keep["carried_over_from"] = {**carried, "note": "every section but out_of_scope comes from that run"}
    keep["notes"] = [n for n in keep.get("notes", []) if not n.startswith("Only the out-of-scope table")] + [
        f"Only the out-of-scope table was measured by `{section['command']}` (the wall time and finish time at the "
        f"top of this section are that run's); every other figure here is carried over from `{carried['command']}` "
        f"(mode {carried['mode']}, finished {carried['finished_at']})."]
    return keep
if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.intent",
                                     description="Parts of the intent bench (the whole area: python -m bench intent).")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--ten-shot-only", action="store_true",
                       help="the 10-shot section (seeds 0, 1, 2) merged into bench/results/intent.json; draws "
                            "written by --ten-shot-part are used when all three exist")
    group.add_argument("--ten-shot-part", type=int, metavar="SEED", help="one 10-shot draw, kept for --ten-shot-only")
    args = parser.parse_args()
    print(ten_shot_part(args.ten_shot_part) if args.ten_shot_part is not None else merge_ten_shot())
