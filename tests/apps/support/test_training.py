import numpy as np
import pytest

from apps.support import training


def test_it_computes_coverage_at_precision_by_hand():
    # Top probabilities 0.9 (right), 0.8 (right), 0.7 (wrong), 0.6 (right).
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]])
    labels = [0, 1, 1, 1]
    out = training.coverage_at_precision(probs, labels, targets=[0.95, 0.75, 0.5])
    assert out["0.95"] == {"threshold": 0.8, "coverage": 0.5, "precision": 1.0}
    assert out["0.75"] == {"threshold": 0.6, "coverage": 1.0, "precision": 0.75}
    named = training.coverage_at_precision(probs, ["a", "b", "b", "b"], [0.95], classes=["a", "b"])
    assert named["0.95"]["coverage"] == 0.5
    with pytest.raises(ValueError, match="classes="):
        training.coverage_at_precision(probs, ["a", "b", "b", "b"], [0.95])


def test_it_counts_answered_out_of_scope_questions_as_errors():
    curve = training.precision_coverage_curve([0.9, 0.5, 0.8], [True, True, False], [True, True, False], points=3)
    # threshold 0.5: all three answered; precision 2/3, coverage of in-scope 2/2.
    assert curve[1] == {"threshold": 0.5, "coverage": 1.0, "precision": 0.6667}
    assert curve[2] == {"threshold": 1.0, "coverage": 0.0, "precision": 1.0}


def test_it_splits_each_label_for_held_out_evaluation():
    labels = ["a"] * 10 + ["b"] * 5 + ["c"] * 2
    train, val = training.holdout_split(labels)
    assert sorted(train + val) == list(range(17))
    assert [labels[i] for i in val].count("a") == 2 and [labels[i] for i in val].count("b") == 1
    assert "c" not in [labels[i] for i in val]  # too rare to hold out


def test_it_trains_the_intent_classifier_from_plain_lists():
    texts = ["where is my parcel", "my package has not arrived", "track my delivery", "when does my order come",
             "I forgot my password", "reset my password", "cannot log in", "password not working"]
    labels = ["shipping"] * 4 + ["account"] * 4
    model, metrics = training.train_intent_classifier(texts, labels, texts[:2] + texts[4:6],
                                                      labels[:2] + labels[4:6], epochs=30)
    probs = model.predict_proba(["where is my delivery?", "I lost my password"])["intent"]
    classes = model.config.heads["intent"]
    assert [classes[i] for i in probs.argmax(1)] == ["shipping", "account"]
    assert "val_loss" in metrics
    with pytest.raises(ValueError, match="two different intents"):
        training.train_intent_classifier(texts[:2], ["x", "x"])


def test_it_splits_into_train_validation_and_calibration():
    labels = ["a"] * 20 + ["b"] * 10 + ["c"] * 2
    parts = training.intent_splits(labels)
    assert sorted(parts.train + parts.validation + parts.calibration) == list(range(32))
    assert not set(parts.train) & set(parts.validation) and not set(parts.validation) & set(parts.calibration)
    cal = [labels[i] for i in parts.calibration]
    assert cal.count("a") == 2 and cal.count("b") == 1 and "c" not in cal  # "c" is too rare to spare


def test_the_bots_threshold_comes_from_calibration_rows_only(bot_artifacts):
    """The hand-off figure scores test rows at the threshold the bot chose on its calibration
    rows: test labels that would move a threshold chosen on them leave it where it is."""
    from pathlib import Path

    from apps.support.bot import Bot
    from apps.support.services import MODEL_NAME
    from bench.intent import bot_handoff
    from tests.apps.support.factories import training_lists

    root, metrics = bot_artifacts
    pairs, _, _ = training_lists()
    labelled = [p for p in pairs if p["label"]]
    assert metrics["heldout"] == len(training.intent_splits([p["label"] for p in labelled]).calibration)
    bot = Bot.load(Path(root) / MODEL_NAME / "v0001")
    threshold = metrics["suggested_threshold"]
    texts = [p["question"] for p in labelled[:12]]
    vecs = __import__("aigc_core.retrieval.encoder", fromlist=["encode"]).encode(texts)
    right = [p["label"] for p in labelled[:12]]
    wrong = [sorted(set(right) - {lab})[0] for lab in right]  # every label flipped to another intent
    good, bad = bot_handoff(bot, threshold, texts, right, vecs), bot_handoff(bot, threshold, texts, wrong, vecs)
    assert good["threshold"] == bad["threshold"] == threshold
    assert good["coverage"] == bad["coverage"] and good["precision"] > bad["precision"]
    # Chosen on these test labels instead, the threshold would move (unreachable with all wrong).
    conf = [bot.candidate(t, vecs[i : i + 1]).confidence for i, t in enumerate(texts)]
    on_test = {name: training.coverage_at_precision_from_confidence(
        conf, [bot.candidate(t, vecs[i : i + 1]).intent == lab[i] for i, t in enumerate(texts)])["0.95"]["threshold"]
        for name, lab in (("right", right), ("wrong", wrong))}
    assert on_test["right"] != on_test["wrong"]
