from __future__ import annotations

import json
from collections import Counter

import pytest

from aigc_core.data import (
    DataError,
    SubwordTokenizer,
    TextRecord,
    clean_text,
    dataset_hash,
    load_csv,
    load_jsonl,
    save_jsonl,
    stratified_split,
    time_split,
    train_tokenizer,
)


def write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def test_it_loads_csv_rows_as_clean_records(tmp_path):
    f = write(tmp_path / "d.csv", 'id,text,topic,when\n7,"  hello\x00  world\n again ",billing,2024-01-02T03:04:05\n'
              "8,second row,,1700000000\n9,   ,refund,\n")
    recs = load_csv(f, text_col="text", label_cols=["topic"], id_col="id", time_col="when")
    assert [r.id for r in recs] == ["7", "8"]  # the blank text row is skipped
    assert recs[0].text == "hello world again"
    assert recs[0].labels == {"topic": "billing"} and recs[1].labels == {"topic": None}
    assert recs[0].timestamp.year == 2024 and recs[1].timestamp.tzinfo is not None


def test_it_names_the_file_and_line_of_a_malformed_csv_row(tmp_path):
    f = write(tmp_path / "bad.csv", "text,label\nfine,a\nalso fine,b\ntoo,many,fields\n")
    with pytest.raises(DataError) as err:
        load_csv(f, label_cols=["label"])
    assert err.value.line == 4 and "bad.csv:4" in str(err.value)
    with pytest.raises(DataError, match=r"missing column"):
        load_csv(f, text_col="body")


def test_it_names_the_file_and_line_of_a_malformed_jsonl_row(tmp_path):
    f = write(tmp_path / "bad.jsonl", '{"text": "ok", "label": "a"}\n\n{"text": "broken", \n')
    with pytest.raises(DataError) as err:
        load_jsonl(f, label_keys=["label"])
    assert err.value.line == 3 and str(f) in str(err.value)
    g = write(tmp_path / "ts.jsonl", '{"text": "ok", "timestamp": "yesterday"}\n')
    with pytest.raises(DataError, match=r"ts.jsonl:1"):
        load_jsonl(g)


def test_it_round_trips_jsonl_and_hashes_content(tmp_path):
    recs = load_csv(write(tmp_path / "d.csv", "text,a,b\nx one,p,\ny two,q,r\n"), label_cols=["a", "b"])
    out = save_jsonl(recs, tmp_path / "out.jsonl")
    back = load_jsonl(out)
    assert [(r.id, r.text, r.labels) for r in back] == [(r.id, r.text, r.labels) for r in recs]
    assert dataset_hash(back) == dataset_hash(recs)
    changed = [TextRecord(r.id, r.text + "!", r.labels) for r in recs]
    assert dataset_hash(changed) != dataset_hash(recs)
    assert json.loads(out.read_text().splitlines()[0])["labels"] == {"a": "p", "b": None}
    from datetime import UTC, datetime

    full = [TextRecord("r1", "dated", {"a": "p"}, datetime(2024, 5, 1, 12, tzinfo=UTC), {"source": "feed"})]
    assert load_jsonl(save_jsonl(full, tmp_path / "full.jsonl")) == full


def test_it_cleans_and_caps_text():
    assert clean_text("a\u200b b\t\tc\r\n") == "a b c"
    capped = clean_text("word " * 100, max_chars=22)
    assert len(capped) <= 22 and capped.endswith("word")


def test_it_splits_stratified_and_by_time():
    recs = [TextRecord(str(i), f"t{i}", {"y": "rare" if i < 5 else "common"}) for i in range(50)]
    train, val, test = stratified_split(recs, "y", val_ratio=0.2, test_ratio=0.2, seed=1)
    assert len(train) + len(val) + len(test) == 50
    for part in (train, val, test):
        assert Counter(r.labels["y"] for r in part)["rare"] >= 1
    assert not {r.id for r in train} & {r.id for r in val}
    assert stratified_split(recs, "y", seed=1) == stratified_split(recs, "y", seed=1)

    from datetime import UTC, datetime, timedelta

    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    dated = [TextRecord(str(i), "x", timestamp=t0 + timedelta(days=(i * 7) % 10)) for i in range(10)]
    tr, va, te = time_split(dated, val_ratio=0.2, test_ratio=0.2)
    assert max(r.timestamp for r in tr) <= min(r.timestamp for r in va)
    assert max(r.timestamp for r in va) <= min(r.timestamp for r in te)
    with pytest.raises(DataError):
        time_split([TextRecord("1", "x")])


def test_it_trains_saves_and_loads_a_bpe_tokenizer(tmp_path):
    texts = ["the cat sat on the mat", "the dog sat on the log", "a cat and a dog"] * 5
    tok = train_tokenizer(texts, vocab_size=300, min_frequency=1)
    ids = tok.encode("the cat sat, naïvely!", add_special=True)
    assert ids[0] == tok.bos_id and ids[-1] == tok.eos_id
    assert tok.decode(ids) == "the cat sat, naïvely!"
    assert len(tok.encode("the cat")) < len("the cat")  # merges learnt
    again = SubwordTokenizer.load(tok.save(tmp_path / "tok"))
    assert again.encode("the dog") == tok.encode("the dog") and again.vocab_size == tok.vocab_size
