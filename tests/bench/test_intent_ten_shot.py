"""The 10-shot bench gives the recipe only the draw's rows: its choices (mode, head C,
blend) are made on validation rows taken from the 10 shots, never on the test set."""
from __future__ import annotations

import types

import pytest

from apps.support import training
from bench import datasets
from bench import intent as bench_intent

PHRASES = {
    "card_lost": ["I lost my card", "my card is missing", "can't find my bank card", "someone stole my card"],
    "top_up": ["how do I top up", "add money to my account", "top up by bank transfer", "my top up failed"],
    "refund": ["I want a refund", "where is my refund", "refund for a purchase", "the refund did not arrive"],
}


def make(n_per: int, tag: str) -> datasets.LabelledTexts:
    texts, labels = [], []
    for lab, ps in PHRASES.items():
        for i in range(n_per):
            texts.append(f"{ps[i % len(ps)]} ({tag} {i})")
            labels.append(lab)
    return datasets.LabelledTexts(texts, labels)


def test_ten_shot_trains_and_chooses_on_the_draw_only(monkeypatch):
    from aigc_core.retrieval.encoder import encode

    monkeypatch.delenv("BENCH_TEN_SHOT_ELSEWHERE", raising=False)
    train, test = make(14, "train"), make(5, "test")
    seen: list[dict] = []

    def spy(texts, labels, val_texts=None, val_labels=None, **kw):
        seen.append({"texts": list(texts), "val_texts": list(val_texts or []), "val_labels": list(val_labels or [])})
        return training.train_intent_classifier(texts, labels, val_texts, val_labels, **kw)

    recorder = types.SimpleNamespace(**{k: getattr(training, k) for k in dir(training) if not k.startswith("__")})
    recorder.train_intent_classifier = spy
    shots = bench_intent.ten_shot(recorder, train, test, encode(train.texts), encode(test.texts), [0, 1],
                                  data_hash="unit-test-no-cache")
    assert len(seen) == 2 and len(shots["ours"]) == 2 and all(0 <= a <= 1 for a in shots["ours"])
    test_texts = set(test.texts)
    for seed, call in zip([0, 1], seen, strict=True):
        draw = set(datasets.few_shot(train, 10, seed).texts)
        rows = set(call["texts"]) | set(call["val_texts"])
        assert rows == draw and not rows & test_texts
        assert sorted(call["val_labels"]) == sorted(PHRASES)  # one validation row per intent, from the shots
        assert not set(call["texts"]) & set(call["val_texts"])
    ts = bench_intent.ten_shot_results(shots, [0, 1])
    floor, _, lines = bench_intent.ten_shot_verdict(ts)
    assert floor == (ts["ours"]["median"] > ts["frozen_lr"]["median"]) and (floor or lines[0].startswith("FLOOR"))


@pytest.mark.parametrize("ours,frozen,floor", [(0.86, 0.85, True), (0.8532, 0.8532, False)])
def test_a_tie_with_the_frozen_baseline_misses_the_floor(ours, frozen, floor):
    ts = {"ours": {"median": ours}, "frozen_lr": {"median": frozen}}
    assert bench_intent.ten_shot_verdict(ts)[0] is floor
