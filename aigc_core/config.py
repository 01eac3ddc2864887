"""Engine-wide settings shared by the CLI and the apps' engine wiring.

Each model's own config lives next to it (one model, one file), so a reader sees
a model and its knobs together:

- ``aigc_core.training.TrainConfig``: epochs, LR, warm-up, AMP, early stopping...
- ``aigc_core.models.classifier.ClassifierConfig`` / ``BiGRUConfig``
- ``aigc_core.models.language_model.LanguageModelConfig``, ``aigc_core.models.ngram.NgramConfig``
- ``aigc_core.generation.GenerationConfig``; ``aigc_core.retrieval.index.IndexConfig``

What lives here is what several of them share.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ARTIFACTS_ENV = "AIGC_ARTIFACTS_DIR"


def artifacts_dir() -> Path:
    """Where the registry keeps versioned models: $AIGC_ARTIFACTS_DIR, else ./var/artifacts."""
    return Path(os.environ.get(ARTIFACTS_ENV) or Path("var") / "artifacts")


@dataclass
class PrepConfig:
    split: str = "stratified"  # stratified (on the first label column) | time (needs a time column)
    val_ratio: float = 0.1  # enough rows to early-stop on without starving small data sets
    test_ratio: float = 0.1  # held out for `eval`; 0 when the caller evaluates elsewhere
    seed: int = 1234  # the same seed as TrainConfig, so one seed repeats the whole pipeline
    max_chars: int = 2000  # texts are cut to this after cleaning (~4x MiniLM's 128-token window)

    def __post_init__(self) -> None:
        if self.split not in {"stratified", "time"}:
            raise ValueError(f"split must be 'stratified' or 'time', not {self.split!r}")
