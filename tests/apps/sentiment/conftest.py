"""Small factories for the sentiment tests."""
from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

_seq = itertools.count(1)
T0 = datetime(2026, 10, 1, tzinfo=UTC)


def news(headline: str | None = None, **kw) -> dict:
    n = next(_seq)
    return {"url": kw.pop("url", f"https://news.example.com/{n}"),
            "headline": headline or f"Headline number {n}",
            "published_at": kw.pop("published_at", (T0 + timedelta(minutes=n)).isoformat()), **kw}


def make_source(name="wire", kind="api", **kw):
    from apps.sentiment.models import NewsSource

    return NewsSource.objects.get_or_create(name=name, defaults={"kind": kind, **kw})[0]


def make_item(headline=None, *, topic="credit", sentiment="negative", published_at=None, tickers=(), source=None,
              classified=True):
    """A stored item, classified (without a model) and counted in the trends."""
    from apps.sentiment.models import Classification, NewsItem
    from apps.sentiment.services import apply_trends, content_hash

    n = next(_seq)
    headline = headline or f"Item {n} about {topic}"
    item = NewsItem.objects.create(
        source=source or make_source(), url=f"https://news.example.com/item/{n}", headline=headline,
        published_at=published_at or T0, content_hash=content_hash(headline + str(n)), tickers=list(tickers))
    if classified:
        Classification.objects.create(item=item, topic=topic, sentiment=sentiment, topic_confidence=0.9,
                                      sentiment_confidence=0.8, predicted_topic=topic,
                                      predicted_sentiment=sentiment)
        apply_trends([(item.published_at, topic, sentiment, item.tickers)])
    return item


@pytest.fixture
def source(db):
    return make_source()
