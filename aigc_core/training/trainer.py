"""The one Trainer: AdamW, warm-up then decay, gradient clipping, mixed precision,
checkpoints with resume, early stopping that restores the best weights, tqdm
progress and an ``on_progress(pct, msg)`` callback for the apps' Job records.

Models bring only a ``loss_fn(model, batch) -> scalar tensor`` (the batch is
already on the device) and optionally an ``eval_fn(model, val_loader) -> dict``.
"""
from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aigc_core.device import DeviceInfo, autocast, get_device
from aigc_core.training.seed import set_seed

LossFn = Callable[[nn.Module, Any], torch.Tensor]
EvalFn = Callable[[nn.Module, Iterable], Mapping[str, float]]
ProgressFn = Callable[[float, str], None]

CHECKPOINT_FILE = "last.pt"


class TrainingError(RuntimeError):
    """Training cannot go on (diverged loss, bad monitor name, empty loader...)."""


@dataclass
class TrainConfig:
    epochs: int = 3
    batch_size: int = 32  # read by the code that builds the loaders; the Trainer takes loaders as given
    lr: float = 5e-4  # suits small heads and from-scratch models; fine-tuning MiniLM wants ~5e-5
    weight_decay: float = 0.01  # AdamW decoupled decay; never applied to biases and norms
    warmup_ratio: float = 0.1  # share of all steps spent ramping the LR up from 0
    schedule: str = "cosine"  # after warm-up: cosine | linear (both end at 0) | constant
    grad_clip: float = 1.0  # max global grad norm; 0 turns clipping off
    seed: int = 1234
    amp: bool = True  # autocast where the device supports it (bf16 on AMX CPUs, fp16/bf16 on CUDA)
    patience: int = 2  # epochs without improvement before stopping; 0 never stops early
    monitor: str = "val_loss"  # falls back to train_loss when there is no validation loader
    mode: str = "min"  # min | max: which direction of `monitor` is better
    min_delta: float = 0.0  # smallest change that counts as an improvement
    checkpoint_dir: str | Path | None = None  # save after every epoch and resume from it if present
    max_steps: int | None = None  # hard cap on optimizer steps across all epochs
    progress_bar: bool = True

    def __post_init__(self) -> None:
        if self.mode not in {"min", "max"}:
            raise ValueError(f"mode must be 'min' or 'max', not {self.mode!r}")
        if self.schedule not in {"cosine", "linear", "constant"}:
            raise ValueError(f"schedule must be cosine, linear or constant, not {self.schedule!r}")
        if self.epochs < 1:
            raise ValueError("epochs must be at least 1")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError("warmup_ratio must be in [0, 1)")


@dataclass
class TrainResult:
    history: list[dict[str, float]] = field(default_factory=list)  # one dict per epoch
    best_metrics: dict[str, float] = field(default_factory=dict)
    best_epoch: int = 0  # 1-based; 0 when no epoch ran
    wall_s: float = 0.0
    steps: int = 0  # optimizer steps, including those of a resumed run
    stopped_early: bool = False
    resumed_from_epoch: int = 0


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Tensors anywhere inside dicts, tuples and lists go to ``device``; the rest is kept."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: move_to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(move_to_device(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to_device(v, device) for v in batch)
    return batch


def _lr_lambda(schedule: str, warmup: int, total: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if schedule == "linear":
            return max(0.0, 1.0 - progress)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def _param_groups(model: nn.Module, weight_decay: float, lr: float, groups: list[dict] | None) -> list[dict]:
    # Decay matrices only: decaying biases and norm gains just hurts small models.
    out = []
    for group in groups or [{"params": model.parameters()}]:
        decay, no_decay = [], []
        for p in group["params"]:
            if p.requires_grad:
                (decay if p.ndim >= 2 else no_decay).append(p)
        g_lr = group.get("lr", lr)
        out += [{"params": decay, "weight_decay": weight_decay, "lr": g_lr},
                {"params": no_decay, "weight_decay": 0.0, "lr": g_lr}]
    return [g for g in out if g["params"]]


def _trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of what training can change: trainable parameters and buffers (e.g. norm
    statistics). Frozen weights are skipped: a frozen 22M-parameter encoder would otherwise
    be copied at every improvement."""
    out = {}
    for k, v in model.state_dict(keep_vars=True).items():
        if not isinstance(v, nn.Parameter) or v.requires_grad:
            out[k] = v.detach().to("cpu", copy=True)
    return out


class Trainer:
    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig | None = None,
        loss_fn: LossFn | None = None,
        eval_fn: EvalFn | None = None,
        on_progress: ProgressFn | None = None,
        device: DeviceInfo | None = None,
        param_groups: list[dict] | None = None,
    ):
        """``param_groups``: optional [{"params": [...], "lr": ...}] for per-part learning
        rates (a fine-tuned encoder wants a smaller LR than a fresh head); the schedule
        scales every group alike."""
        if loss_fn is None:
            raise TypeError("Trainer needs loss_fn(model, batch) -> scalar loss tensor")
        self.model = model
        self.config = config or TrainConfig()
        self.loss_fn = loss_fn
        self.eval_fn = eval_fn
        self.on_progress = on_progress
        self.param_groups = param_groups
        self.device = device or get_device()
        self.amp = self.config.amp and self.device.amp_dtype is not None
        # fp16 overflows without loss scaling; bf16 has fp32's range and needs none.
        self.scaler = (
            torch.amp.GradScaler(self.device.device.type)
            if self.amp and self.device.amp_dtype == torch.float16
            else None
        )

    # -- public ------------------------------------------------------------
    def fit(self, train_loader: Iterable, val_loader: Iterable | None = None) -> TrainResult:
        cfg = self.config
        started = time.perf_counter()
        set_seed(cfg.seed)
        model = self.model.to(self.device.device)
        params = _param_groups(model, cfg.weight_decay, cfg.lr, self.param_groups)
        if not params:
            raise TrainingError("the model has no trainable parameters")
        try:
            steps_per_epoch = len(train_loader)  # type: ignore[arg-type]
        except TypeError as exc:
            raise TrainingError("train_loader must have a length (a DataLoader or a list of batches)") from exc
        if steps_per_epoch == 0:
            raise TrainingError("train_loader is empty: no data to train on")
        total_steps = steps_per_epoch * cfg.epochs
        if cfg.max_steps is not None:
            total_steps = min(total_steps, cfg.max_steps)
        warmup = int(cfg.warmup_ratio * total_steps)
        optimizer = torch.optim.AdamW(params, lr=cfg.lr)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg.schedule, warmup, total_steps))

        result = TrainResult()
        monitor = cfg.monitor if val_loader is not None else "train_loss"
        best_value: float | None = None
        best_state: dict[str, torch.Tensor] | None = None
        bad_epochs = 0
        start_epoch = 0
        ckpt_dir = Path(cfg.checkpoint_dir) if cfg.checkpoint_dir else None
        if ckpt_dir and (ckpt_dir / CHECKPOINT_FILE).exists():
            state = torch.load(ckpt_dir / CHECKPOINT_FILE, map_location=self.device.device, weights_only=False)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            if self.scaler is not None and state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
            start_epoch = state["epoch"]
            result.history = state["history"]
            result.steps = state["steps"]
            best_value, bad_epochs = state["best_value"], state["bad_epochs"]
            result.best_epoch, result.best_metrics = state["best_epoch"], state["best_metrics"]
            best_state = state["best_state"]
            torch.set_rng_state(state["rng_cpu"])
            result.resumed_from_epoch = start_epoch
            self._report(100.0 * start_epoch / cfg.epochs, f"resumed after epoch {start_epoch}")

        for epoch in range(start_epoch, cfg.epochs):
            if cfg.max_steps is not None and result.steps >= cfg.max_steps:
                break
            train_loss = self._train_epoch(model, train_loader, optimizer, scheduler, epoch, result)
            row: dict[str, float] = {"epoch": epoch + 1, "train_loss": train_loss, "lr": scheduler.get_last_lr()[0]}
            if val_loader is not None:
                row.update({k: float(v) for k, v in self._evaluate(model, val_loader).items()})
                if monitor not in row:
                    raise TrainingError(
                        f"monitor {monitor!r} is not among the validation metrics {sorted(row)}"
                    )
            result.history.append(row)

            value = row[monitor]
            improved = best_value is None or (
                value < best_value - cfg.min_delta if cfg.mode == "min" else value > best_value + cfg.min_delta
            )
            if improved:
                best_value, bad_epochs = value, 0
                result.best_epoch, result.best_metrics = epoch + 1, dict(row)
                best_state = _trainable_state(model)
            else:
                bad_epochs += 1
            summary = f"epoch {epoch + 1}/{cfg.epochs} " + " ".join(
                f"{k}={v:.4g}" for k, v in row.items() if k != "epoch" and isinstance(v, (int, float)))
            if cfg.progress_bar:
                from tqdm.auto import tqdm

                # The bar is transient; keep one line per epoch. stderr, like the bar: stdout is for results.
                tqdm.write(summary + (" *" if improved else ""), file=sys.stderr)
            self._report(100.0 * (epoch + 1) / cfg.epochs, summary)
            stop = cfg.patience > 0 and bad_epochs >= cfg.patience
            if ckpt_dir:
                self._save_checkpoint(
                    ckpt_dir,
                    {
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "scaler": self.scaler.state_dict() if self.scaler else None,
                        "epoch": epoch + 1,
                        "history": result.history,
                        "steps": result.steps,
                        "best_value": best_value,
                        "bad_epochs": bad_epochs,
                        "best_epoch": result.best_epoch,
                        "best_metrics": result.best_metrics,
                        "best_state": best_state,
                        "rng_cpu": torch.get_rng_state(),
                        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
                    },
                )
            if stop:
                result.stopped_early = True
                break

        if best_state is not None:
            model.load_state_dict(best_state, strict=False)
        result.wall_s = time.perf_counter() - started
        self._report(100.0, f"done: best epoch {result.best_epoch}, {monitor}={best_value:.4g}"
                     if best_value is not None else "done")
        return result

    # -- internals ---------------------------------------------------------
    def _train_epoch(self, model, loader, optimizer, scheduler, epoch: int, result: TrainResult) -> float:
        cfg = self.config
        model.train()
        total, count = 0.0, 0
        n_batches = len(loader)
        batches = loader
        bar = None
        if cfg.progress_bar:
            from tqdm.auto import tqdm

            bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", leave=False)
            batches = bar
        for i, batch in enumerate(batches):
            if cfg.max_steps is not None and result.steps >= cfg.max_steps:
                break
            batch = move_to_device(batch, self.device.device)
            with autocast(self.device, enabled=self.amp):
                loss = self.loss_fn(model, batch)
            if not torch.isfinite(loss.detach()):
                raise TrainingError(
                    f"loss became {loss.item()} at epoch {epoch + 1}, step {result.steps + 1}: "
                    "lower the learning rate or check the data"
                )
            optimizer.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.unscale_(optimizer)
                self._clip(model)
                self.scaler.step(optimizer)
                self.scaler.update()
            else:
                loss.backward()
                self._clip(model)
                optimizer.step()
            scheduler.step()
            result.steps += 1
            total += float(loss.detach())
            count += 1
            if bar is not None:
                bar.set_postfix(loss=f"{total / count:.4f}")
            if self.on_progress:  # every step; the apps' Job callback throttles its writes
                pct = 100.0 * (epoch + (i + 1) / n_batches) / cfg.epochs
                self._report(pct, f"epoch {epoch + 1}/{cfg.epochs} loss={total / count:.4f}")
        if bar is not None:
            bar.close()
        return total / max(1, count)

    def _clip(self, model: nn.Module) -> None:
        if self.config.grad_clip and self.config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(
                [p for p in model.parameters() if p.grad is not None], self.config.grad_clip
            )

    @torch.no_grad()
    def _evaluate(self, model: nn.Module, val_loader: Iterable) -> Mapping[str, float]:
        model.eval()
        try:
            with autocast(self.device, enabled=self.amp):
                if self.eval_fn is not None:
                    return self.eval_fn(model, val_loader)
                total, count = 0.0, 0
                for batch in val_loader:
                    total += float(self.loss_fn(model, move_to_device(batch, self.device.device)))
                    count += 1
                return {"val_loss": total / max(1, count)}
        finally:
            model.train()

    def _report(self, pct: float, msg: str) -> None:
        if self.on_progress is not None:
            self.on_progress(max(0.0, min(100.0, pct)), msg)

    @staticmethod
    def _save_checkpoint(ckpt_dir: Path, state: dict) -> None:
        # tmp + fsync + replace: a crash mid-save keeps the previous checkpoint intact.
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        tmp = ckpt_dir / f".{CHECKPOINT_FILE}.tmp{os.getpid()}"
        with open(tmp, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, ckpt_dir / CHECKPOINT_FILE)

