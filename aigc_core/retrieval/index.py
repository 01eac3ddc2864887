"""The one vector index wrapper over FAISS: inner-product search on
normalised vectors (= cosine), with stable int64 ids.

Kinds: ``flat`` (exact), ``ivf`` (inverted lists; trained on the data) and
``hnsw`` (graph). Deletes: flat and IVF remove in place; HNSW cannot, so
deleted ids are masked at search time and dropped on the next rebuild.
Saves are atomic: write to a temporary file, fsync, rename.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np


@dataclass
class IndexConfig:
    kind: str = "flat"  # flat | ivf | hnsw
    dim: int = 384  # MiniLM's width
    nlist: int = 0  # IVF lists; 0 picks ~4*sqrt(n) at build time
    nprobe: int = 16  # IVF lists visited per query: recall vs speed
    hnsw_m: int = 32  # HNSW neighbours per node
    ef_search: int = 128  # HNSW candidate list at query time
    ef_construction: int = 200  # HNSW candidate list at build time


class IndexError_(ValueError):
    """Bad input to the index (wrong dimension, duplicate id...)."""


def gpu_available() -> bool:
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def _as_matrix(vectors: np.ndarray, dim: int) -> np.ndarray:
    x = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != dim:
        raise IndexError_(f"expected vectors of shape (n, {dim}), got {x.shape}")
    return x


class VectorIndex:
    def __init__(self, config: IndexConfig | None = None):
        self.config = config or IndexConfig()
        if self.config.kind not in {"flat", "ivf", "hnsw"}:
            raise IndexError_(f"unknown index kind {self.config.kind!r} (flat, ivf or hnsw)")
        self._index: faiss.Index | None = None
        self._deleted: set[int] = set()
        self._ids: set[int] = set()
        self._gpu_res = None

    # -- building ------------------------------------------------------------
    def _new_index(self, n_train: int) -> faiss.Index:
        cfg = self.config
        if cfg.kind == "flat":
            return faiss.IndexIDMap2(faiss.IndexFlatIP(cfg.dim))
        if cfg.kind == "hnsw":
            base = faiss.IndexHNSWFlat(cfg.dim, cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            base.hnsw.efConstruction = cfg.ef_construction
            base.hnsw.efSearch = cfg.ef_search
            return faiss.IndexIDMap2(base)
        nlist = cfg.nlist or max(1, min(int(4 * np.sqrt(max(n_train, 1))), n_train // 39 or 1))
        quantizer = faiss.IndexFlatIP(cfg.dim)
        ivf = faiss.IndexIVFFlat(quantizer, cfg.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.nprobe = min(cfg.nprobe, nlist)
        self.config.nlist = nlist
        return ivf

    def add(self, ids: np.ndarray | list[int], vectors: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        x = _as_matrix(vectors, self.config.dim)
        if len(ids) != len(x):
            raise IndexError_(f"{len(ids)} ids for {len(x)} vectors")
        if len(set(ids.tolist())) != len(ids):
            raise IndexError_("duplicate ids in one add() call")
        clash = self._ids.intersection(ids.tolist())
        if clash:
            # Re-adding an id replaces its vector (upsert).
            self.delete(sorted(clash))
        if self._index is None:
            self._index = self._new_index(len(x))
        if not self._index.is_trained:
            self._index.train(x)
        self._index.add_with_ids(x, ids)
        self._ids.update(ids.tolist())
        self._deleted.difference_update(ids.tolist())

    def delete(self, ids: list[int] | np.ndarray) -> int:
        ids = [int(i) for i in ids]
        present = [i for i in ids if i in self._ids]
        if not present or self._index is None:
            return 0
        if self.config.kind == "hnsw":
            self._deleted.update(present)
        else:
            self._index.remove_ids(np.asarray(present, dtype=np.int64))
        self._ids.difference_update(present)
        return len(present)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, item_id: int) -> bool:
        return int(item_id) in self._ids

    # -- searching -----------------------------------------------------------
    def search(self, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by inner product: returns (scores, ids), each (n_queries, k); missing = id -1."""
        q = _as_matrix(queries, self.config.dim)
        if self._index is None or len(self) == 0 or k <= 0:
            return np.zeros((len(q), max(k, 0)), np.float32), -np.ones((len(q), max(k, 0)), np.int64)
        # Over-fetch when deletions are masked so k live results remain.
        fetch = min(k + len(self._deleted), self._index.ntotal)
        index = self._searchable()
        scores, ids = index.search(q, fetch)
        if self._deleted:
            scores, ids = self._mask_deleted(scores, ids, k)
        if ids.shape[1] < k:
            pad = k - ids.shape[1]
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=0.0)
            ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
        return scores[:, :k], ids[:, :k]

    def _mask_deleted(self, scores, ids, k):
        out_s = np.zeros((len(ids), k), np.float32)
        out_i = -np.ones((len(ids), k), np.int64)
        for row in range(len(ids)):
            keep = [j for j in range(ids.shape[1]) if ids[row, j] != -1 and int(ids[row, j]) not in self._deleted]
            keep = keep[:k]
            out_s[row, : len(keep)] = scores[row, keep]
            out_i[row, : len(keep)] = ids[row, keep]
        return out_s, out_i

    def _searchable(self) -> faiss.Index:
        if not gpu_available():
            return self._index
        if self._gpu_res is None:
            self._gpu_res = faiss.StandardGpuResources()
        try:
            return faiss.index_cpu_to_gpu(self._gpu_res, 0, self._index)
        except RuntimeError:  # HNSW has no GPU version; search on the CPU
            return self._index

    def reconstruct(self, item_id: int) -> np.ndarray:
        if self.config.kind == "ivf":
            self._index.make_direct_map()
        return self._index.reconstruct(int(item_id))

    # -- persistence ---------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write index + metadata atomically: a crash leaves the old files intact."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"config": asdict(self.config), "ids": sorted(self._ids), "deleted": sorted(self._deleted)}
        tmp_index = path.with_name(path.name + ".tmp")
        tmp_meta = path.with_name(path.name + ".meta.tmp")
        if self._index is not None:
            faiss.write_index(self._index, str(tmp_index))
        else:
            tmp_index.write_bytes(b"")
        tmp_meta.write_text(json.dumps(meta))
        for tmp in (tmp_index, tmp_meta):
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp_meta, path.with_name(path.name + ".meta.json"))
        os.replace(tmp_index, path)

    @classmethod
    def load(cls, path: str | Path) -> VectorIndex:
        path = Path(path)
        meta_path = path.with_name(path.name + ".meta.json")
        if not path.exists() or not meta_path.exists():
            raise FileNotFoundError(f"no index at {path}")
        meta = json.loads(meta_path.read_text())
        obj = cls(IndexConfig(**meta["config"]))
        if path.stat().st_size:
            obj._index = faiss.read_index(str(path))
            if obj.config.kind == "hnsw":
                faiss.downcast_index(obj._index.index).hnsw.efSearch = obj.config.ef_search
            elif obj.config.kind == "ivf":
                obj._index.nprobe = min(obj.config.nprobe, obj.config.nlist or obj.config.nprobe)
        obj._ids = set(meta["ids"])
        obj._deleted = set(meta["deleted"])
        return obj
