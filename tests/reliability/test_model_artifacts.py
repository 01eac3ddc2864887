"""Fault: the promoted model's files are cut short or missing on disk.

The loader is only ever handed a version whose every file matches the SHA-256
in its manifest, so a half-written or truncated weights file is never served:
the newest intact older version is, and the app's dashboard says so. With no
intact version left, classification stops with a clear error instead of
guessing. (Sentiment's classifier stands in for all three apps: they load
through the same ``apps.common.engine.load_current``.)"""
from __future__ import annotations

import shutil

import pytest

from aigc_core.registry import ArtifactCorrupt
from apps.common import engine
from apps.sentiment import conf, services
from apps.sentiment.models import Classification, NewsItem, NewsSource


@pytest.fixture
def two_versions(tiny_model, settings, tmp_path):
    settings.AIGC_ARTIFACTS_DIR = tmp_path / "artifacts"
    engine.forget()
    reg = engine.registry()
    v1 = reg.save(conf.MODEL_NAME, writer=tiny_model.save, metrics={"n": 1})
    v2 = reg.save(conf.MODEL_NAME, writer=tiny_model.save, metrics={"n": 2})
    assert reg.current(conf.MODEL_NAME).version == v2.version == 2
    yield reg, v1, v2
    engine.forget()


def _largest_file(mv):
    return max((mv.path / rel for rel in mv.files), key=lambda p: p.stat().st_size)


def _pending_item():
    src = NewsSource.objects.create(name="wire")
    return NewsItem.objects.create(source=src, url="https://n.example.com/1", headline="Acme downgraded to junk",
                                   published_at="2026-10-01T00:00:00Z", content_hash="h1")


@pytest.mark.django_db
def test_it_serves_the_last_good_version_when_the_promoted_weights_are_truncated(two_versions, staff_client):
    reg, v1, v2 = two_versions
    weights = _largest_file(v2)
    with open(weights, "r+b") as fh:  # half a file, as a crashed copy or a full disk leaves it
        fh.truncate(weights.stat().st_size // 2)
    engine.forget()
    _pending_item()
    out = services.classify_pending()
    assert out["model_version"] == 1
    assert Classification.objects.get().model_version == 1
    loaded = services.load_model()
    assert loaded.version == 1 and "v0002 is unusable" in loaded.warning
    page = staff_client.get("/sentiment/")
    assert page.status_code == 200
    assert b"data-model-warning" in page.content and b"unusable" in page.content
    # Restored (e.g. re-copied): the banner goes away and v2 is served again.
    shutil.copyfile(_largest_file(v1), weights)
    engine.forget()
    assert services.load_model().version == 2 and services.load_model().warning is None
    assert b"data-model-warning" not in staff_client.get("/sentiment/").content


@pytest.mark.django_db
def test_it_falls_back_when_the_promoted_version_directory_is_missing(two_versions, staff_client):
    reg, v1, v2 = two_versions
    shutil.rmtree(v2.path)
    engine.forget()
    loaded = services.load_model()
    assert loaded.version == 1 and loaded.warning
    assert b"data-model-warning" in staff_client.get("/sentiment/").content


@pytest.mark.django_db
def test_it_refuses_to_classify_when_no_version_is_intact(two_versions, staff_client):
    reg, v1, v2 = two_versions
    for mv in (v1, v2):
        _largest_file(mv).write_bytes(b"\0" * 10)
    engine.forget()
    _pending_item()
    with pytest.raises(ArtifactCorrupt, match="no earlier version"):
        services.classify_pending()
    assert not Classification.objects.exists()
    page = staff_client.get("/sentiment/")
    assert page.status_code == 200 and b"nothing can be served" in page.content
