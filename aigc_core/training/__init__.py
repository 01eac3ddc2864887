"""The one Trainer every model uses, its config and result, seeding and metrics."""
from __future__ import annotations

from aigc_core.training import metrics
from aigc_core.training.seed import set_seed
from aigc_core.training.trainer import TrainConfig, Trainer, TrainingError, TrainResult, move_to_device

__all__ = ["Trainer", "TrainConfig", "TrainResult", "TrainingError", "set_seed", "metrics", "move_to_device"]
