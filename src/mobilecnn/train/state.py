"""What a run carries from epoch to epoch (:class:`RunState`) and what it returns
(:class:`TrainResult`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import TrainConfig
from .distributed import DistContext
from .ema import ModelEma
from .schedule import SchedulePlan
from .step import TrainStep

__all__ = ["RunState", "TrainResult"]


@dataclass
class TrainResult:
    """Where a finished run put things, and its figures."""

    out_dir: Path
    last_checkpoint: Path
    best_checkpoint: Path
    metrics_path: Path
    plots: list[Path]
    history: list[dict[str, Any]]
    best_val_top1: float
    rank_checksums: list[str] = field(default_factory=list)
    """SHA-256 of the model state on each process after training (all equal under DDP)."""
    checkpoint_written: bool = True
    """False when a resumed run had nothing left to train (its checkpoints are unchanged)."""

    @property
    def final(self) -> dict[str, Any]:
        """The last epoch's metrics row."""
        return self.history[-1]


@dataclass
class RunState:
    """The state one run carries from epoch to epoch.

    The first block is fixed when the run starts; the second is the position and the record
    that a checkpoint saves and a resume restores.
    """

    config: TrainConfig
    ctx: DistContext
    step: TrainStep
    loader: Any
    val_split: Any
    normalize: Any
    model_kwargs: dict[str, Any]
    classes: list[str]
    class_names: list[str]
    image_size: int
    mean: list[float]
    std: list[float]
    plan: SchedulePlan
    out_dir: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    best_top1: float = -math.inf
    start_epoch: int = 0
    start_step: int = 0
    partial: torch.Tensor = field(default_factory=lambda: torch.zeros(4, dtype=torch.float64))
    global_step: int = 0
    steps_at_start: int = 0
    """``global_step`` when this process started (0, or the resumed checkpoint's)."""
    resumes: list[dict[str, Any]] = field(default_factory=list)
    ema_model: nn.Module | None = None
    """A model whose state is saved as ``Checkpoint.ema_state`` (and restored on resume)."""
    ema: ModelEma | None = None
    saved: bool = False
    """True once this process wrote a checkpoint into ``out_dir``."""

    @property
    def last_path(self) -> Path:
        return self.out_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.out_dir / "best.pt"

    def say(self, message: str) -> None:
        if self.ctx.is_main:
            print(message, flush=True)
