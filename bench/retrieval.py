"""Area 7 — FAISS retrieval through the project's one index wrapper
(``aigc_core.retrieval.index.VectorIndex``) on real encoder embeddings.

Vectors. Every distinct text of the public data sets (BANKING77 train+test,
PhraseBank 50%-agree, MovieLens item texts) is embedded by the shipped MiniLM
encoder. 1,000 of them, drawn at random, are the queries and never enter the
base. The base is the remaining real vectors plus synthetic vectors made from
them until it holds N: each synthetic vector is
``normalise((1-λ)·e_i + λ·e_j + σ·g/√d)`` with e_i a random real vector, e_j one
of its 10 nearest real neighbours, λ ~ U(0, 0.5) and g ~ N(0, I), σ = 0.1. The
base keeps the clusters of real text (unlike random vectors, where IVF/HNSW
recall means nothing) without 30 copies of each sentence.

Measured per N: recall@10 against exact search, batch QPS (1,000 queries in one
call) and single-query latency, for flat / IVF (nprobe sweep) / HNSW (efSearch
sweep); build times; the flat scan against the memory-bandwidth bound (bytes
scanned ÷ numpy copy bandwidth); flat batch search with FAISS's BLAS threshold
at this build's default and at 20 (``faiss.cvar.distance_compute_blas_threshold``:
below it FAISS scans the base once per query with SIMD code; at or above it,
it calls BLAS sgemm, which reads the base once per block of queries).
"""
from __future__ import annotations

import gc
import json
import os
import time

import numpy as np
from tqdm.auto import tqdm

from bench import datasets
from bench.harness import RESULTS_DIR, Stopwatch, dev_limit, embed, median, sha256_texts, table

K = 10
N_QUERIES = 1000
SIGMA = 0.1
SEED = 7


def corpus_texts() -> list[str]:
    train, test, _, _ = datasets.banking77()
    pb = datasets.phrasebank("50").data.texts
    ml = [item["text"] for item in datasets.movielens_small().items.values()]
    seen: set[str] = set()
    out = []
    for t in [*train.texts, *test.texts, *pb, *ml]:
        if t and t not in seen:
            seen.add(t)
            out.append(t)
    return out


def synthesize(real: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    import faiss

    d = real.shape[1]
    flat = faiss.IndexFlatIP(d)
    flat.add(real)
    _, nn = flat.search(real, 11)  # neighbour 0 is the vector itself
    out = np.empty((n, d), dtype=np.float32)
    m = min(n, len(real))
    out[:m] = real[:m]
    chunk = 100_000
    for start in tqdm(range(m, n, chunk), desc=f"synthesise {n:,}", unit="chunk", leave=False):
        size = min(chunk, n - start)
        i = rng.integers(0, len(real), size)
        j = nn[i, rng.integers(1, 11, size)]
        lam = rng.uniform(0.0, 0.5, size)[:, None].astype(np.float32)
        x = (1 - lam) * real[i] + lam * real[j] + SIGMA * rng.standard_normal((size, d), dtype=np.float32) / np.sqrt(d)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[start:start + size] = x
    return out


def copy_bandwidth_gbs(size_bytes: int = 1 << 30, repeats: int = 5) -> dict:
    """numpy copy of a 1 GiB array; STREAM convention: read + write bytes / time."""
    src = np.ones(size_bytes // 4, dtype=np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # touch pages
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - t0)
    best, med = min(times), median(times)
    del src, dst
    return {"bytes": size_bytes, "copy_gbs_best": 2 * size_bytes / best / 1e9,
            "copy_gbs_median": 2 * size_bytes / med / 1e9, "read_gbs_best": size_bytes / best / 1e9,
            "note": "numpy copyto, single thread; copy_gbs counts read+write bytes (STREAM), read_gbs counts the source only"}


def recall_at_k(ids: np.ndarray, truth: np.ndarray, k: int = K) -> float:
    hits = [len(set(a[:k].tolist()) & set(b[:k].tolist())) for a, b in zip(ids, truth, strict=True)]
    return float(np.mean(hits) / k)


def timed_batch(index, q: np.ndarray, repeats: int) -> tuple[float, np.ndarray]:
    times, ids = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        _, ids = index.search(q, K)
        times.append(time.perf_counter() - t0)
    return median(times), ids


def timed_single(index, q: np.ndarray, n: int) -> float:
    times = []
    for row in q[:n]:
        t0 = time.perf_counter()
        index.search(row[None, :], K)
        times.append(time.perf_counter() - t0)
    return median(times)


def bench_size(base: np.ndarray, queries: np.ndarray, quick: bool, bandwidth: dict, bar) -> dict:
    import faiss

    from aigc_core.retrieval.index import IndexConfig, VectorIndex

    n, d = base.shape
    ids = np.arange(n, dtype=np.int64)
    sw = Stopwatch()
    rows = []
    repeats = 3
    n_single = 30 if n >= 500_000 else 100
    default_thr = faiss.cvar.distance_compute_blas_threshold

    # Exact ground truth and the flat index (the wrapper, kind="flat").
    flat = VectorIndex(IndexConfig(kind="flat"))
    with sw("flat_build"):
        flat.add(ids, base)
    bar.set_postfix_str(f"{n:,} flat")
    bar.update(1)
    flat_times = {}
    for thr in sorted({default_thr, 20}):
        faiss.cvar.distance_compute_blas_threshold = thr
        flat_times[thr], truth = timed_batch(flat, queries, repeats)
    faiss.cvar.distance_compute_blas_threshold = default_thr
    # Single query: one pass over the base per query; this is the scan we compare to bandwidth.
    flat_single = timed_single(flat, queries, n_single)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    flat_single_1t = timed_single(flat, queries, n_single)
    faiss.omp_set_num_threads(threads)
    best_thr = min(flat_times, key=flat_times.get)
    bytes_scanned = n * d * 4
    bound_copy = bytes_scanned / (bandwidth["copy_gbs_best"] * 1e9)
    bound_read = bytes_scanned / (bandwidth["read_gbs_best"] * 1e9)
    rows.append(["flat (exact)", "-", 1.0, N_QUERIES / flat_times[best_thr], flat_single * 1e3, sw.times["flat_build"]])
    flat_report = {
        "bytes_scanned_per_query": bytes_scanned,
        "single_query_s": flat_single,
        "single_query_s_one_thread": flat_single_1t,
        "ratio_single_one_thread_to_read_bound": flat_single_1t / bound_read,
        "bound_s_copy_bw": bound_copy,
        "bound_s_read_bw": bound_read,
        "ratio_single_to_copy_bound": flat_single / bound_copy,
        "ratio_single_to_read_bound": flat_single / bound_read,
        "batch_s_by_blas_threshold": {str(k): v for k, v in flat_times.items()},
        "batch_per_query_s_best": flat_times[best_thr] / N_QUERIES,
        "ratio_batch_per_query_to_copy_bound": flat_times[best_thr] / N_QUERIES / bound_copy,
        "blas_threshold_default": default_thr,
    }
    del flat
    gc.collect()

    # IVF through the wrapper: nlist = 4·sqrt(N), trained on the first add() (40 vectors per list).
    nlist = int(round(4 * np.sqrt(n)))  # the wrapper's own rule, applied to the full N
    ivf = VectorIndex(IndexConfig(kind="ivf", nlist=nlist))
    train_n = min(n, 40 * nlist)
    with sw("ivf_build"):
        ivf.add(ids[:train_n], base[:train_n])
        if train_n < n:
            ivf.add(ids[train_n:], base[train_n:])
    bar.set_postfix_str(f"{n:,} ivf")
    bar.update(1)
    ivf_sweep = []
    for nprobe in ([4, 16, 64] if quick else [1, 4, 16, 64, 128]):
        ivf._index.nprobe = min(nprobe, nlist)
        t, got = timed_batch(ivf, queries, repeats)
        single = timed_single(ivf, queries, 100)
        rec = recall_at_k(got, truth)
        ivf_sweep.append({"nprobe": nprobe, "recall@10": rec, "qps_batch": N_QUERIES / t, "latency_ms_single": single * 1e3})
        rows.append([f"IVF-Flat nlist={nlist}", f"nprobe={nprobe}", rec, N_QUERIES / t, single * 1e3, sw.times["ivf_build"]])
    del ivf
    gc.collect()

    # HNSW through the wrapper: M=32.
    # The wrapper's efConstruction (200) at 100k; FAISS's own default (40) at 1M, where 200 would take
    # most of the time budget on 2 cores.
    ef_construction = IndexConfig().ef_construction if n <= 200_000 else 40
    hnsw = VectorIndex(IndexConfig(kind="hnsw", ef_construction=ef_construction))
    with sw("hnsw_build"):
        hnsw.add(ids, base)
    bar.set_postfix_str(f"{n:,} hnsw")
    bar.update(1)
    inner = faiss.downcast_index(hnsw._index.index)
    hnsw_sweep = []
    for ef in ([16, 64, 128] if quick else [16, 32, 64, 128, 256]):
        inner.hnsw.efSearch = ef
        t, got = timed_batch(hnsw, queries, repeats)
        single = timed_single(hnsw, queries, 100)
        rec = recall_at_k(got, truth)
        hnsw_sweep.append({"efSearch": ef, "recall@10": rec, "qps_batch": N_QUERIES / t, "latency_ms_single": single * 1e3})
        rows.append([f"HNSW M={hnsw.config.hnsw_m} efConstruction={ef_construction}", f"efSearch={ef}", rec, N_QUERIES / t, single * 1e3, sw.times["hnsw_build"]])
    del hnsw, inner
    gc.collect()
    return {"n": n, "dim": d, "dev_slice": bool(dev_limit()), "nlist": nlist, "hnsw_ef_construction": ef_construction, "ivf_train_n": train_n, "flat": flat_report, "ivf": ivf_sweep,
            "hnsw": hnsw_sweep, "build_s": sw.times, "rows": rows}


def size_table(r: dict) -> dict:
    f = r["flat"]
    copy_gbs = f["bytes_scanned_per_query"] / f["bound_s_copy_bw"] / 1e9
    one_thread = (f"with one FAISS thread {f['single_query_s_one_thread'] * 1e3:.1f} ms "
                  f"({f['ratio_single_one_thread_to_read_bound']:.2f}× the read-only bound); "
                  if "single_query_s_one_thread" in f else "")
    notes = [
        f"Flat scan: {f['bytes_scanned_per_query'] / 1e9:.2f} GB per query; one query takes "
        f"{f['single_query_s'] * 1e3:.1f} ms = {f['ratio_single_to_copy_bound']:.2f}× the copy-bandwidth bound "
        f"({f['bound_s_copy_bw'] * 1e3:.1f} ms at {copy_gbs:.1f} GB/s) and "
        f"{f['ratio_single_to_read_bound']:.2f}× the read-only bound ({f['bound_s_read_bw'] * 1e3:.1f} ms); "
        + one_thread
        + f"a batch of 1,000 amortises to {f['batch_per_query_s_best'] * 1e3:.2f} ms per query "
        f"({f['ratio_batch_per_query_to_copy_bound']:.2f}× the bound: the base is read once per block of queries).",
        "Flat batch of 1,000 by BLAS threshold: "
        + ", ".join(f"threshold {k}: {v:.2f} s" for k, v in f["batch_s_by_blas_threshold"].items())
        + f" (this build's default is {f['blas_threshold_default']}).",
        f"IVF trained on the first {r['ivf_train_n']:,} vectors added (the wrapper trains on its first add()).",
    ]
    if r.get("carried_over_from"):
        c = r["carried_over_from"]
        load = c.get("load_avg_at_end") or c.get("load_avg_at_start")
        notes.append(f"Carried over from `{c['command']}` finished {c['finished_at']} (1-min load average "
                     f"{load[0] if load else '?'} when it finished): not re-measured in this run.")
    return table(
        f"FAISS at {r['n']:,} × {r['dim']} (real MiniLM vectors + neighbour-interpolated synthetic ones), "
        f"{N_QUERIES:,} held-out real queries, k={K}",
        ["index", "setting", "recall@10 vs exact", "QPS (batch of 1,000)", "latency ms (1 query, median)", "build s"],
        r.get("rows", []), notes)


def old_rows(old: dict, n: int) -> list:
    for t in old.get("tables", []):
        if t["title"].startswith(f"FAISS at {n:,} "):
            return t["rows"]
    return []


def run(quick: bool) -> dict:
    import faiss

    sw = Stopwatch()
    with sw("load_texts"):
        texts = corpus_texts()
    with sw("embed"):
        t0 = time.perf_counter()
        vecs = embed(texts)
        embed_s = time.perf_counter() - t0
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(vecs))
    queries = np.ascontiguousarray(vecs[order[:N_QUERIES]])
    real = np.ascontiguousarray(vecs[order[N_QUERIES:]])
    with sw("bandwidth"):
        bandwidth = copy_bandwidth_gbs()
    sizes = [100_000] if quick else [100_000, 1_000_000]
    if os.environ.get("BENCH_RETRIEVAL_SIZES"):  # e.g. 1000000: run only these sizes, carry the others over
        sizes = [int(x) for x in os.environ["BENCH_RETRIEVAL_SIZES"].split(",")]
    results = []
    with tqdm(total=3 * len(sizes), desc="retrieval", unit="index") as bar:
        for n in sizes:
            with sw(f"synthesise_{n}"):
                base = synthesize(real, n, rng)
            with sw(f"bench_{n}"):
                results.append(bench_size(base, queries, quick, bandwidth, bar))
            del base
            gc.collect()

    # Sizes measured by an earlier run and not re-run now are carried over, marked with that run.
    previous = RESULTS_DIR / "retrieval.json"
    if previous.exists():
        old = json.loads(previous.read_text())
        ran = {r["n"] for r in results}
        for r in old.get("sizes", []):
            if r["n"] not in ran and not r.get("dev_slice") and "DEV" not in old.get("mode", ""):
                r.setdefault("carried_over_from", {"command": old.get("command"), "finished_at": old.get("finished_at"),
                                                   "load_avg_at_start": old.get("machine", {}).get("load_avg_at_start"),
                                                   "load_avg_at_end": old.get("machine", {}).get("load_avg_at_end")})
                r.setdefault("rows", old_rows(old, r["n"]))
                results.append(r)
        results.sort(key=lambda r: r["n"])

    tables = [size_table(r) for r in results]
    return {
        "summary": "FAISS flat / IVF / HNSW via aigc_core.retrieval.index.VectorIndex on real MiniLM embeddings",
        "data": {"texts": len(texts), "texts_hash": sha256_texts(texts), "queries": N_QUERIES, "real_in_base": len(real),
                 "synthesis": f"normalise((1-λ)e_i + λe_j + {SIGMA}·g/√d), e_j among e_i's 10 nearest real neighbours, λ~U(0,0.5)",
                 "sources": ["banking77 train+test", "phrasebank Sentences_50Agree", "movielens-small item texts"]},
        "embedding": {"texts_per_s": len(texts) / embed_s if embed_s > 1 else None,
                      "note": "None when the vectors came from bench/.cache"},
        "bandwidth": bandwidth,
        "faiss_threads": faiss.omp_get_max_threads(),
        "sizes": results,
        "wall_times": sw.times,
        "tables": tables,
        "published": [],
    }
