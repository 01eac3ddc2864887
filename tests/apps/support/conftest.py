"""Train one tiny support bot per test session and publish it in a registry."""
from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="session")
def bot_artifacts(tmp_path_factory):
    from aigc_core.registry import Registry
    from apps.support.building import build_bot
    from apps.support.services import MODEL_NAME
    from tests.apps.support.factories import training_lists

    root = tmp_path_factory.mktemp("support-artifacts")
    built = tmp_path_factory.mktemp("support-bot")
    pairs, templates, chunks = training_lists()
    metrics = build_bot(built, pairs, templates, chunks, intent_epochs=8, lm_epochs=1)
    Registry(root).save(MODEL_NAME, writer=lambda d: shutil.copytree(built, d, dirs_exist_ok=True), metrics=metrics)
    return root, metrics


@pytest.fixture
def trained_bot(bot_artifacts, settings):
    """The session's bot is the promoted "support.bot" for this test."""
    from apps.common import engine

    root, metrics = bot_artifacts
    settings.AIGC_ARTIFACTS_DIR = root
    engine.forget("support.bot")
    yield metrics
    engine.forget("support.bot")


@pytest.fixture
def artifacts(settings, tmp_path):
    """An empty registry of this test's own: versions trained here start from nothing."""
    from apps.common import engine
    from apps.support.services import MODEL_NAME

    settings.AIGC_ARTIFACTS_DIR = tmp_path
    engine.forget(MODEL_NAME)
    yield tmp_path
    engine.forget(MODEL_NAME)
