import numpy as np
import pytest

from aigc_core.retrieval.index import IndexConfig, IndexError_, VectorIndex


def _norm(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _clustered(n=4000, dim=384, clusters=40, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    labels = rng.integers(0, clusters, n)
    return _norm(centres[labels] + 0.35 * rng.normal(size=(n, dim)))


def test_it_finds_true_nearest_neighbours_exactly():
    rng = np.random.default_rng(1)
    x = _norm(rng.normal(size=(500, 384)))
    q = _norm(rng.normal(size=(20, 384)))
    idx = VectorIndex(IndexConfig(kind="flat"))
    idx.add(np.arange(1000, 1500), x)
    scores, ids = idx.search(q, k=5)
    truth = np.argsort(-(q @ x.T), axis=1)[:, :5] + 1000
    np.testing.assert_array_equal(ids, truth)
    np.testing.assert_allclose(scores, np.take_along_axis(q @ x.T, truth - 1000, axis=1), atol=1e-5)


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_recall_at_10_is_high_on_clustered_data(kind):
    x = _clustered()
    q = x[:200] + 0.01
    exact = VectorIndex(IndexConfig(kind="flat"))
    exact.add(np.arange(len(x)), x)
    approx = VectorIndex(IndexConfig(kind=kind))
    approx.add(np.arange(len(x)), x)
    _, truth = exact.search(q, 10)
    _, got = approx.search(q, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, got, strict=True)])
    assert recall >= 0.9, f"{kind} recall@10 = {recall:.3f}"


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_it_deletes_and_round_trips(kind, tmp_path):
    x = _clustered(n=600)
    idx = VectorIndex(IndexConfig(kind=kind))
    idx.add(np.arange(600), x)
    assert idx.delete([0, 1, 2]) == 3
    _, ids = idx.search(x[:3], 5)
    assert not set(ids.ravel()) & {0, 1, 2}
    assert len(idx) == 597
    idx.save(tmp_path / "ix.faiss")
    back = VectorIndex.load(tmp_path / "ix.faiss")
    assert len(back) == 597
    s1, i1 = idx.search(x[10:20], 5)
    s2, i2 = back.search(x[10:20], 5)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_allclose(s1, s2, atol=1e-6)


def test_it_upserts_and_rejects_bad_shapes():
    idx = VectorIndex()
    v = _norm(np.random.default_rng(2).normal(size=(2, 384)))
    idx.add([7, 8], v)
    idx.add([7], v[1:2])  # replace 7's vector
    _, ids = idx.search(v[1:2], 2)
    assert set(ids[0]) == {7, 8} and len(idx) == 2
    with pytest.raises(IndexError_):
        idx.add([1], np.zeros((1, 10), np.float32))
    assert idx.search(v, 0)[1].shape == (2, 0)
