from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, artifacts: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "AIGC_ARTIFACTS_DIR": str(artifacts), "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "aigc_core", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def write_csv(path: Path) -> Path:
    phrases = {
        "billing": ["I was charged twice", "the invoice amount is wrong", "my payment failed", "refund the charge"],
        "shipping": ["my parcel has not arrived", "where is my delivery", "the courier lost my box", "tracking is stuck"],
    }
    rows = ["id,text,topic"]
    for i in range(4):
        for topic, texts in phrases.items():
            for j, t in enumerate(texts):
                rows.append(f'{topic[0]}{i}{j},"{t}, case {i}",{topic}')
    path.write_text("\n".join(rows) + "\n")
    return path


def test_it_runs_prep_train_eval_and_writes_an_artifact(tmp_path):
    art = tmp_path / "art"
    data = write_csv(tmp_path / "tickets.csv")
    prep = cli("prep", str(data), "--label-cols", "topic", "--id-col", "id", "--val-ratio", "0.25",
               "--test-ratio", "0.25", "--out", str(tmp_path / "prep"), artifacts=art)
    assert prep.returncode == 0, prep.stderr
    summary = json.loads(prep.stdout)
    assert summary["rows"] == 32 and summary["train"]["rows"] + summary["val"]["rows"] + summary["test"]["rows"] == 32
    assert (tmp_path / "prep" / "test.jsonl").exists()

    train = cli("train", "classifier", "--data", str(tmp_path / "prep"), "--name", "tickets", "--epochs", "4",
                "--lr", "3e-3", "--batch-size", "8", artifacts=art)
    assert train.returncode == 0, train.stderr
    out = json.loads(train.stdout)
    # Validation figures are named so; a 16-row set trains in head mode and says why.
    assert out["version"] == 1 and "topic/val_macro_f1" in out["metrics"] and "accuracy" not in out["metrics"]
    assert out["metrics"]["mode"] == "head" and "500" in out["metrics"]["mode_reason"]
    manifest = json.loads((art / "tickets" / "v0001" / "manifest.json").read_text())
    assert manifest["data_hash"] == summary["train"]["data_hash"] and "heads.safetensors" in manifest["files"]
    assert (art / "tickets" / "CURRENT").read_text().strip() == "v0001"

    # Without --data, eval uses the test split of the prep directory the version was trained on.
    ev = cli("eval", "--name", "tickets", artifacts=art)
    assert ev.returncode == 0, ev.stderr
    result = json.loads(ev.stdout)
    assert result["rows"] == summary["test"]["rows"] and result["metrics"]["topic/accuracy"] >= 0.75
    assert result["evaluated_on"].startswith("test split of")
    confusion = json.loads(Path(result["confusion_file"]).read_text())
    assert confusion["topic"]["labels"] == ["billing", "shipping"] and "matrix" not in ev.stdout


def test_it_evaluates_on_an_official_test_file_and_reports_unseen_labels(tmp_path):
    art = tmp_path / "art"
    data = write_csv(tmp_path / "train.csv")
    official = tmp_path / "test.tsv"
    official.write_text("text\tlabel\nwhere is my parcel\tshipping\nI was charged twice\tbilling\n"
                        "can I pay in bitcoin\tcrypto\n")
    renamed = official.read_text().replace("\tlabel\n", "\ttopic\n", 1)
    (tmp_path / "test_topic.tsv").write_text(renamed)
    prep = cli("prep", str(data), "--label-cols", "topic", "--test-file", str(tmp_path / "test_topic.tsv"),
               "--out", str(tmp_path / "prep"), artifacts=art)
    assert prep.returncode == 0, prep.stderr
    assert json.loads(prep.stdout)["test"]["rows"] == 3  # the official file, whole
    assert cli("train", "classifier", "--data", str(tmp_path / "prep"), "--name", "t", "--epochs", "4",
               "--lr", "3e-3", "--no-progress", artifacts=art).returncode == 0
    ev = cli("eval", "--name", "t", artifacts=art)
    assert ev.returncode == 0, ev.stderr
    m = json.loads(ev.stdout)["metrics"]
    # The label never seen in training counts as an error instead of failing the run.
    assert m["topic/unknown_labels"] == {"crypto": 1} and m["topic/rows"] == 3
    assert m["topic/accuracy"] <= 2 / 3
    # A label column the file lacks, or one named differently: an error, not "metrics": {}.
    bad = cli("eval", "--name", "t", "--data", str(official), "--label-cols", "topic", artifacts=art)
    assert bad.returncode == 1 and "missing column" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    other = cli("eval", "--name", "t", "--data", str(official), "--label-cols", "label", artifacts=art)
    assert other.returncode == 1 and "--label-cols topic" in other.stderr
    helptext = cli("prep", "--help", artifacts=art).stdout
    assert "--test-file" in helptext and "default: 0.1" in helptext


def test_it_trains_an_ngram_and_generates(tmp_path):
    pytest.importorskip("aigc_core.models.ngram")
    pytest.importorskip("aigc_core.generation")
    art = tmp_path / "art"
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in ["the cat sat on the mat",
                                                                      "the dog sat on the log"] * 5))
    assert cli("train", "ngram", "--data", str(corpus), "--name", "lm", "--order", "2", artifacts=art).returncode == 0
    gen = cli("generate", "--name", "lm", "--prompt", "the", "--greedy", "--max-tokens", "5", artifacts=art)
    assert gen.returncode == 0, gen.stderr
    assert gen.stdout.strip().split()[0] in {"cat", "dog"}


@pytest.mark.parametrize("args", [
    ("prep", "does-not-exist.csv", "--out", "x"),
    ("train", "classifier", "--data", "does-not-exist.csv", "--name", "x"),
    ("train", "nonsense"),
    ("eval", "--name", "never-trained"),
])
def test_it_exits_non_zero_with_one_line_on_bad_input(tmp_path, args):
    res = cli(*args, artifacts=tmp_path / "art")
    assert res.returncode != 0
    assert len(res.stderr.strip().splitlines()) == 1 and "error" in res.stderr


def test_it_names_the_line_of_a_malformed_csv(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text('text,topic\nfine,a\n"unterminated,b\n')
    res = cli("prep", str(bad), "--label-cols", "topic", "--out", str(tmp_path / "p"), artifacts=tmp_path / "art")
    assert res.returncode == 1 and "bad.csv:3" in res.stderr and len(res.stderr.strip().splitlines()) == 1
