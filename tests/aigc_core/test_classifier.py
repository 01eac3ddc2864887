from __future__ import annotations

import random

import numpy as np
import pytest

from aigc_core.models.classifier import (
    BiGRUClassifier,
    BiGRUConfig,
    ClassifierConfig,
    ClassifierError,
    EncoderClassifier,
    load_classifier,
    train_bigru_classifier,
    train_classifier,
)
from aigc_core.training import TrainConfig

TOPICS = {
    "billing": ["I was charged twice on my card", "my invoice shows the wrong amount",
                "why did my payment fail", "refund the extra charge on my bill", "the price on my receipt is wrong"],
    "shipping": ["my parcel has not arrived yet", "where is my delivery", "the courier lost my package",
                 "tracking number shows no movement", "the box arrived damaged in transit"],
    "account": ["I cannot log in to my account", "reset my password please", "how do I change my email address",
                "my profile page will not load", "delete my user account"],
}


def toy_set(seed: int = 0, copies: int = 2):
    rng = random.Random(seed)
    rows = [(f"{t}{suffix}", topic) for topic, ts in TOPICS.items() for t in ts for suffix in ("", " today", "!")
            for _ in range(copies)]
    rng.shuffle(rows)
    return [t for t, _ in rows], [y for _, y in rows]


FAST = dict(batch_size=16, lr=3e-3, progress_bar=False, patience=0, warmup_ratio=0.0)


def test_it_reaches_high_accuracy_on_a_separable_set_in_head_mode(tmp_path):
    texts, ys = toy_set(copies=1)
    val_texts = ["I got billed two times", "the package never came", "I forgot my login password"]
    val_ys = ["billing", "shipping", "account"]
    calls = []
    model, m = train_classifier(texts, {"topic": ys}, ClassifierConfig(heads={"topic": []}, mode="head"),
                                TrainConfig(epochs=15, **FAST), val_texts=val_texts, val_labels={"topic": val_ys},
                                on_progress=lambda pct, msg: calls.append(pct))
    assert m["topic/val_accuracy"] == 1.0 and m["val_macro_f1"] == 1.0 and calls[-1] == 100.0
    preds = model.predict(val_texts)["topic"]
    assert [label for label, _ in preds] == val_ys and all(0.34 < p <= 1.0 for _, p in preds)

    model.save(tmp_path / "clf")
    assert not (tmp_path / "clf" / "encoder.safetensors").exists()  # head mode: heads only
    again = load_classifier(tmp_path / "clf")
    assert isinstance(again, EncoderClassifier)
    np.testing.assert_allclose(again.predict_proba(val_texts)["topic"], model.predict_proba(val_texts)["topic"],
                               atol=1e-5)
    # Same probabilities from vectors a caller already has for retrieval (bf16 autocast tolerance).
    from aigc_core.retrieval.encoder import encode

    np.testing.assert_allclose(model.predict_proba_from_embeddings(encode(val_texts))["topic"],
                               model.predict_proba(val_texts)["topic"], atol=0.03)


def test_it_trains_several_heads_with_missing_labels():
    texts, topics = toy_set(copies=1)
    urgency = ["urgent" if ("!" in t or "lost" in t) else "normal" for t in texts]
    # Half the rows lack a topic, the other half lack an urgency: each head learns from its own rows.
    topic_labels = [y if i % 2 else None for i, y in enumerate(topics)]
    urgency_labels = [None if i % 2 else u for i, u in enumerate(urgency)]
    cfg = ClassifierConfig(heads={"topic": ["account", "billing", "shipping"], "urgency": []}, hidden=0,
                           mode="head")
    model, m = train_classifier(texts, {"topic": topic_labels, "urgency": urgency_labels}, cfg,
                                TrainConfig(epochs=20, **FAST), val_texts=texts,
                                val_labels={"topic": topics, "urgency": urgency})
    assert m["topic/val_accuracy"] >= 0.9 and m["urgency/val_accuracy"] >= 0.8
    proba = model.predict_proba(["where is my parcel!"])
    assert proba["topic"].shape == (1, 3) and proba["urgency"].shape == (1, 2)
    np.testing.assert_allclose(proba["topic"].sum(-1), 1.0, atol=1e-5)
    with pytest.raises(ClassifierError, match="unknown|not in"):
        train_classifier(texts, {"topic": ["weather"] * len(texts)}, cfg, TrainConfig(epochs=1, **FAST))


def test_it_trains_the_bigru_baseline_and_reloads_it(tmp_path):
    texts, ys = toy_set(copies=1)
    model, m = train_bigru_classifier(texts, {"topic": ys}, BiGRUConfig(heads={"topic": []}, vocab_size=300,
                                                                       embed_dim=32, hidden=32),
                                      TrainConfig(epochs=6, **{**FAST, "lr": 1e-2}))
    assert m["n_val"] > 0 and m["epochs_run"] == 6
    losses = [row["train_loss"] for row in model.history]
    assert losses[-1] < 0.7 * losses[0]
    model.save(tmp_path / "gru")
    again = load_classifier(tmp_path / "gru")
    assert isinstance(again, BiGRUClassifier)
    np.testing.assert_allclose(again.predict_proba(texts[:5])["topic"], model.predict_proba(texts[:5])["topic"],
                               atol=1e-6)


def test_it_fine_tunes_the_top_layers_and_saves_the_encoder(tmp_path):
    texts, ys = toy_set(copies=1)
    texts, ys = texts[:16], ys[:16]
    cfg = ClassifierConfig(heads={"topic": sorted(TOPICS)}, mode="top", top_layers=1)
    model, m = train_classifier(texts, ys, cfg, TrainConfig(epochs=1, **FAST), val_texts=texts[:4],
                                val_labels=ys[:4])
    trainable = {n.split(".")[3] for n, p in model.encoder.named_parameters() if p.requires_grad}
    assert trainable == {"5"}  # only the last of MiniLM's 6 layers
    model.save(tmp_path / "top")
    assert (tmp_path / "top" / "encoder.safetensors").exists()
    again = EncoderClassifier.load(tmp_path / "top")
    np.testing.assert_allclose(again.predict_proba(texts[:3])["topic"], model.predict_proba(texts[:3])["topic"],
                               atol=1e-4)


def test_it_caches_frozen_features_by_data_hash(tmp_path, monkeypatch):
    from aigc_core.models import classifier

    texts = ["cache me", "and me too"]
    first = classifier.frozen_features(texts, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npy"))) == 1
    classifier._FEATURE_CACHE.clear()

    def no_encoder(*args, **kwargs):
        raise AssertionError("features should come from the cache")

    monkeypatch.setattr(classifier, "_encode_with", no_encoder)
    np.testing.assert_array_equal(classifier.frozen_features(texts, cache_dir=tmp_path), first)  # from disk
    np.testing.assert_array_equal(classifier.frozen_features(texts), first)  # from memory
    with pytest.raises(AssertionError, match="cache"):
        classifier.frozen_features(["different data"])


def word_order_set(n: int, seed: int):
    """Label = which of two colour words comes first; the words are the same either way,
    so a bag of (frozen, mean-pooled) features cannot tell the classes apart."""
    rng = random.Random(seed)
    fillers = ["the", "car", "was", "then", "painted", "and", "later", "also", "a", "wall"]
    texts, labels = [], []
    for i in range(n):
        a, b = ("red", "blue") if i % 2 == 0 else ("blue", "red")
        words = rng.sample(fillers, 4)
        texts.append(" ".join([words[0], a, words[1], words[2], b, words[3]]))
        labels.append(f"{a} first")
    return texts, labels


def test_it_learns_word_order_in_full_mode_where_frozen_features_cannot():
    texts, ys = word_order_set(96, seed=0)
    val_texts, val_ys = word_order_set(40, seed=1)
    from aigc_core.training.recipe import finetune_train_config

    scores = {}
    for mode in ("head", "full"):
        tc = finetune_train_config(mode, epochs=6 if mode == "full" else 30, batch_size=16)
        model, m = train_classifier(texts, ys, ClassifierConfig(heads={"order": []}, mode=mode), tc,
                                    val_texts=val_texts, val_labels=val_ys)
        assert m["mode"] == mode
        pred = [label for label, _ in model.predict(val_texts)["order"]]
        scores[mode] = sum(p == y for p, y in zip(pred, val_ys, strict=True)) / len(val_ys)
    # Frozen mean-pooled vectors keep some position signal (0.65-0.8 here, moving with the
    # inference padding's bf16 rounding); fine-tuning must do clearly better.
    assert scores["full"] >= 0.95 and scores["full"] >= scores["head"] + 0.15, scores
