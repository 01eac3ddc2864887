"""The plain-Python pipeline (no database): what the Celery job and the benchmark run."""
import numpy as np
import pytest

from aigc_core.models.two_tower import TwoTower, TwoTowerConfig
from apps.recommend.ranking import Ranker
from apps.recommend.training import RecommenderArtifacts, ranking_metrics


def test_it_beats_the_popularity_baseline_on_a_time_split(trained):
    _, _, _, metrics = trained
    s = metrics["systems"]
    assert metrics["eval_users"] >= 50
    assert s["model"]["recall@10"] >= s["popularity"]["recall@10"] + 0.2, s
    assert s["model"]["ndcg@10"] > s["popularity"]["ndcg@10"] + 0.1, s
    assert s["model"]["auc"] > 0.8 and s["model"]["coverage"] > s["popularity"]["coverage"]
    assert set(s) == {"popularity", "text_only", "item_knn", "ease", "two_tower", "model"}
    assert metrics["train_loss"][-1] < metrics["train_loss"][0]


def test_it_keeps_the_future_out_of_training(trained):
    _, _, _, metrics = trained
    split = metrics["split"]
    assert split["start"] < split["validation_from"] < split["test_from"] < split["end"]


def test_it_round_trips_the_artifacts(trained, tmp_path):
    _, _, artifacts, _ = trained
    artifacts.save(tmp_path)
    loaded = RecommenderArtifacts.load(tmp_path)
    x = np.random.default_rng(0).standard_normal((5, 384)).astype(np.float32)
    np.testing.assert_allclose(artifacts.model.project_items(x), loaded.model.project_items(x), atol=1e-6)
    assert loaded.ranker.coef == artifacts.ranker.coef


def test_it_pools_history_with_attention_and_ignores_padding():
    model = TwoTower(TwoTowerConfig(history=4))
    h = np.random.default_rng(1).standard_normal((2, 384)).astype(np.float32)
    u, w = model.encode_users([h, np.zeros((0, 384), np.float32)])
    assert u.shape == (2, 128) and abs(np.linalg.norm(u[0]) - 1) < 1e-5 and not u[1].any()
    assert w[0].shape == (2,) and abs(w[0].sum() - 1) < 1e-5


def test_it_trains_with_bpr_too():
    from aigc_core.models.two_tower import train_two_tower
    from aigc_core.training import TrainConfig

    rng = np.random.default_rng(0)
    feats = rng.standard_normal((20, 384)).astype(np.float32)
    hist = rng.integers(0, 20, (64, 3))
    model, info = train_two_tower(feats, hist, rng.integers(0, 20, 64), rng.integers(0, 20, (64, 4)),
                                  TwoTowerConfig(history=3, n_negatives=4, loss="bpr"),
                                  TrainConfig(epochs=2, batch_size=16, progress_bar=False, patience=0))
    assert info["steps"] == 8 and np.isfinite(info["history"][-1]["train_loss"])


def test_it_computes_ranking_metrics_by_hand():
    scores = np.array([[0.9, 0.8, 0.1, 0.0], [0.1, 0.2, 0.3, 0.9]])
    m = ranking_metrics(scores, relevant=[{1}, {2}], exclude=[{0}, set()], k=1)
    # user 0: item 0 excluded so item 1 (relevant) is first; user 1: item 3 first, item 2 missed.
    assert m["recall@1"] == 0.5 and m["ndcg@1"] == 0.5
    assert m["auc"] == pytest.approx((1.0 + 2 / 3) / 2)
    assert m["coverage"] == 0.5


def test_it_falls_back_to_the_text_tower_without_validation_positives():
    r = Ranker.fit([np.ones((5, 8), np.float32)], [np.zeros(5, np.float32)], [0])
    assert r.trained_on == 0 and r.weights()["two_tower"] == 1.0
