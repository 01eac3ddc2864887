"""Recommend fixtures: a tiny model trained once per session on data whose tastes we control."""
from __future__ import annotations

from datetime import timedelta

import pytest

from tests.apps.recommend.factories import START, catalogue, simulate


@pytest.fixture(scope="session")
def trained():
    """(items, events, artifacts, metrics): trained once, no database involved."""
    from apps.recommend.training import RecommendTrainConfig, train_and_evaluate

    items = catalogue()
    events = simulate(items)
    artifacts, metrics = train_and_evaluate(items, events, RecommendTrainConfig(epochs=3, refit=False))
    return items, events, artifacts, metrics


@pytest.fixture
def model_registry(settings, tmp_path, trained):
    """The session's model published as recommend.model in a fresh registry."""
    from aigc_core.registry import Registry
    from apps.recommend import services

    settings.AIGC_ARTIFACTS_DIR = tmp_path / "artifacts"
    _, _, artifacts, metrics = trained
    Registry(settings.AIGC_ARTIFACTS_DIR).save(services.MODEL_NAME, writer=artifacts.save, metrics=metrics)
    services.reset_serving_cache()
    yield settings.AIGC_ARTIFACTS_DIR
    services.reset_serving_cache()


def make_item(external_id: str, title: str, category: str = "", price: float | None = 10.0, **extra):
    from apps.recommend.models import Item

    return Item.objects.create(external_id=external_id, title=title, category=category, price=price,
                               created_at=START - timedelta(days=40), **extra)


def add_events(user_id: str, item_ids: list[str], kind: str = "click", start_day: int = 50) -> None:
    from apps.recommend import services

    rows = [{"event_id": f"{user_id}-{kind}-{n}-{i}", "user_id": user_id, "item_id": i, "kind": kind,
             "at": (START + timedelta(days=start_day, minutes=n)).isoformat()} for n, i in enumerate(item_ids)]
    out = services.record_events(rows)
    assert out["rejected"] == 0, out


@pytest.fixture
def shop(db, model_registry):
    """The factory catalogue and its simulated events in the database, with the model published."""
    from apps.recommend import services

    items = catalogue()
    services.upsert_items([{**it, "external_id": it["id"]} for it in items])
    evs = simulate(items, n_users=40, per_user=10, seed=3)
    rows = [{"event_id": e["id"], "user_id": e["user"], "item_id": e["item"], "kind": e["kind"],
             "at": e["at"].isoformat()} for e in evs]
    for start in range(0, len(rows), 1000):
        services.record_events(rows[start:start + 1000])
    return items
