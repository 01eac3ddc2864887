"""Conditional GAN in embedding space: losses move, samples land near their class, save/load."""
from __future__ import annotations

import numpy as np
import pytest

from aigc_core.models.gan import ConditionalGAN, GANConfig, frechet_distance, train_gan

DIM = 8


def two_gaussians(n_a: int = 200, n_b: int = 40, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Class a around +3 e1, class b (the rare one) around -3 e1, both with sd 0.5."""
    rng = np.random.default_rng(seed)
    shift = np.eye(DIM)[0] * 3
    x = np.concatenate([rng.normal(0, 0.5, (n_a, DIM)) + shift, rng.normal(0, 0.5, (n_b, DIM)) - shift])
    return x.astype(np.float32), ["a"] * n_a + ["b"] * n_b


def small_config(**over) -> GANConfig:
    base = dict(steps=300, batch_size=32, hidden=64, noise_dim=8, normalize=False,
                lr_g=1e-3, lr_d=1e-3, progress_bar=False)
    return GANConfig(**{**base, **over})


@pytest.fixture(scope="module")
def trained():
    x, y = two_gaussians()
    progress: list[float] = []
    gan, metrics = train_gan(x, y, small_config(), on_progress=lambda pct, msg: progress.append(pct))
    metrics["progress"] = progress
    return x, y, gan, metrics


def test_it_computes_the_frechet_distance_of_known_gaussians():
    rng = np.random.default_rng(1)
    a = rng.normal(0, 1, (4000, 2))
    b = rng.normal(0, 1, (4000, 2)) + np.array([3.0, 0.0])
    # Same covariance, means 3 apart: the distance is ||mu_a - mu_b||^2 = 9.
    assert frechet_distance(a, b) == pytest.approx(9.0, abs=0.3)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_it_moves_both_losses_and_reports_its_measures(trained):
    _, _, gan, metrics = trained
    d = [h["d_loss"] for h in metrics["history"]]
    g = [h["g_loss"] for h in metrics["history"]]
    assert len(d) == 20 and all(np.isfinite(d + g))
    assert np.std(d) > 1e-3 and np.std(g) > 1e-3
    assert metrics["evaluated_on"] == "held_out"
    assert 0.0 <= metrics["discriminator_accuracy"] <= 1.0
    assert set(metrics["frechet_per_class"]) == {"a", "b"}
    assert 0.0 <= metrics["frechet_reference"] < metrics["frechet_distance"]  # real-vs-real is the floor
    assert len(metrics["progress"]) == 20 and metrics["progress"][-1] == 100.0


def test_it_samples_each_class_close_to_that_class(trained):
    x, y, gan, _ = trained
    real = {lb: x[np.asarray(y) == lb] for lb in ("a", "b")}
    for own, other in (("a", "b"), ("b", "a")):
        fake = gan.sample(own, 200, seed=1)
        assert fake.shape == (200, DIM)
        assert frechet_distance(real[own], fake) < frechet_distance(real[other], fake) / 3


def test_it_tops_up_rare_classes(trained):
    _, y, gan, _ = trained
    vecs, labels = gan.synthesize_for_rare_classes(y, target_per_class=100, seed=0)
    assert vecs.shape == (60, DIM) and labels == ["b"] * 60


def test_it_saves_and_loads_the_same_generator(trained, tmp_path):
    _, _, gan, _ = trained
    gan.save(tmp_path)
    again = ConditionalGAN.load(tmp_path)
    assert again.config.labels == ["a", "b"]
    np.testing.assert_allclose(again.sample("b", 5, seed=2), gan.sample("b", 5, seed=2), rtol=1e-6)


def test_it_projects_onto_the_unit_sphere_by_default():
    x, y = two_gaussians(40, 20)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    gan, _ = train_gan(x, y, small_config(steps=5, normalize=True))
    np.testing.assert_allclose(np.linalg.norm(gan.sample("a", 4, seed=0), axis=1), 1.0, rtol=1e-5)
    with pytest.raises(KeyError):
        gan.sample("zebra", 1)
