"""Regenerate bench/results/README.md from the JSON files in bench/results/.

Every figure in the README comes from one JSON file, named under its table,
together with the command that wrote it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.harness import RESULTS_DIR

AREAS = ["intent", "sentiment", "spikes", "recommend", "lm", "gan", "retrieval", "serving", "soak", "support_replies"]
TITLES = {
    "intent": "1. Intent detection — BANKING77",
    "sentiment": "2. Financial sentiment — Financial PhraseBank",
    "spikes": "3. Spike detection — NAB realTweets",
    "recommend": "4. Recommendation — MovieLens small",
    "lm": "5. Language modelling — BANKING77 texts",
    "gan": "6. GAN augmentation — PhraseBank",
    "retrieval": "7. Retrieval — FAISS",
    "serving": "8. Serving — gunicorn + PostgreSQL + Redis + worker",
    "soak": "9. Soak — mixed load on the run command's server (`python -m bench.soak --minutes 30`)",
    "support_replies": "10. Support replies a customer can trust — demo + realistic transcripts",
}


def fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:
            return "—"
        a = abs(value)
        if a == 0:
            return "0"
        if a >= 1000:
            return f"{value:,.0f}"
        if a >= 100:
            return f"{value:.1f}"
        if a >= 1:
            return f"{value:.2f}"
        return f"{value:.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_table(t: dict) -> list[str]:
    out = [f"**{t['title']}**", ""]
    out.append("| " + " | ".join(t["columns"]) + " |")
    out.append("|" + "|".join("---" for _ in t["columns"]) + "|")
    for row in t["rows"]:
        out.append("| " + " | ".join(fmt(v) for v in row) + " |")
    out.append("")
    for note in t.get("notes", []):
        out.append(f"- {note}")
    if t.get("notes"):
        out.append("")
    return out


def render_area(area: str, data: dict | None) -> list[str]:
    out = [f"## {TITLES[area]}", ""]
    if data is None:
        out += [f"Not run: no `bench/results/{area}.json`. Command: `python -m bench {area}`.", ""]
        return out
    m = data.get("machine", {})
    out.append(
        f"Source: [`{area}.json`]({area}.json) · command `{data.get('command')}` · mode **{data.get('mode')}** · "
        f"finished {data.get('finished_at')} · wall {fmt(data.get('wall_s'))} s · "
        f"{m.get('cpu')}, {m.get('cores')} cores, {m.get('ram_gib')} GiB, torch {m.get('versions', {}).get('torch')}, "
        f"faiss {m.get('versions', {}).get('faiss')} · load average (1 min) start → end {load_span(m)}"
    )
    out.append("")
    if data.get("status") and data["status"] != "ok":
        out += [f"**Status: {data['status']}** — {data.get('status_detail', '')}", ""]
    if data.get("summary"):
        out += [data["summary"], ""]
    for t in data.get("tables", []):
        out += render_table(t)
    if data.get("published"):
        out += ["Published figures (not measured here):", ""]
        for p in data["published"]:
            out.append(f"- {p}")
        out.append("")
    if data.get("below_published"):
        out += ["**Where we are below a published figure:**", ""]
        for b in data["below_published"]:
            out.append(f"- {b}")
        out.append("")
    for note in data.get("notes", []):
        out.append(f"- {note}")
    if data.get("notes"):
        out.append("")
    if data.get("issues"):
        out += ["Problems in the project's code found by this benchmark (worked around in bench/, not fixed there):", ""]
        out += [f"- {i}" for i in data["issues"]]
        out.append("")
    return out


def load_span(m: dict) -> str:
    """1-minute load average at the start and end of a run. Files written before the start was
    recorded hold only the end value (under the old key load_avg_at_start)."""
    if "load_avg_at_end" in m:
        start = m.get("load_avg_at_start")
        return f"{start[0]:.1f} → {m['load_avg_at_end'][0]:.1f}" if start else f"? → {m['load_avg_at_end'][0]:.1f}"
    old = m.get("load_avg_at_start")
    return f"? → {old[0]:.1f}" if old else "—"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def headline(area: str, d: dict) -> str:
    """One line per area for the summary table; '' when the JSON lacks the fields."""
    r = d.get("results", {})
    if area == "intent":
        o = r["ours"]
        if "handoff" in o:  # the bot's own decision at the threshold it chose on its calibration rows
            h = o["handoff"]
            handoff = (f"bot's own hand-off: coverage {_pct(h['coverage'])} at {_pct(h['precision'])} precision "
                       f"(aimed {_pct(h['aimed_precision'])})")
        else:
            handoff = f"coverage @95% precision {_pct(o['coverage_at_precision']['0.95']['coverage'])}"
        return (f"ours {_pct(o['accuracy'])} acc, macro-F1 {o['macro_f1']:.3f}; TF-IDF+LR {_pct(r['tfidf_lr']['accuracy'])}, "
                f"frozen+LR {_pct(r['frozen_lr']['accuracy'])}; 10-shot ours {_pct(r['ten_shot']['ours']['median'])} "
                f"vs frozen+LR {_pct(r['ten_shot']['frozen_lr']['median'])}; {handoff} (published BERT-large 93.66%)")
    if area == "sentiment":
        a, b = r["split_50"]["ours"], r["split_all"]["ours"]
        return (f"ours 80/20: all data {a['accuracy']:.3f} acc / {a['macro_f1']:.3f} F1, all agree {b['accuracy']:.3f} / "
                f"{b['macro_f1']:.3f} (FinBERT 0.86/0.84, 0.97/0.95)")
    if area == "spikes":
        rows = {x["detector"]: x for x in r}
        best = max((x["standard"]["score"], k) for k, x in rows.items() if k.startswith("ours"))
        wg = next(x for k, x in rows.items() if "windowed Gaussian" in k)
        ours = next(x for k, x in rows.items() if k.startswith("ours"))
        if "lofo" in ours.get("standard", {}):
            return (f"shipped detector {ours['standard']['score']:.1f} standard (LOFO {ours['standard']['lofo']:.1f}), "
                    f"reward low FP {ours['reward_low_FP_rate']['score']:.1f}; windowed Gaussian here "
                    f"{wg['standard']['score']:.1f} (published realTweets: HTM 69.35 / 63.55, ARTime 83.17)")
        return (f"best of ours {best[0]:.1f} (standard profile), windowed Gaussian here {wg['standard']['score']:.1f} "
                f"(published realTweets: HTM 69.35, windowed Gaussian 56.05)")
    if area == "recommend":
        o = r["ours: two-tower + ranker (served)"]["all"]
        pop = r["baseline: popularity"]["all"]
        return f"ours recall@10 {o['recall@10']:.3f} / nDCG@10 {o['ndcg@10']:.3f} vs popularity {pop['recall@10']:.3f} / {pop['ndcg@10']:.3f}"
    if area == "lm":
        return "test perplexity: " + ", ".join(f"{k} {v['test_perplexity']:.1f}" for k, v in r.items())
    if area == "gan":
        return d.get("summary", "")
    if area == "retrieval":
        out = []
        for size in d.get("sizes", []):
            h = max((x for x in size["hnsw"]), key=lambda x: x["recall@10"])
            out.append(f"{size['n']:,}: flat {size['flat']['single_query_s'] * 1e3:.0f} ms/query "
                       f"({size['flat']['ratio_single_to_read_bound']:.1f}× read bound), HNSW recall {h['recall@10']:.3f} "
                       f"at {h['qps_batch']:,.0f} QPS")
        return "; ".join(out)
    if area == "serving":
        c = {x["clients"]: x for x in d["chat"]}
        return (f"chat p50/p95 {c[1]['p50_ms']:.0f}/{c[1]['p95_ms']:.0f} ms (1 client), "
                f"{c[32]['replies_per_s']:.1f} replies/s at 32 clients; score(100) p50 {d['recommend']['score_ms']['p50']:.0f} ms")
    if area == "support_replies":
        return "; ".join(
            f"{name}: claims an action {_pct(x['claims_action_share'])}, placeholder "
            f"{_pct(x['unfilled_placeholder_share'])}, other conversation's data "
            f"{_pct(x['other_conversation_data_share'])}, confidently wrong {_pct(x['confidently_wrong_share'])} "
            f"(answered {_pct(x['answered_share'])})" for name, x in r.items())
    if area == "soak":
        p, ops = d["pipeline"], d["ops"]
        return (f"{d['seconds'] / 60:.0f} min: {sum(o['errors'] for o in ops.values())} errors, "
                f"{p['items_lost']} items lost, ≤{p['queued_classify_jobs_max']} queued classify job(s), "
                f"lag p95 {p['lag_p95_s'] or 0:.1f} s, {p['classified_per_s']:.0f} items/s classified, "
                f"chat p95 {ops['chat']['p95_ms'] or 0:.0f} ms")
    return ""


def regenerate(results_dir: Path = RESULTS_DIR) -> Path:
    lines = [
        "# Benchmarks",
        "",
        "Generated by `python -m bench <area> [--quick]` (this file is rewritten after every area from the JSON files "
        "next to it; do not edit by hand). Data: the public sets in `../shared/data/` (licences and sources in its "
        "README); nothing is copied into the repository. Medians unless stated; \"quick\" marks a reduced run.",
        "",
        "Reproduce: `python -m bench all` (full) or `python -m bench all --quick`; one area: `python -m bench "
        "intent|sentiment|spikes|recommend|lm|gan|retrieval|serving [--quick]`. Each section names the exact command "
        "and JSON file behind its figures. Serving needs PostgreSQL on 127.0.0.1:5432 (user postgres) and Redis on "
        "127.0.0.1:6379 (db 14).",
        "",
    ]
    status = []
    datas = {}
    for area in AREAS:
        path = results_dir / f"{area}.json"
        datas[area] = json.loads(path.read_text()) if path.exists() else None
        d = datas[area]
        load = "—" if d is None else load_span(d.get("machine", {}))
        try:
            head = headline(area, d) if d is not None and d.get("status", "ok") == "ok" else ""
        except Exception:  # noqa: BLE001 - a summary line must never stop the report
            head = ""
        status.append(f"| {TITLES[area]} | {fmt(head) if head else '—'} | {'—' if d is None else d.get('mode')} | "
                      f"{'not run' if d is None else d.get('status', 'ok')} | "
                      f"{'—' if d is None else fmt(d.get('wall_s'))} | "
                      f"{'—' if d is None else d.get('finished_at')} | {load} |")
    lines += ["| area | headline | mode | status | wall s | finished (UTC) | load average, start → end (2 cores) |",
              "|---|---|---|---|---|---|---|", *status, "",
              "A load average well above 2 means the machine was shared with other jobs during that run: its "
              "accuracy figures stand, its times and throughputs are pessimistic.", ""]
    for area in AREAS:
        lines += render_area(area, datas[area])
    # Other result files written with the same harness (e.g. an app's own end-to-end measurements).
    for path in sorted(results_dir.glob("*.json")):
        name = path.stem
        if name in AREAS:
            continue
        TITLES.setdefault(name, f"Also measured: {name}")
        lines += render_area(name, json.loads(path.read_text()))
    path = results_dir / "README.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines).rstrip() + "\n")
    return path
