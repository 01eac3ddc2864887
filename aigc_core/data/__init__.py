"""Data in: typed records, CSV/JSONL loaders, cleaning, splits, content hashes, BPE."""
from __future__ import annotations

from aigc_core.data.cleaning import clean_label, clean_text
from aigc_core.data.loaders import load_csv, load_jsonl, load_records, parse_timestamp, save_jsonl
from aigc_core.data.records import DataError, TextRecord, dataset_hash
from aigc_core.data.splits import Split, stratified_split, time_split
from aigc_core.data.tokenizer import SubwordTokenizer, train_tokenizer

__all__ = [
    "DataError", "TextRecord", "dataset_hash", "clean_text", "clean_label", "load_csv", "load_jsonl",
    "load_records", "save_jsonl", "parse_timestamp", "Split", "stratified_split", "time_split",
    "SubwordTokenizer", "train_tokenizer",
]
