"""The recommender's training and offline evaluation as one plain-Python pipeline
(no ORM): the Celery job and ``python -m bench`` run the same code.

    artifacts, metrics = train_and_evaluate(items, events)

items:  [{"id", "text", "category", "price", "created_at"}]   (created_at/price may be None)
events: [{"user", "item", "kind", "at", "value"?}]            (at: datetime, ISO string or epoch seconds)

The served model is a hybrid (``Hybrid``): a collaborative model learned from behaviour
(EASE, aigc_core.models.ease) and the text tower (the two-tower on frozen MiniLM vectors,
aigc_core.models.two_tower), combined by the ranker of apps.recommend.ranking over the
features of ``pair_features``. Known items are ranked by behaviour and text; an item with
no behaviour has collab 0 / known 0 and is ranked by its text alone.

Protocol (time split, nothing from the future leaks into the past):
  t_val < t_split split the events by time.
  1. Stage 1 fits on events before t_val: EASE for each λ of the grid, and the two-tower
     (history -> next positive).
  2. Validation = users with history before t_val and new positives in [t_val, t_split):
     λ is the grid value with the best EASE nDCG@10 there; then the ranker's weights are
     chosen by coordinate ascent on nDCG@10 of their candidate lists.
  3. Stage 1 is fitted again on every event before t_split with the chosen λ (the ranker
     is kept) and evaluated on users with new positives after t_split, against
     popularity, text-only, item-kNN, EASE alone and the two-tower alone in the same run.
  4. With refit=True stage 1 is fitted once more on every event for serving.

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
from scipy import sparse

from aigc_core.models.ease import Ease, EaseConfig, fit_ease_grid
from aigc_core.models.two_tower import TwoTower, TwoTowerConfig, train_two_tower
from apps.recommend.ranking import (
    Candidates,
    Ranker,
    UserSignals,
    candidate_rows,
    normalise_popularity,
    pair_features,
    user_profile,
)

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
    ranker_ratio: float = 0.15  # share before the test window: the validation cut (λ and ranker weights)
    popularity_days: float | None = 30.0  # window of the popularity feature/baseline; None = all time
    k: int = 10  # cut-off of recall@k / nDCG@k
    max_eval_users: int = 3000  # evaluation users, sampled deterministically above this
    # EASE's λ is picked on the validation cut from this grid (Steck 2019 used 200-1000 on larger data).
    ease_lambdas: tuple[float, ...] = (25.0, 50.0, 100.0, 200.0, 400.0, 800.0)
    ease: EaseConfig = field(default_factory=EaseConfig)
    candidates_per_source: int = 200  # top items from each of the collaborative model and FAISS
    popular_candidates: int = 50
    recent_candidates: int = 30
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
    ids: list  # external ids, one per row
    row: dict  # external id -> row
    texts: list[str]
    features: np.ndarray  # (N, 384) frozen MiniLM vectors
    categories: list[str]
    log_price: np.ndarray  # (N,) nan when unknown
    created_ts: np.ndarray  # (N,) nan when unknown


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
    if text_features is None:
        text_features = encode_texts(texts, cache_dir)
    if len(text_features) != len(items):
        raise ValueError(f"{len(text_features)} feature rows for {len(items)} items")
    return Catalogue(ids=ids, row={i: r for r, i in enumerate(ids)}, texts=texts,
                     features=np.asarray(text_features, np.float32),
                     categories=[str(it.get("category") or "") for it in items], log_price=prices,
                     created_ts=np.array([to_ts(it.get("created_at")) for it in items], np.float64))


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

    def subset(self, mask: np.ndarray) -> EventLog:
        """The events where ``mask`` holds (same user indices)."""
        return EventLog(self.users, self.user[mask], self.item[mask], self.ts[mask], self.positive[mask],
                        self.consumed[mask], self.skipped)


def build_event_log(events: list[dict], cat: Catalogue, users: dict[str, int] | None = None) -> EventLog:
    users = {} if users is None else dict(users)
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
    """Positive events per item in [until - days, until)."""
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


def interaction_matrix(log: EventLog, n_items: int) -> sparse.csr_matrix:
    """(users, items) 0/1 matrix of the log's positive events: what EASE and item-kNN learn from."""
    sel = log.positive
    X = sparse.csr_matrix((np.ones(int(sel.sum()), np.float32), (log.user[sel], log.item[sel])),
                          shape=(len(log.users), n_items))
    X.data[:] = 1.0  # duplicates summed by the constructor count once
    return X


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
    """The text tower: the two-tower on (history -> next positive) before ``until``."""
    from aigc_core.training import TrainConfig

    rng = np.random.default_rng(cfg.seed)
    hist, tgt, neg = build_examples(log, len(cat.texts), until, cfg, rng)
    tc = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, patience=0, seed=cfg.seed,
                     progress_bar=False, warmup_ratio=0.05)
    return train_two_tower(cat.features, hist, tgt, neg, cfg.model, tc, on_progress=on_progress)


def fit_collab(cat: Catalogue, log: EventLog, lambdas: list[float], cfg: RecommendTrainConfig) -> list[Ease]:
    """EASE for each λ on the log's positive events (None-free: every item with behaviour is covered)."""
    return fit_ease_grid(interaction_matrix(log, len(cat.texts)), list(lambdas), cfg.ease)


# -- baselines ------------------------------------------------------------------------------
def text_only_scores(cat: Catalogue, histories: list[list[int]]) -> np.ndarray:
    users = np.stack([cat.features[h].mean(0) if len(h) else np.zeros(cat.features.shape[1], np.float32)
                      for h in histories])
    norms = np.linalg.norm(users, axis=1, keepdims=True)
    return (users / np.maximum(norms, 1e-9)) @ cat.features.T


def item_knn_scores(X: sparse.spmatrix, histories: list[list[int]], k: int = 50) -> np.ndarray:
    """Item-item cosine over the users' positives, top-k neighbours per item; a user's score
    for item i = sum of sim(i, j) over the items j in their history."""
    X = sparse.csr_matrix(X, dtype=np.float32)
    norms = np.sqrt(np.asarray(X.multiply(X).sum(0)).ravel())
    norms[norms == 0] = 1.0
    A = X @ sparse.diags(1.0 / norms)
    S = np.asarray((A.T @ A).todense(), np.float32)  # (items, items)
    np.fill_diagonal(S, 0.0)
    if k and k < S.shape[0]:
        kth = np.partition(S, -k, axis=0)[-k]
        S[S < kth[None, :]] = 0.0
    out = np.zeros((len(histories), S.shape[0]), np.float32)
    for j, h in enumerate(histories):
        if len(h):
            out[j] = S[h].sum(0)
    return out


# -- metrics over lists ------------------------------------------------------------------
def ranking_metrics(scores: np.ndarray, relevant: list[set[int]], exclude: list[set[int]], k: int = 10,
                    auc_scores: np.ndarray | None = None) -> dict:
    """recall@k, nDCG@k, mean per-user AUC and catalogue coverage of the top k.
    ``scores``: (U, N), higher is better; ``exclude[u]`` rows are never ranked (history).
    ``auc_scores`` (default ``scores``): the order the AUC is measured on."""
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
        a = s if auc_scores is None else auc_scores[u].astype(np.float64)
        auc = metrics.roc_auc(y[keep], a[keep])
        if not math.isnan(auc):
            aucs.append(auc)
    return {
        f"recall@{k}": metrics.recall_at_k(ranked, rel_lists, k),
        f"ndcg@{k}": metrics.ndcg_at_k(ranked, rel_lists, k),
        "auc": float(np.mean(aucs)) if aucs else float("nan"),
        "coverage": len(shown) / max(1, n_items),
    }


# -- the hybrid -------------------------------------------------------------------------------
@dataclass
class EvalUser:
    """One user to rank for: positive history (rows, oldest first), rows never to rank,
    the relevant rows, and the user's 'now' (popularity and recency are measured there)."""

    history: list[int]
    exclude: set[int]
    relevant: set[int]
    now_ts: float


@dataclass
class Hybrid:
    two_tower: TwoTower
    ease: Ease | None
    ranker: Ranker
    popularity_days: float | None


def _catalogue_candidates(cat: Catalogue, hybrid: Hybrid, item_vecs: np.ndarray, pop_norm: np.ndarray) -> Candidates:
    rows = np.arange(len(cat.texts))
    known = hybrid.ease.covers(rows) if hybrid.ease is not None else np.zeros(len(rows), bool)
    return Candidates(model_row=np.where(known, rows, -1), known=known, item_vecs=item_vecs,
                      text_vecs=cat.features, categories=cat.categories, log_price=cat.log_price,
                      created_ts=cat.created_ts, popularity=pop_norm)


def hybrid_scores(hybrid: Hybrid, cat: Catalogue, pop_log: EventLog, users: list[EvalUser],
                  cfg: RecommendTrainConfig, with_features: bool = False) -> dict:
    """Every catalogue item scored for each user the way serving scores it.

    Returns {"model": (U, N) ranker scores (what score() returns), "served": the same with items
    outside the served candidate sources pushed below every candidate (what recommend()
    returns), "collab": EASE alone, "two_tower": the text tower alone}; with ``with_features``
    also "features" / "candidates": per user the candidate rows and their features."""
    n = len(cat.texts)
    item_vecs = hybrid.two_tower.project_items(cat.features)
    histories = [u.history for u in users]
    user_vecs, _ = hybrid.two_tower.encode_users([cat.features[h] for h in histories]) if users else (None, None)
    collab = hybrid.ease.score_users(histories) if hybrid.ease is not None else np.zeros((len(users), n), np.float32)
    out = {k: np.zeros((len(users), n), np.float32) for k in ("model", "served", "collab", "two_tower")}
    feats_out, cands_out = [], []
    pop_cache: dict[float, np.ndarray] = {}
    for j, u in enumerate(users):
        if u.now_ts not in pop_cache:
            pop_cache[u.now_ts] = popularity(pop_log, n, u.now_ts, hybrid.popularity_days)
        counts = pop_cache[u.now_ts]
        cand = _catalogue_candidates(cat, hybrid, item_vecs, normalise_popularity(counts))
        mean = cat.features[u.history].mean(0) if u.history else None
        shares, mean_lp = user_profile(u.history, cat.categories, cat.log_price)
        sig = UserSignals(collab=collab[j], user_vec=user_vecs[j] if u.history else None,
                          text_mean=None if mean is None else mean / max(float(np.linalg.norm(mean)), 1e-9),
                          category_share=shares, mean_log_price=mean_lp, now_ts=u.now_ts)
        X = pair_features(sig, cand)
        s = hybrid.ranker.score(X)
        out["model"][j] = s
        out["collab"][j] = X[:, 0]
        out["two_tower"][j] = X[:, 2]
        masked = X[:, 0].copy()
        masked[list(u.exclude)] = -np.inf
        tt = X[:, 2].copy()
        tt[list(u.exclude)] = -np.inf
        rows = candidate_rows([masked if hybrid.ease is not None else None, tt], cfg.candidates_per_source,
                              np.where(np.isin(np.arange(n), list(u.exclude)), -1.0, counts),
                              cfg.popular_candidates, cat.created_ts, cfg.recent_candidates)
        idx = np.fromiter(rows.keys(), np.int64, len(rows))
        served = s - 1e6
        served[idx] = s[idx]
        out["served"][j] = served
        if with_features:
            feats_out.append(X[idx])
            cands_out.append(idx)
    if with_features:
        out["features"], out["candidates"] = feats_out, cands_out
    return out


def select_on_validation(cat: Catalogue, fit_log: EventLog, val_users: list[EvalUser], cfg: RecommendTrainConfig,
                         report: Progress) -> tuple[Hybrid, dict]:
    """Stage 1 on ``fit_log``; λ and the ranker's weights chosen on ``val_users``."""
    report(5, "training the text tower (two-tower) before the validation cut")
    two_tower, info = fit_model(cat, fit_log, float("inf"), cfg, lambda p, m: report(5 + 0.3 * p, m))
    report(35, f"fitting EASE for λ in {list(cfg.ease_lambdas)}")
    grid = fit_collab(cat, fit_log, list(cfg.ease_lambdas), cfg) if fit_log.positive.any() else []
    key = f"ndcg@{cfg.k}"
    lam_scores = {}
    hist = [u.history for u in val_users]
    rel = [u.relevant for u in val_users]
    excl = [u.exclude for u in val_users]
    for e in grid:
        lam_scores[e.config.l2] = ranking_metrics(e.score_users(hist), rel, excl, cfg.k)[key] if val_users else 0.0
    ease = max(grid, key=lambda e: lam_scores[e.config.l2]) if grid else None
    report(42, "choosing the ranker's weights on the validation users")
    hybrid = Hybrid(two_tower, ease, Ranker(), cfg.popularity_days)
    if val_users:
        parts = hybrid_scores(hybrid, cat, fit_log, val_users, cfg, with_features=True)
        labels = [np.isin(c, list(u.relevant)).astype(np.float32) for c, u in zip(parts["candidates"], val_users,
                                                                                  strict=True)]
        hybrid.ranker = Ranker.fit(parts["features"], labels, [len(u.relevant) for u in val_users], cfg.k,
                                   start="collab" if ease is not None else "two_tower")
    return hybrid, {"two_tower": info, "lambda_ndcg": lam_scores,
                    "lambda": ease.config.l2 if ease is not None else None}


def refit(cat: Catalogue, log: EventLog, chosen: Hybrid, cfg: RecommendTrainConfig, report: Progress
          ) -> tuple[Hybrid, dict]:
    """Stage 1 again on ``log`` with the chosen λ; the ranker is kept."""
    two_tower, info = fit_model(cat, log, float("inf"), cfg, report)
    ease = None
    if chosen.ease is not None and log.positive.any():
        ease = fit_collab(cat, log, [chosen.ease.config.l2], cfg)[0]
    return Hybrid(two_tower, ease, chosen.ranker, chosen.popularity_days), info


def evaluate_systems(hybrid: Hybrid, cat: Catalogue, log: EventLog, users: list[EvalUser],
                     cfg: RecommendTrainConfig) -> tuple[dict, dict]:
    """Every system's (U, N) scores for ``users`` (log = what they may learn from) and their metrics.
    "model" = the served hybrid (top-k from the served candidates; AUC on score()'s order)."""
    n = len(cat.texts)
    hist = [u.history for u in users]
    rel = [u.relevant for u in users]
    excl = [u.exclude for u in users]
    parts = hybrid_scores(hybrid, cat, log, users, cfg)
    pops = np.stack([popularity(log, n, u.now_ts, cfg.popularity_days) + np.linspace(0, 1e-6, n)[::-1]
                     for u in users]) if users else np.zeros((0, n))
    scores = {
        "popularity": pops,
        "text_only": text_only_scores(cat, hist),
        "item_knn": item_knn_scores(interaction_matrix(log, n), hist),
        "ease": parts["collab"],
        "two_tower": parts["two_tower"],
    }
    systems = {name: ranking_metrics(s, rel, excl, cfg.k) for name, s in scores.items()}
    systems["model"] = ranking_metrics(parts["served"], rel, excl, cfg.k, auc_scores=parts["model"])
    scores["model"] = parts["model"]
    scores["model_served"] = parts["served"]
    return systems, scores


def beats_baselines(systems: dict, k: int = 10) -> dict:
    """Which baselines the model does not beat on recall@k or nDCG@k (the dashboard's flag)."""
    model = systems.get("model")
    if not model:
        return {"ok": False, "behind": ["no evaluation"]}
    behind = [f"{name} {m}" for name, s in systems.items() if name != "model"
              for m in (f"recall@{k}", f"ndcg@{k}") if s.get(m, 0.0) >= model.get(m, 0.0)]
    return {"ok": not behind, "behind": behind}


# -- artifacts --------------------------------------------------------------------------------
@dataclass
class RecommenderArtifacts:
    """What serving loads: the text tower, the collaborative model (optional), the ranker, metadata.
    meta["item_ids"] names the catalogue item of each collaborative model row."""

    model: TwoTower
    ranker: Ranker
    meta: dict
    ease: Ease | None = None

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        self.model.save(directory)
        self.ranker.save(directory)
        if self.ease is not None:
            self.ease.save(directory)
        (directory / META_FILE).write_text(json.dumps(self.meta, indent=2, default=str))

    @classmethod
    def load(cls, directory: str | Path) -> RecommenderArtifacts:
        from aigc_core.models.ease import CONFIG_FILE as EASE_CONFIG

        directory = Path(directory)
        ease = Ease.load(directory) if (directory / EASE_CONFIG).exists() else None
        return cls(model=TwoTower.load(directory), ranker=Ranker.load(directory),
                   meta=json.loads((directory / META_FILE).read_text()), ease=ease)


def data_hash(items: list[dict], events: list[dict]) -> str:
    h = hashlib.sha256()
    for it in items:
        h.update(f"{it['id']}\x1f{it.get('text')}\x1e".encode())
    for ev in events:
        h.update(f"{ev['user']}\x1f{ev['item']}\x1f{ev['kind']}\x1f{ev['at']}\x1e".encode())
    return h.hexdigest()


def users_in_window(log: EventLog, t_from: float, t_to: float, max_users: int, rng: np.random.Generator
                    ) -> list[EvalUser]:
    """Users with positives before ``t_from`` and new positives in [t_from, t_to)."""
    hist = _histories(log, t_from)
    window = (log.ts >= t_from) & (log.ts < t_to) & log.positive
    relevant: dict[int, set[int]] = {}
    for u, i in zip(log.user[window].tolist(), log.item[window].tolist(), strict=True):
        if u in hist and i not in hist[u]:
            relevant.setdefault(u, set()).add(i)
    ids = sorted(relevant)
    if len(ids) > max_users:
        ids = sorted(rng.choice(ids, size=max_users, replace=False).tolist())
    return [EvalUser(history=hist[u], exclude=set(hist[u]), relevant=relevant[u], now_ts=t_from) for u in ids]


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
    t_val = float(np.quantile(log.ts, 1 - cfg.test_ratio - cfg.ranker_ratio))

    def scaled(lo: float, hi: float) -> Progress:
        return lambda pct, msg: report(lo + (hi - lo) * pct / 100.0, msg)

    val_users = users_in_window(log, t_val, t_split, cfg.max_eval_users, rng)
    chosen, sel_info = select_on_validation(cat, log.subset(log.ts < t_val), val_users, cfg, scaled(3, 40))
    report(40, "fitting again on everything before the test window")
    fitted, info = refit(cat, log.subset(log.ts < t_split), chosen, cfg, scaled(40, 65))
    report(65, "evaluating on the held-out window")
    users = users_in_window(log, t_split, float("inf"), cfg.max_eval_users, rng)
    systems, _ = evaluate_systems(fitted, cat, log.subset(log.ts < t_split), users, cfg) if users else ({}, {})
    metrics = {
        "systems": systems,
        "baselines": beats_baselines(systems, cfg.k) if systems else {"ok": False, "behind": ["no evaluation"]},
        "eval_users": len(users),
        "validation_users": len(val_users),
        "items": len(items),
        "events": len(events),
        "events_skipped": log.skipped,
        "users": len(log.users),
        "positives": int(log.positive.sum()),
        "train_examples": info["examples"],
        "epoch_s": round(info["epoch_s"], 3),
        "train_loss": [round(h["train_loss"], 4) for h in info["history"]],
        "ease_lambda": sel_info["lambda"],
        "ease_lambda_validation_ndcg": sel_info["lambda_ndcg"],
        "ranker_weights": chosen.ranker.weights(),
        "ranker_check": chosen.ranker.check,
        "split": {"start": t0, "validation_from": t_val, "test_from": t_split, "end": t1},
        "k": cfg.k,
    }
    if systems:
        k = cfg.k
        for m in (f"recall@{k}", f"ndcg@{k}", "auc", "coverage"):
            metrics[m] = systems["model"][m]
    served = fitted
    if cfg.refit:
        report(75, "fitting again on every event for serving")
        served, refit_info = refit(cat, log, chosen, cfg, scaled(75, 98))
        metrics["refit_examples"] = refit_info["examples"]
    metrics["train_s"] = round(time.perf_counter() - started, 2)
    metrics["wall_s"] = metrics["train_s"]
    meta = {"config": asdict(cfg), "trained_until": t1, "popularity_days": cfg.popularity_days,
            "data_hash": data_hash(items, events), "item_ids": list(cat.ids)}
    report(99, "done")
    return RecommenderArtifacts(model=served.two_tower, ranker=served.ranker, meta=meta, ease=served.ease), metrics
