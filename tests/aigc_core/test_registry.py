from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors.torch import load_file, save_file

from aigc_core.registry import ArtifactCorrupt, ArtifactNotFound, Registry


def tiny_model(seed: int) -> torch.nn.Linear:
    torch.manual_seed(seed)
    return torch.nn.Linear(3, 2)


def writer_for(model: torch.nn.Module):
    def write(d):
        save_file(model.state_dict(), str(d / "model.safetensors"))
        (d / "config.json").write_text(json.dumps({"in": 3, "out": 2}))

    return write


def load_model(path) -> torch.nn.Linear:
    m = torch.nn.Linear(3, 2)
    m.load_state_dict(load_file(str(path / "model.safetensors")))
    return m


def test_it_saves_and_loads_identical_outputs(tmp_path):
    reg = Registry(tmp_path)
    model = tiny_model(0)
    v = reg.save("clf", writer_for(model), metrics={"acc": 0.9}, data_hash="abc", config={"lr": 1})
    assert v.version == 1 and v.tag == "v0001" and reg.current("clf").version == 1
    x = torch.randn(5, 3)
    loaded = load_model(reg.load_path("clf"))
    assert torch.equal(model(x), loaded(x))
    manifest = json.loads((v.path / "manifest.json").read_text())
    assert manifest["metrics"] == {"acc": 0.9} and manifest["data_hash"] == "abc"
    assert set(manifest["files"]) == {"model.safetensors", "config.json"}


def test_it_promotes_and_rolls_back(tmp_path):
    reg = Registry(tmp_path)
    reg.save("clf", writer_for(tiny_model(0)))
    v2 = reg.save("clf", writer_for(tiny_model(1)), promote=False)
    assert reg.current("clf").version == 1 and [v.version for v in reg.versions("clf")] == [1, 2]
    reg.promote("clf", v2.version)
    assert reg.current("clf").version == 2
    assert reg.rollback("clf").version == 1 and reg.current("clf").version == 1
    with pytest.raises(ArtifactNotFound):
        reg.rollback("clf")
    with pytest.raises(ArtifactNotFound):
        reg.load_path("nothing-here")


def test_it_keeps_the_previous_version_when_a_write_crashes(tmp_path):
    reg = Registry(tmp_path)
    good = tiny_model(0)
    reg.save("clf", writer_for(good))

    def crashing_writer(d):
        save_file(tiny_model(1).state_dict(), str(d / "model.safetensors"))
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        reg.save("clf", crashing_writer)
    # A process killed mid-write leaves its temp dir behind; readers must ignore it.
    leftover = tmp_path / "clf" / ".tmp-killed"
    leftover.mkdir()
    (leftover / "model.safetensors").write_bytes(b"half a file")
    assert [v.version for v in reg.versions("clf")] == [1]
    x = torch.randn(4, 3)
    assert torch.equal(load_model(reg.load_path("clf"))(x), good(x))
    assert reg.save("clf", writer_for(tiny_model(2))).version == 2
    assert leftover.exists()  # fresh debris may belong to a live writer: kept
    old = 1_000_000_000
    os.utime(leftover, (old, old))
    reg.save("clf", writer_for(tiny_model(3)))
    assert not leftover.exists()


def test_it_detects_corruption_and_falls_back(tmp_path):
    reg = Registry(tmp_path)
    reg.save("clf", writer_for(tiny_model(0)))
    v2 = reg.save("clf", writer_for(tiny_model(1)))
    weights = v2.path / "model.safetensors"
    with open(weights, "r+b") as fh:
        fh.truncate(os.path.getsize(weights) // 2)
    with pytest.raises(ArtifactCorrupt, match="model.safetensors"):
        reg.load_path("clf")
    path, mv, warning = reg.load_path_with_fallback("clf")
    assert mv.version == 1 and path == mv.path and "v0002" in warning
    with pytest.raises(ArtifactCorrupt):
        reg.promote("clf", 2)
    assert reg.rollback("clf").version == 1 and reg.load_path_with_fallback("clf")[2] is None

    v3 = reg.save("clf", writer_for(tiny_model(2)))
    (v3.path / "manifest.json").write_text("{not json")
    path, mv, warning = reg.load_path_with_fallback("clf")
    assert mv.version == 1 and "v0003" in warning


def test_it_keeps_a_bounded_number_of_versions_but_never_the_promoted_one(tmp_path):
    reg = Registry(tmp_path, keep_versions=2)
    reg.save("clf", writer_for(tiny_model(1)))  # v1, promoted
    reg.save("clf", writer_for(tiny_model(2)), promote=False)
    reg.save("clf", writer_for(tiny_model(3)), promote=False)
    # v1 is older than the newest two but promoted: it stays; nothing else is over the bound.
    assert [mv.version for mv in reg.versions("clf")] == [1, 2, 3]
    reg.promote("clf", 3)
    reg.save("clf", writer_for(tiny_model(4)), promote=False)
    assert [mv.version for mv in reg.versions("clf")] == [3, 4]
    assert not [p for p in (tmp_path / "clf").iterdir() if p.name.startswith(".tmp")]  # no leftovers
    usage = reg.disk_usage()
    sizes = usage["models"]["clf"]["versions"]
    assert set(sizes) == {"v0003", "v0004"} and all(n > 0 for n in sizes.values())
    assert usage["total"] == usage["models"]["clf"]["total"] == sum(sizes.values())
    reg.save("clf", writer_for(tiny_model(5)))
    assert [mv.version for mv in reg.versions("clf")] == [4, 5]  # numbers are never reused
