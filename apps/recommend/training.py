"""The recommender's training and offline evaluation as one plain-Python pipeline
(no ORM): the Celery job and ``python -m bench`` run the same code.

    artifacts, metrics = train_and_evaluate(items, events)

items:  [{"id", "text", "category", "price", "created_at"}]   (created_at/price may be None)
events: [{"user", "item", "kind", "at", "value"?}]            (at: datetime, ISO string or epoch seconds)

Protocol (time split, nothing from the future leaks into the past):
  t_rank < t_split split the events by time.
  1. The two-tower model trains on positives before t_rank (history -> next positive).
  2. The ranker fits on the window [t_rank, t_split): for each user, history before
     t_rank, labels = items they turned positive on in the window.
  3. Evaluation: for each user with history before t_split and new positives after it,
     rank the whole catalogue minus their history; relevant = their new positive items.
     Systems measured in the same run: popularity, text-only (mean MiniLM vector of the
     history vs item text, no training), the two-tower score alone, and the full model
     (two-tower + ranker).
  4. With refit=True the two-tower is trained again on every event for serving; the ranker is kept.

Positive events: click, add_to_cart, purchase, and rating >= 3.5 (or a rating with no value).
Exposures (shown, not liked): view, and rating < 3.5; they supply hard negatives.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from aigc_core.models.two_tower import TwoTower, TwoTowerConfig, train_two_tower
from apps.recommend.ranking import ItemTable, Ranker, pair_features, user_profile

POSITIVE_KINDS = {"click", "add_to_cart", "purchase", "rating"}
CONSUMED_KINDS = {"purchase"}  # never recommended again to the same user
RATING_POSITIVE = 3.5
META_FILE = "recommender.json"

Progress = Callable[[float, str], None]


@dataclass
class RecommendTrainConfig:
    # BPR at temperature 0.1 edged out in-batch softmax on the demo data (recall@10 0.214 vs 0.200-0.211).
    model: TwoTowerConfig = field(default_factory=lambda: TwoTowerConfig(loss="bpr", temperature=0.1))
    epochs: int = 8  # passes over the (history -> next item) examples
    batch_size: int = 256
    lr: float = 2e-3
    test_ratio: float = 0.2  # last share of the time span held out for evaluation
    ranker_ratio: float = 0.15  # share before the test window that fits the ranker
    popularity_days: float | None = 30.0  # window of the popularity feature/baseline; None = all time
    k: int = 10  # cut-off of recall@k / nDCG@k
    max_eval_users: int = 3000  # evaluation users, sampled deterministically above this
    ranker_negatives: int = 30  # sampled non-relevant items per user when fitting the ranker
    refit: bool = True  # train the served model again on every event after evaluating
    seed: int = 1234


# -- inputs ------------------------------------------------------------------------------
def to_ts(value) -> float:
    """datetime | ISO string | number -> epoch seconds; nan when missing."""
    if value is None or value == "":
        return float("nan")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.timestamp()


def is_positive(kind: str, value=None) -> bool:
    if kind == "rating":
        return value is None or value == "" or float(value) >= RATING_POSITIVE
    return kind in POSITIVE_KINDS


@dataclass
class Catalogue:
    table: ItemTable
    row: dict  # external id -> row
    texts: list[str]
    features: np.ndarray  # (N, 384) frozen MiniLM vectors


def build_catalogue(items: list[dict], text_features: np.ndarray | None = None,
                    cache_dir: str | Path | None = None) -> Catalogue:
    if not items:
        raise ValueError("the catalogue is empty: import items before training")
    ids = [it["id"] for it in items]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate item ids in the catalogue")
    texts = [str(it.get("text") or "") for it in items]
    prices = np.array([math.log1p(float(it["price"])) if it.get("price") not in (None, "") and float(it["price"]) >= 0
                       else np.nan for it in items], np.float64)
    table = ItemTable(ids=ids, categories=[str(it.get("category") or "") for it in items], log_price=prices,
                      created_ts=np.array([to_ts(it.get("created_at")) for it in items], np.float64))
    if text_features is None:
        text_features = encode_texts(texts, cache_dir)
    if len(text_features) != len(items):
        raise ValueError(f"{len(text_features)} feature rows for {len(items)} items")
    return Catalogue(table=table, row={i: r for r, i in enumerate(ids)}, texts=texts,
                     features=np.asarray(text_features, np.float32))


def encode_texts(texts: list[str], cache_dir: str | Path | None = None) -> np.ndarray:
    """Frozen MiniLM vectors, optionally cached on disk by a hash of all the texts."""
    from aigc_core.retrieval.encoder import encode

    if cache_dir is None:
        return encode(texts)
    key = hashlib.sha256("\x1e".join(texts).encode()).hexdigest()[:24]
    path = Path(cache_dir) / f"minilm-{key}.npy"
    if path.exists():
        return np.load(path)
    vecs = encode(texts)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, vecs)
    tmp.replace(path)
    return vecs


@dataclass
class EventLog:
    """Events as sorted arrays: user index, item row, timestamp, positive flag, consumed flag."""

    users: list[str]
    user: np.ndarray
    item: np.ndarray
    ts: np.ndarray
    positive: np.ndarray
    consumed: np.ndarray
    skipped: int = 0  # events whose item is not in the catalogue


def build_event_log(events: list[dict], cat: Catalogue) -> EventLog:
    users: dict[str, int] = {}
    u, it, ts, pos, cons = [], [], [], [], []
    skipped = 0
    for ev in events:
        row = cat.row.get(ev["item"])
        if row is None:
            skipped += 1
            continue
        u.append(users.setdefault(str(ev["user"]), len(users)))
        it.append(row)
        ts.append(to_ts(ev["at"]))
        pos.append(is_positive(ev["kind"], ev.get("value")))
        cons.append(ev["kind"] in CONSUMED_KINDS)
    order = np.argsort(np.asarray(ts, np.float64), kind="stable")
    return EventLog(users=list(users), user=np.asarray(u, np.int64)[order], item=np.asarray(it, np.int64)[order],
                    ts=np.asarray(ts, np.float64)[order], positive=np.asarray(pos, bool)[order],
                    consumed=np.asarray(cons, bool)[order], skipped=skipped)


def popularity(log: EventLog, n_items: int, until: float, days: float | None) -> np.ndarray:
    sel = log.positive & (log.ts < until)
    if days is not None:
        sel &= log.ts >= until - days * 86400.0
    return np.bincount(log.item[sel], minlength=n_items).astype(np.float64)


def _histories(log: EventLog, until: float, positive_only: bool = True) -> dict[int, list[int]]:
    """user -> item rows of their positive events before ``until``, oldest first, deduplicated (last wins)."""
    out: dict[int, list[int]] = {}
    sel = (log.ts < until) & (log.positive if positive_only else True)
    for u, i in zip(log.user[sel].tolist(), log.item[sel].tolist(), strict=True):
        h = out.setdefault(u, [])
        if i in h:
            h.remove(i)
        h.append(i)
    return out


# -- the two-tower's training examples --------------------------------------------------
def build_examples(log: EventLog, n_items: int, until: float, cfg: RecommendTrainConfig,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each positive event before ``until`` with some earlier positive of the same user:
    history = the user's previous positives (last H), target = the item, negatives = K items:
    shown-but-not-liked by this user first, then popular items (p ~ count^0.75) they never liked."""
    H, K = cfg.model.history, cfg.model.n_negatives
    sel = log.ts < until
    pop = popularity(log, n_items, until, None) + 1.0
    p = pop ** 0.75
    p /= p.sum()
    exposures: dict[int, set[int]] = {}
    liked: dict[int, set[int]] = {}
    for u, i, ok in zip(log.user[sel].tolist(), log.item[sel].tolist(), log.positive[sel].tolist(), strict=True):
        (liked if ok else exposures).setdefault(u, set()).add(i)
    hist_rows, targets, negs = [], [], []
    seq: dict[int, list[int]] = {}
    sel_pos = sel & log.positive
    for u, i in zip(log.user[sel_pos].tolist(), log.item[sel_pos].tolist(), strict=True):
        h = seq.setdefault(u, [])
        prior = [x for x in h if x != i][-H:]
        if prior:
            hist_rows.append([-1] * (H - len(prior)) + prior)
            targets.append(i)
            shown = list(exposures.get(u, set()) - liked.get(u, set()))
            pick = list(rng.choice(shown, size=min(len(shown), K // 2), replace=False)) if shown else []
            while len(pick) < K:
                cand = rng.choice(n_items, size=K, p=p)
                pick.extend(c for c in cand.tolist() if c not in liked.get(u, ()))
            negs.append(pick[:K])
        if i in h:
            h.remove(i)
        h.append(i)
    return (np.asarray(hist_rows, np.int64).reshape(-1, H), np.asarray(targets, np.int64),
            np.asarray(negs, np.int64).reshape(-1, K))


def fit_model(cat: Catalogue, log: EventLog, until: float, cfg: RecommendTrainConfig,
              on_progress: Progress | None = None) -> tuple[TwoTower, dict]:
    from aigc_core.training import TrainConfig

    rng = np.random.default_rng(cfg.seed)
    hist, tgt, neg = build_examples(log, len(cat.texts), until, cfg, rng)
    tc = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, patience=0, seed=cfg.seed,
                     progress_bar=False, warmup_ratio=0.05)
    return train_two_tower(cat.features, hist, tgt, neg, cfg.model, tc, on_progress=on_progress)


# -- scoring a set of users against the whole catalogue ----------------------------------
def model_scores(model: TwoTower, item_vecs: np.ndarray, cat: Catalogue, histories: list[list[int]]) -> np.ndarray:
    users, _ = model.encode_users([cat.features[h] for h in histories])
    return users @ item_vecs.T  # (U, N)


def ranked_scores(ranker: Ranker, scores: np.ndarray, cat: Catalogue, histories: list[list[int]],
                  now_ts: float, text_scores: np.ndarray | None = None) -> np.ndarray:
    """The ranker's score of every catalogue item for each user; ``text_scores`` defaults to text_only_scores."""
    if text_scores is None:
        text_scores = text_only_scores(cat, histories)
    all_rows = np.arange(len(cat.texts))
    out = np.empty_like(scores)
    for j, h in enumerate(histories):
        shares, mean_lp = user_profile(h, cat.table)
        out[j] = ranker.score(pair_features(scores[j], all_rows, cat.table, now_ts, shares, mean_lp,
                                            text_scores[j]))
    return out


def text_only_scores(cat: Catalogue, histories: list[list[int]]) -> np.ndarray:
    users = np.stack([cat.features[h].mean(0) if h else np.zeros(cat.features.shape[1], np.float32)
                      for h in histories])
    norms = np.linalg.norm(users, axis=1, keepdims=True)
    return (users / np.maximum(norms, 1e-9)) @ cat.features.T


# -- metrics over lists ------------------------------------------------------------------
def ranking_metrics(scores: np.ndarray, relevant: list[set[int]], exclude: list[set[int]], k: int = 10) -> dict:
    """recall@k, nDCG@k, mean per-user AUC and catalogue coverage of the top k.
    ``scores``: (U, N), higher is better; ``exclude[u]`` rows are never ranked (history)."""
    from aigc_core.training import metrics

    n_users, n_items = scores.shape
    ranked, rel_lists, aucs, shown = [], [], [], set()
    for u in range(n_users):
        s = scores[u].astype(np.float64).copy()
        ex = np.fromiter(exclude[u], dtype=np.int64) if exclude[u] else np.zeros(0, np.int64)
        s[ex] = -np.inf
        top = np.argpartition(-s, min(k, n_items - 1))[:k]
        top = top[np.argsort(-s[top], kind="stable")].tolist()
        ranked.append(top)
        rel_lists.append(relevant[u])
        shown.update(top)
        keep = np.ones(n_items, bool)
        keep[ex] = False
        y = np.zeros(n_items, bool)
        y[list(relevant[u])] = True
        auc = metrics.roc_auc(y[keep], s[keep])
        if not math.isnan(auc):
            aucs.append(auc)
    return {
        f"recall@{k}": metrics.recall_at_k(ranked, rel_lists, k),
        f"ndcg@{k}": metrics.ndcg_at_k(ranked, rel_lists, k),
        "auc": float(np.mean(aucs)) if aucs else float("nan"),
        "coverage": len(shown) / max(1, n_items),
    }


# -- the ranker ----------------------------------------------------------------------------
def fit_ranker(model: TwoTower, cat: Catalogue, log: EventLog, t_rank: float, t_split: float,
               cfg: RecommendTrainConfig, rng: np.random.Generator) -> Ranker:
    hist = _histories(log, t_rank)
    window = (log.ts >= t_rank) & (log.ts < t_split) & log.positive
    targets: dict[int, set[int]] = {}
    for u, i in zip(log.user[window].tolist(), log.item[window].tolist(), strict=True):
        if u in hist and i not in hist[u]:
            targets.setdefault(u, set()).add(i)
    users = sorted(targets)
    if not users:
        return Ranker()
    if len(users) > cfg.max_eval_users:
        users = sorted(rng.choice(users, size=cfg.max_eval_users, replace=False).tolist())
    cat.table.popularity = popularity(log, len(cat.texts), t_rank, cfg.popularity_days)
    item_vecs = model.project_items(cat.features)
    histories = [hist[u] for u in users]
    scores = model_scores(model, item_vecs, cat, histories)
    text_scores = text_only_scores(cat, histories)
    # A quarter of the users is held out to check the fitted ranker against the
    # model score alone: a pointwise ranker fitted on hard negatives can learn to
    # invert the model's order (seen on MovieLens), and must not be shipped then.
    order = rng.permutation(len(users))
    check = set(order[: len(users) // 4].tolist()) if len(users) >= 8 else set()
    X, y = [], []
    n = len(cat.texts)
    for j, u in enumerate(users):
        if j in check:
            continue
        pos = sorted(targets[u])
        # Negatives: the model's own top picks that were wrong (hard) plus random items (easy).
        s = scores[j].copy()
        s[hist[u]] = -np.inf
        top = [r for r in np.argsort(-s)[: cfg.ranker_negatives].tolist() if r not in targets[u]]
        rand = [r for r in rng.choice(n, size=min(n, cfg.ranker_negatives), replace=False).tolist()
                if r not in targets[u] and r not in hist[u]]
        neg = top[: cfg.ranker_negatives // 2] + rand[: cfg.ranker_negatives // 2]
        rows = np.asarray(pos + neg, np.int64)
        shares, mean_lp = user_profile(hist[u], cat.table)
        X.append(pair_features(scores[j][rows], rows, cat.table, t_rank, shares, mean_lp, text_scores[j][rows]))
        y.extend([1] * len(pos) + [0] * len(neg))
    ranker = Ranker.fit(np.concatenate(X), np.asarray(y), seed=cfg.seed)
    if check and ranker.trained_on:
        rows = sorted(check)
        hs = [histories[j] for j in rows]
        rel = [targets[users[j]] for j in rows]
        excl = [set(h) for h in hs]
        key = f"ndcg@{cfg.k}"
        alone = ranking_metrics(scores[rows], rel, excl, cfg.k)[key]
        ranked = ranking_metrics(ranked_scores(ranker, scores[rows], cat, hs, t_rank, text_scores[rows]),
                                 rel, excl, cfg.k)[key]
        ranker.check = {"users": len(rows), f"model_{key}": round(alone, 4), f"ranker_{key}": round(ranked, 4)}
        if ranked < alone:
            fallback = Ranker()
            fallback.check = {**ranker.check, "kept": False}
            return fallback
        ranker.check["kept"] = True
    return ranker


# -- artifacts --------------------------------------------------------------------------------
@dataclass
class RecommenderArtifacts:
    """What serving loads: the two-tower, the ranker and a little metadata."""

    model: TwoTower
    ranker: Ranker
    meta: dict

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        self.model.save(directory)
        self.ranker.save(directory)
        (directory / META_FILE).write_text(json.dumps(self.meta, indent=2, default=str))

    @classmethod
    def load(cls, directory: str | Path) -> RecommenderArtifacts:
        directory = Path(directory)
        return cls(model=TwoTower.load(directory), ranker=Ranker.load(directory),
                   meta=json.loads((directory / META_FILE).read_text()))


def data_hash(items: list[dict], events: list[dict]) -> str:
    h = hashlib.sha256()
    for it in items:
        h.update(f"{it['id']}\x1f{it.get('text')}\x1e".encode())
    for ev in events:
        h.update(f"{ev['user']}\x1f{ev['item']}\x1f{ev['kind']}\x1f{ev['at']}\x1e".encode())
    return h.hexdigest()


# -- the pipeline ---------------------------------------------------------------------------
def train_and_evaluate(items: list[dict], events: list[dict], config: RecommendTrainConfig | None = None,
                       on_progress: Progress | None = None, text_features: np.ndarray | None = None,
                       cache_dir: str | Path | None = None) -> tuple[RecommenderArtifacts, dict]:
    """Train on a time split, evaluate against baselines in the same run, refit for serving.
    Returns (artifacts, metrics); metrics["systems"] holds each system's recall/nDCG/AUC/coverage."""
    cfg = config or RecommendTrainConfig()
    report = on_progress or (lambda pct, msg: None)
    started = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)
    report(2, f"encoding {len(items)} item texts")
    cat = build_catalogue(items, text_features, cache_dir)
    log = build_event_log(events, cat)
    if log.positive.sum() < 10:
        raise ValueError(f"only {int(log.positive.sum())} positive events: need at least 10 to train")
    t0, t1 = float(log.ts.min()), float(log.ts.max())
    t_split = float(np.quantile(log.ts, 1 - cfg.test_ratio))
    t_rank = float(np.quantile(log.ts, 1 - cfg.test_ratio - cfg.ranker_ratio))

    def scaled(lo: float, hi: float) -> Progress:
        return lambda pct, msg: report(lo + (hi - lo) * pct / 100.0, msg)

    report(5, "training the two-tower model on the training window")
    model, train_info = fit_model(cat, log, t_rank, cfg, scaled(5, 45))
    report(45, "fitting the ranker")
    ranker = fit_ranker(model, cat, log, t_rank, t_split, cfg, rng)

    report(55, "evaluating on the held-out window")
    hist = _histories(log, t_split)
    test = log.ts >= t_split
    relevant: dict[int, set[int]] = {}
    for u, i, ok in zip(log.user[test].tolist(), log.item[test].tolist(), log.positive[test].tolist(), strict=True):
        if ok and u in hist and i not in hist[u]:
            relevant.setdefault(u, set()).add(i)
    users = sorted(relevant)
    if len(users) > cfg.max_eval_users:
        users = sorted(rng.choice(users, size=cfg.max_eval_users, replace=False).tolist())
    histories = [hist[u] for u in users]
    rel = [relevant[u] for u in users]
    excl = [set(h) for h in histories]
    cat.table.popularity = popularity(log, len(cat.texts), t_split, cfg.popularity_days)
    systems: dict[str, dict] = {}
    if users:
        n = len(cat.texts)
        pop_scores = np.broadcast_to(cat.table.popularity + np.linspace(0, 1e-6, n)[::-1], (len(users), n))
        systems["popularity"] = ranking_metrics(pop_scores, rel, excl, cfg.k)
        text_scores = text_only_scores(cat, histories)
        systems["text_only"] = ranking_metrics(text_scores, rel, excl, cfg.k)
        item_vecs = model.project_items(cat.features)
        tt = model_scores(model, item_vecs, cat, histories)
        systems["two_tower"] = ranking_metrics(tt, rel, excl, cfg.k)
        systems["model"] = ranking_metrics(ranked_scores(ranker, tt, cat, histories, t_split, text_scores), rel, excl, cfg.k)
    metrics = {
        "systems": systems,
        "eval_users": len(users),
        "items": len(items),
        "events": len(events),
        "events_skipped": log.skipped,
        "users": len(log.users),
        "positives": int(log.positive.sum()),
        "train_examples": train_info["examples"],
        "epoch_s": round(train_info["epoch_s"], 3),
        "train_loss": [round(h["train_loss"], 4) for h in train_info["history"]],
        "ranker_weights": ranker.weights(),
        "ranker_pairs": ranker.trained_on,
        "ranker_check": ranker.check,
        "split": {"start": t0, "rank_from": t_rank, "test_from": t_split, "end": t1},
        "k": cfg.k,
    }
    if systems:
        k = cfg.k
        metrics[f"recall@{k}"] = systems["model"][f"recall@{k}"]
        metrics[f"ndcg@{k}"] = systems["model"][f"ndcg@{k}"]
        metrics["auc"] = systems["model"]["auc"]
        metrics["coverage"] = systems["model"]["coverage"]
    if cfg.refit:
        report(70, "refitting the two-tower model on every event for serving")
        model, refit_info = fit_model(cat, log, float("inf"), cfg, scaled(70, 98))
        metrics["refit_examples"] = refit_info["examples"]
    metrics["wall_s"] = round(time.perf_counter() - started, 2)
    meta = {"config": asdict(cfg), "trained_until": t1, "popularity_days": cfg.popularity_days,
            "data_hash": data_hash(items, events)}
    report(99, "done")
    return RecommenderArtifacts(model=model, ranker=ranker, meta=meta), metrics
