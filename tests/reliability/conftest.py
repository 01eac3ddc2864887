"""Shared by the reliability tests: a tiny sentiment classifier trained once per session."""
from __future__ import annotations

import pytest

HEADLINES = [
    ("{co} shares plunge after profit warning", "earnings", "negative"),
    ("{co} beats estimates as profit soars", "earnings", "positive"),
    ("{co} downgraded to junk as debt mounts", "credit", "negative"),
    ("{co} upgraded by rating agency on lower debt", "credit", "positive"),
    ("{co} to report results next Tuesday", "earnings", "neutral"),
    ("{co} prices a bond offering due 2031", "credit", "neutral"),
]


@pytest.fixture(scope="session")
def tiny_model():
    rows = [(t.format(co=co), topic, s) for co in ["Acme", "Globex", "Initech", "Hooli"] for t, topic, s in HEADLINES]
    texts, topics, sents = ([r[i] for r in rows] for i in range(3))
    from apps.sentiment import training

    model, _ = training.train_news_classifier(texts, topics, sents, texts[:6], topics[:6], sents[:6],
                                              topics=["earnings", "credit"], epochs=2)
    return model
