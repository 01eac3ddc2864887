"""Two-tower recommender on frozen sentence-encoder features (NRMS-style user tower).

Item tower: the frozen MiniLM vector of an item's text (computed once and
cached by the caller) through a small residual MLP projection, L2-normalised.
So an item nobody has seen yet, or a raw text that is not in the catalogue,
gets a vector from its text alone.

User tower: the projected vectors of the user's recent positive items pooled
by additive attention (Wu et al., NRMS: a_i = q . tanh(W h_i + b), softmax over
the history), then a linear map, L2-normalised. Session context items are just
more history.

Score: cosine(user, item) / temperature. Trained with the one Trainer on
(history -> next positive item) pairs against in-batch items plus sampled hard
negatives (shown-but-not-clicked, popular-but-not-clicked), with a softmax
(InfoNCE) or BPR loss.

No Django here; the app and the benchmark call the same code.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

CONFIG_FILE = "two_tower.json"
WEIGHTS_FILE = "two_tower.safetensors"


@dataclass
class TwoTowerConfig:
    text_dim: int = 384  # width of the frozen encoder's vectors (MiniLM)
    dim: int = 128  # width of the shared user/item space
    hidden: int = 256  # hidden width of the item projection MLP
    attn_dim: int = 64  # width of the additive attention's query space
    history: int = 20  # most recent positive items a user is encoded from
    dropout: float = 0.1  # on the item MLP's hidden layer, training only
    temperature: float = 0.07  # softmax temperature on cosine scores
    loss: str = "softmax"  # softmax: in-batch + sampled negatives (InfoNCE) | bpr: pairwise vs sampled negatives
    n_negatives: int = 8  # sampled hard negatives per training example

    def __post_init__(self) -> None:
        if self.loss not in {"softmax", "bpr"}:
            raise ValueError(f"loss must be 'softmax' or 'bpr', not {self.loss!r}")
        if self.history < 1:
            raise ValueError("history must be at least 1")


class AdditiveAttention(nn.Module):
    """NRMS's attention pooling: one learned query scores each history vector."""

    def __init__(self, dim: int, attn_dim: int):
        super().__init__()
        self.proj = nn.Linear(dim, attn_dim)
        self.query = nn.Parameter(torch.randn(attn_dim) * 0.02)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # h: (B, H, D), mask: (B, H) bool -> pooled (B, D), weights (B, H)
        logits = torch.tanh(self.proj(h)) @ self.query  # (B, H)
        logits = logits.float().masked_fill(~mask, -1e4)
        weights = torch.softmax(logits, dim=-1) * mask  # rows with no history get all-zero weights
        weights = weights / weights.sum(-1, keepdim=True).clamp(min=1e-9)
        return (weights.unsqueeze(-1).to(h.dtype) * h).sum(1), weights


class TwoTower(nn.Module):
    def __init__(self, config: TwoTowerConfig | None = None):
        super().__init__()
        self.config = cfg = config or TwoTowerConfig()
        self.item_in = nn.Linear(cfg.text_dim, cfg.dim)  # residual path: a linear projection of the text
        self.item_mlp = nn.Sequential(
            nn.Linear(cfg.text_dim, cfg.hidden), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(cfg.hidden, cfg.dim)
        )
        self.attention = AdditiveAttention(cfg.dim, cfg.attn_dim)
        self.user_out = nn.Linear(cfg.dim, cfg.dim)
        nn.init.eye_(self.user_out.weight)
        nn.init.zeros_(self.user_out.bias)

    # -- towers --------------------------------------------------------------
    def item_vectors(self, text_vecs: torch.Tensor) -> torch.Tensor:
        # text_vecs: (..., text_dim) -> (..., dim), unit length
        return F.normalize(self.item_in(text_vecs) + self.item_mlp(text_vecs), dim=-1)

    def user_vectors(self, history: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # history: (B, H, text_dim), mask: (B, H) bool -> users (B, dim) unit length, attention (B, H)
        h = self.item_vectors(history)  # (B, H, dim)
        pooled, weights = self.attention(h, mask)
        return F.normalize(self.user_out(pooled), dim=-1), weights

    def forward(self, history: torch.Tensor, mask: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        # history (B, H, text_dim), mask (B, H), items (B, N, text_dim) -> cosine scores (B, N)
        u, _ = self.user_vectors(history, mask)
        v = self.item_vectors(items)
        return torch.einsum("bd,bnd->bn", u, v)

    # -- training --------------------------------------------------------------
    def _pool(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # projected history h: (B, H, dim), mask (B, H) -> users (B, dim)
        pooled, _ = self.attention(h, mask)
        return F.normalize(self.user_out(pooled), dim=-1)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """batch (from PairDataset.collate): item_feats (U,T) = the distinct items of the batch,
        and positions into it: history (B,H) with -1 padding, target (B,), negatives (B,K).
        Each distinct item is projected once per step, however often it appears."""
        cfg = self.config
        v = self.item_vectors(batch["item_feats"])  # (U, D)
        hist = batch["history"]
        mask = hist >= 0
        u = self._pool(v[hist.clamp(min=0)], mask)  # (B, D)
        tgt, negs = batch["target"], batch["negatives"]
        pos = v[tgt]  # (B, D)
        pos_s = (u * pos).sum(-1, keepdim=True)  # (B, 1)
        neg_s = torch.einsum("bd,bkd->bk", u, v[negs])  # (B, K)
        # A sampled negative that happens to be the target is not a negative.
        neg_s = neg_s.float().masked_fill(negs == tgt[:, None], -1e4)
        if cfg.loss == "bpr":
            valid = neg_s > -1e3
            diff = pos_s.float() - neg_s
            return (F.softplus(-diff / cfg.temperature) * valid).sum() / valid.sum().clamp(min=1)
        in_batch = (u @ pos.T).float()  # (B, B): other rows' targets as negatives
        same = tgt[:, None] == tgt[None, :]
        eye = torch.eye(len(u), dtype=torch.bool, device=u.device)
        in_batch = in_batch.masked_fill(same & ~eye, -1e4)  # the same item twice is no negative
        logits = torch.cat([in_batch, neg_s], dim=1) / cfg.temperature  # (B, B + K)
        labels = torch.arange(len(u), device=u.device)
        return F.cross_entropy(logits, labels)

    # -- inference helpers (numpy in, numpy out) -------------------------------
    @torch.no_grad()
    def project_items(self, text_vecs: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """(N, text_dim) frozen text vectors -> (N, dim) float32 unit vectors for the index."""
        self.eval()
        dev = next(self.parameters()).device
        out = [
            self.item_vectors(torch.as_tensor(text_vecs[i : i + batch_size], dtype=torch.float32, device=dev))
            .float().cpu().numpy()
            for i in range(0, len(text_vecs), batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0, self.config.dim), np.float32)

    @torch.no_grad()
    def encode_users(self, histories: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Each history: (h_i, text_dim) frozen vectors, oldest first (only the last `history` are used).
        Returns (U, dim) unit vectors (zeros for an empty history) and each user's attention weights."""
        self.eval()
        cfg = self.config
        dev = next(self.parameters()).device
        hist, mask = pad_histories(histories, cfg.history, cfg.text_dim)
        if len(histories) == 0:
            return np.zeros((0, cfg.dim), np.float32), []
        u, w = self.user_vectors(torch.as_tensor(hist, device=dev), torch.as_tensor(mask, device=dev))
        u = u.float().cpu().numpy()
        u[~mask.any(1)] = 0.0
        w = w.float().cpu().numpy()
        # Histories are right-aligned: a user's weights sit in the last min(len, history) slots.
        weights = [w[i, cfg.history - min(len(h), cfg.history):] for i, h in enumerate(histories)]
        return u, weights

    # -- persistence ------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_FILE))
        (directory / CONFIG_FILE).write_text(json.dumps(asdict(self.config), indent=2))

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu") -> TwoTower:
        from safetensors.torch import load_file

        directory = Path(directory)
        config = TwoTowerConfig(**json.loads((directory / CONFIG_FILE).read_text()))
        model = cls(config)
        model.load_state_dict(load_file(str(directory / WEIGHTS_FILE), device=str(device)))
        model.to(device)
        model.eval()
        return model


def pad_histories(histories: list[np.ndarray], length: int, text_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-align each history's last `length` vectors: (U, length, text_dim) float32 and a (U, length) mask."""
    hist = np.zeros((len(histories), length, text_dim), np.float32)
    mask = np.zeros((len(histories), length), bool)
    for i, h in enumerate(histories):
        h = np.asarray(h, np.float32).reshape(-1, text_dim)[-length:]
        if len(h):
            hist[i, -len(h):] = h
            mask[i, -len(h):] = True
    return hist, mask


class PairDataset(torch.utils.data.Dataset):
    """Training examples as index arrays into one feature matrix (nothing copied until a batch is made;
    positions are unique within a batch, so equal positions mean the same item).

    history_idx: (N, H) item rows, -1 = padding; target_idx: (N,); negative_idx: (N, K)."""

    def __init__(self, features: np.ndarray, history_idx: np.ndarray, target_idx: np.ndarray,
                 negative_idx: np.ndarray):
        self.features = torch.as_tensor(np.asarray(features, np.float32))
        self.history_idx = torch.as_tensor(history_idx, dtype=torch.long)
        self.target_idx = torch.as_tensor(target_idx, dtype=torch.long)
        self.negative_idx = torch.as_tensor(negative_idx, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.target_idx)

    def __getitem__(self, i: int) -> int:
        return i

    def collate(self, rows: list[int]) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(rows, dtype=torch.long)
        hist, tgt, neg = self.history_idx[idx], self.target_idx[idx], self.negative_idx[idx]
        # The batch's distinct items and every reference remapped to a position among them.
        used = torch.cat([hist[hist >= 0], tgt, neg.reshape(-1)])
        uniq, _ = torch.unique(used, return_inverse=True)
        pos = torch.full((len(self.features),), -1, dtype=torch.long)
        pos[uniq] = torch.arange(len(uniq))
        return {
            "item_feats": self.features[uniq],  # (U, T)
            "history": torch.where(hist >= 0, pos[hist.clamp(min=0)], -1),  # (B, H)
            "target": pos[tgt],  # (B,)
            "negatives": pos[neg],  # (B, K)
        }

    def loader(self, batch_size: int, shuffle: bool, seed: int = 0) -> torch.utils.data.DataLoader:
        gen = torch.Generator().manual_seed(seed)
        return torch.utils.data.DataLoader(self, batch_size=batch_size, shuffle=shuffle, collate_fn=self.collate,
                                           generator=gen, drop_last=False)


def train_two_tower(features: np.ndarray, history_idx: np.ndarray, target_idx: np.ndarray,
                    negative_idx: np.ndarray, config: TwoTowerConfig | None = None, train_config=None,
                    on_progress=None) -> tuple[TwoTower, dict]:
    """Fit a TwoTower with the engine Trainer on prepared index arrays; returns (model, history dict)."""
    from aigc_core.training import TrainConfig, Trainer, set_seed

    config = config or TwoTowerConfig()
    train_config = train_config or TrainConfig(epochs=4, batch_size=256, lr=2e-3, patience=0, progress_bar=False)
    if len(target_idx) == 0:
        raise ValueError("no training examples: every user needs at least two positive events")
    set_seed(train_config.seed)
    model = TwoTower(config)
    data = PairDataset(features, history_idx, target_idx, negative_idx)
    loader = data.loader(train_config.batch_size, shuffle=True, seed=train_config.seed)
    trainer = Trainer(model, train_config, loss_fn=lambda m, b: m.loss(b), on_progress=on_progress)
    result = trainer.fit(loader)
    model.to("cpu").eval()
    return model, {
        "history": result.history,
        "wall_s": result.wall_s,
        "steps": result.steps,
        "epoch_s": result.wall_s / max(1, len(result.history)),
        "examples": len(target_idx),
    }
