"""EASE: an item-item linear autoencoder learned from behaviour (Steck 2019).

One closed-form ridge regression of the user x item matrix X on itself with
the diagonal held at zero:

    P = (XᵀX + λI)⁻¹        B = −P / diag(P) (column-wise)       diag(B) = 0
    score(user, item) = Σ_j x_uj · B[j, item]

Only items with at least one interaction take part (an item nobody touched
has an all-zero row and column, so it would get a zero score anyway); the
model keeps the catalogue rows it covers in ``rows``. ``x_uj`` may be weighted
(the caller decays older history). Rows of B are pruned to their largest
``keep_per_item`` weights for serving, so a 10k-item model is megabytes, not
the dense 400 MB.

λ is the only hyper-parameter: ``fit_ease_grid`` fits one model per λ and the
caller picks the one that does best on a validation cut (never on the test).

Plain numpy + scipy; no Django. The app and the benchmark call the same code.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import sparse

CONFIG_FILE = "ease.json"
WEIGHTS_FILE = "ease.npz"


@dataclass
class EaseConfig:
    l2: float = 200.0  # λ; the training pipeline replaces it by the validation pick
    keep_per_item: int = 256  # largest |B[j, :]| kept per history item (0 = keep the dense matrix)
    min_interactions: int = 1  # items with fewer interactions are left to the text path


class Ease:
    def __init__(self, config: EaseConfig, rows: np.ndarray, B: sparse.csr_matrix, n_items: int):
        self.config = config
        self.rows = np.asarray(rows, np.int64)  # catalogue rows the model covers, ascending
        self.B = B.tocsr().astype(np.float32)  # (len(rows), len(rows)) learned item-item weights
        self.n_items = int(n_items)  # width of the catalogue the rows index into
        self._pos = np.full(self.n_items, -1, np.int64)
        self._pos[self.rows] = np.arange(len(self.rows))

    # -- fitting ------------------------------------------------------------------------
    @classmethod
    def fit(cls, X: sparse.spmatrix | np.ndarray, config: EaseConfig | None = None) -> Ease:
        """X: (users, n_items) interactions (0/1 or weights)."""
        return fit_ease_grid(X, [float((config or EaseConfig()).l2)], config)[0]

    def covers(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows),) bool: which catalogue rows the model has behaviour for."""
        rows = np.asarray(rows, np.int64)
        ok = (rows >= 0) & (rows < self.n_items)
        out = np.zeros(len(rows), bool)
        out[ok] = self._pos[rows[ok]] >= 0
        return out

    # -- scoring ----------------------------------------------------------------------------
    def score_users(self, histories: list[np.ndarray], weights: list[np.ndarray] | None = None) -> np.ndarray:
        """(U, n_items) scores; items the model does not cover score 0. ``histories``: catalogue rows."""
        m = len(self.rows)
        data, ri, ci = [], [], []
        for u, h in enumerate(histories):
            h = np.asarray(h, np.int64)
            w = np.ones(len(h), np.float32) if weights is None else np.asarray(weights[u], np.float32)
            p = self._pos[h] if len(h) else np.zeros(0, np.int64)
            keep = p >= 0
            data.append(w[keep])
            ri.append(np.full(int(keep.sum()), u, np.int64))
            ci.append(p[keep])
        Xu = sparse.csr_matrix((np.concatenate(data) if data else np.zeros(0, np.float32),
                                (np.concatenate(ri) if ri else np.zeros(0, np.int64),
                                 np.concatenate(ci) if ci else np.zeros(0, np.int64))),
                               shape=(len(histories), m), dtype=np.float32)
        dense = np.asarray((Xu @ self.B).todense(), np.float32)  # (U, m)
        out = np.zeros((len(histories), self.n_items), np.float32)
        out[:, self.rows] = dense
        return out

    def score_user(self, history: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """One user's (n_items,) scores: what serving calls per request."""
        return self.score_users([history], None if weights is None else [weights])[0]

    # -- persistence ------------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        B = self.B.tocsr()
        np.savez_compressed(directory / WEIGHTS_FILE, rows=self.rows, data=B.data, indices=B.indices,
                            indptr=B.indptr, shape=np.asarray(B.shape), n_items=np.asarray([self.n_items]))
        (directory / CONFIG_FILE).write_text(json.dumps(asdict(self.config), indent=2))

    @classmethod
    def load(cls, directory: str | Path) -> Ease:
        directory = Path(directory)
        config = EaseConfig(**json.loads((directory / CONFIG_FILE).read_text()))
        z = np.load(directory / WEIGHTS_FILE)
        B = sparse.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"].tolist()))
        return cls(config, z["rows"], B, int(z["n_items"][0]))


def _prune_rows(B: np.ndarray, keep: int) -> sparse.csr_matrix:
    """Keep each row's ``keep`` largest |weights| (row j = how history item j votes for every item)."""
    m = B.shape[0]
    if not keep or keep >= m:
        return sparse.csr_matrix(B)
    cols = np.argpartition(-np.abs(B), keep - 1, axis=1)[:, :keep]  # (m, keep)
    vals = np.take_along_axis(B, cols, axis=1)
    indptr = np.arange(0, m * keep + 1, keep, dtype=np.int64)
    out = sparse.csr_matrix((vals.ravel(), cols.ravel(), indptr), shape=(m, m))
    out.sort_indices()
    return out


def fit_ease_grid(X: sparse.spmatrix | np.ndarray, lambdas: list[float],
                  config: EaseConfig | None = None) -> list[Ease]:
    """One EASE per λ, sharing the Gram matrix: [Ease(λ) for λ in lambdas]."""
    config = config or EaseConfig()
    X = sparse.csr_matrix(X, dtype=np.float32)
    n_items = X.shape[1]
    counts = np.asarray((X != 0).sum(0)).ravel()
    rows = np.nonzero(counts >= max(1, config.min_interactions))[0]
    Xk = X[:, rows]
    G = np.asarray((Xk.T @ Xk).todense(), np.float64)  # (m, m)
    out = []
    for lam in lambdas:
        A = G.copy()
        A[np.diag_indices_from(A)] += float(lam)
        P = np.linalg.inv(A)
        B = -P / np.diag(P)[None, :]
        np.fill_diagonal(B, 0.0)
        out.append(Ease(EaseConfig(l2=float(lam), keep_per_item=config.keep_per_item,
                                   min_interactions=config.min_interactions),
                        rows, _prune_rows(B.astype(np.float32), config.keep_per_item), n_items))
    return out
