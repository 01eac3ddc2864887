"""Contrastive (SetFit-style) tuning for few labels per class, and the recipe's choice
of it: made from the training rows alone, and tuned on training rows only."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from aigc_core.models.classifier import ClassifierConfig, EncoderClassifier, train_classifier
from aigc_core.retrieval.encoder import SentenceEncoder
from aigc_core.training import contrastive as C
from aigc_core.training import recipe as R
from aigc_core.training.recipe import finetune_train_config

FILLERS = ["the", "car", "was", "then", "painted", "and", "later", "also", "a", "wall"]


def order_set(n: int, seed: int):
    """Label = which of two colour words comes first; the words are the same either way,
    so the frozen mean-pooled vectors of the two classes are nearly the same cloud."""
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        a, b = ("red", "blue") if i % 2 == 0 else ("blue", "red")
        w = rng.sample(FILLERS, 4)
        texts.append(" ".join([w[0], a, w[1], w[2], b, w[3]]))
        labels.append(int(i % 2))
    return texts, labels


# Small batches and more passes than the recipe's: 16 rows would otherwise make 2 steps.
FEW = C.ContrastiveConfig(classes_per_batch=2, rows_per_class=8, passes_per_row=48, lr=1e-4, seed=0)


def test_contrastive_tuning_separates_classes_the_frozen_encoder_mixes():
    train_t, train_y = order_set(16, seed=0)  # 8 shots per class
    test_t, test_y = order_set(60, seed=1)
    enc = SentenceEncoder()
    before = C.nearest_centroid_accuracy(enc.encode(train_t), train_y, enc.encode(test_t), test_y)
    result = C.contrastive_finetune(enc, train_t, train_y, FEW)
    after = C.nearest_centroid_accuracy(enc.encode(train_t), train_y, enc.encode(test_t), test_y)
    assert result.steps == C.steps_for(16, FEW) and result.history[0]["train_loss"] > 0
    assert before < 0.75, before  # the frozen vectors do not carry word order
    assert after >= 0.9 and after > before + 0.2, (before, after)


def test_class_batches_draw_every_row_evenly_and_never_unlabelled_rows():
    labels = [0, 0, 0, 1, 1, 1, 2, 2, -1, 3]
    sampler = C.ClassBatches(labels, classes_per_batch=2, rows_per_class=2, steps=40, seed=3)
    drawn = [i for batch in sampler for i in batch]
    counts = np.bincount(drawn, minlength=len(labels))
    assert counts[8] == 0  # the unlabelled row
    assert min(counts[[0, 1, 2, 3, 4, 5, 6, 7, 9]]) > 0
    for batch in C.ClassBatches(labels, 2, 2, 20, seed=4):
        classes = [labels[i] for i in batch]
        assert len(set(classes)) == 2 and all(classes.count(c) <= 2 for c in classes)


def test_the_loss_rewards_vectors_grouped_by_class():
    y = torch.tensor([0, 0, 1, 1])
    grouped = torch.nn.functional.normalize(torch.tensor([[1.0, 0.1], [1.0, -0.1], [-1.0, 0.1], [-1.0, -0.1]]), dim=1)
    mixed = grouped[[0, 2, 1, 3]]
    assert C.supervised_contrastive_loss(grouped, y, 0.1) < C.supervised_contrastive_loss(mixed, y, 0.1)


def test_the_mode_is_chosen_from_training_rows_only():
    many = [f"intent{i % 77}" for i in range(77 * 9)]
    assert R.rows_per_class(many) == 9
    assert R.choose_mode(len(many), None, R.rows_per_class(many))[0] == "contrastive"
    assert R.choose_mode(10_000, None, 130.0)[0] == "full"
    assert R.choose_mode(100, None, 10.0)[0] == "head"  # a demo shop: a retrain in seconds
    assert R.choose_mode(693, "full", 9.0) == ("full", "full mode requested")


def test_contrastive_mode_fits_its_head_on_validation_choices_and_saves(tmp_path):
    """The classifier's contrastive mode: C of the regression head (and the probe blend)
    chosen on the validation rows it was given, the head then refitted; it classifies
    held-out rows by word order, and a saved model answers the same after loading."""
    train_t, train_y = order_set(16, seed=0)
    val_t, val_y = order_set(8, seed=2)
    names = ["blue first", "red first"]

    def lab(ys):
        return [names[1 - y] for y in ys]

    tc = finetune_train_config("contrastive", seed=0)
    model, met = train_classifier(train_t, lab(train_y), ClassifierConfig(heads={"order": []}, mode="contrastive"),
                                  tc, val_t, lab(val_y), contrastive=FEW)
    assert met["mode"] == "contrastive" and met["n_val"] == len(val_t) and met["n_train"] == len(train_t)
    assert set(met["order/val_accuracy_by_head_c"]) == {f"{c:g}" for c in R.PROBE_C_GRID}
    assert met["order/head_c"] in R.PROBE_C_GRID and "order/blend_weight" in met
    test_t, test_y = order_set(40, seed=5)
    pred = [p for p, _ in model.predict(test_t)["order"]]
    assert np.mean([p == t for p, t in zip(pred, lab(test_y), strict=True)]) >= 0.85
    model.save(tmp_path / "m")
    again = EncoderClassifier.load(tmp_path / "m")
    assert again.config.mode == "contrastive" and again.config.hidden == 0
    assert np.allclose(again.predict_proba(test_t)["order"], model.predict_proba(test_t)["order"], atol=1e-4)


@pytest.mark.parametrize("bad", [[0, 0, 0], [-1, -1, -1]])
def test_one_class_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="two classes"):
        C.ClassBatches(bad, 2, 2, 1)
