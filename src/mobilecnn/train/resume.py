"""Resuming a run: which checkpoint, is it compatible, what changed, restoring the state.

Changed options are either applied and recorded (``Checkpoint.resumes`` and config.json) or
refused with a one-line :class:`CheckpointError`; nothing is shown and then ignored. Options
that shape the learning-rate schedule (``epochs``, ``lr``, ``warmup_epochs``, ``weight_decay``,
``momentum``, or a different number of steps per epoch) re-plan it: the run continues at its
current optimizer step of the schedule it would have had with the new values from the start.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import torch

from .checkpoints import Checkpoint, CheckpointError
from .config import TrainConfig
from .optim import build_scheduler

__all__ = [
    "REFUSED_CHANGES",
    "changed_options",
    "check_resume_compatible",
    "plan_schedule",
    "replan_schedule",
    "resolve_resume_path",
]

REFUSED_CHANGES = ("batch_size", "optimizer", "seed")
"""Options a resumed run must keep (with the model options): they change what a step means."""
_NOT_RECORDED = ("progress", "out_dir")  # where the run is, not how it trains


def resolve_resume_path(resume: str | Path | bool | None, out_dir: Path) -> Path | None:
    """``True``/``"last"`` -> ``<out_dir>/last.pt`` (which must exist); a path as given."""
    if resume is None or resume is False:
        return None
    if resume is True or str(resume) == "last":
        path = out_dir / "last.pt"
        if not path.exists():
            raise FileNotFoundError(f"nothing to resume: {path} does not exist; "
                                    "start without --resume or pass --resume PATH")
        return path
    return Path(resume)


def plan_schedule(config: TrainConfig, steps_per_epoch: int) -> dict[str, Any]:
    """The learning-rate plan of ``config`` for ``steps_per_epoch`` (stored in checkpoints)."""
    total = steps_per_epoch * config.epochs
    return {"steps_per_epoch": steps_per_epoch, "total_steps": total,
            "warmup_steps": round(config.warmup_epochs * steps_per_epoch),
            "peak_lr": config.peak_lr, "weight_decay": config.effective_weight_decay,
            "momentum": config.momentum}


def saved_config(checkpoint: Checkpoint, path: Path) -> TrainConfig:
    """The config a checkpoint was trained with (0.1.0 test-hook keys dropped)."""
    if checkpoint.config is None:
        raise CheckpointError(path, "holds only weights (no optimizer/config); it cannot be "
                              "resumed, start a new run from it instead")
    try:
        return TrainConfig.from_dict(dict(checkpoint.config))
    except (TypeError, ValueError) as error:
        raise CheckpointError(path, f"holds a config this mobilecnn cannot read: {error}") \
            from None


def check_resume_compatible(checkpoint: Checkpoint, config: TrainConfig, path: Path,
                            model_kwargs: dict[str, Any], classes: list[str],
                            image_size: int, world_size: int) -> TrainConfig:
    """Refuse what cannot be resumed; returns the checkpoint's own config."""
    if not checkpoint.resumable:
        raise CheckpointError(path, "holds only weights (no optimizer/config); it cannot be "
                              "resumed, start a new run from it instead")
    old = saved_config(checkpoint, path)
    if checkpoint.model_name != config.model or checkpoint.model_kwargs != model_kwargs:
        raise CheckpointError(
            path,
            f"was trained as {checkpoint.model_name} {checkpoint.model_kwargs}, but this "
            f"run asks for {config.model} {model_kwargs}; use the same model options or "
            "another --out folder",
        )
    if list(checkpoint.classes) != list(classes):
        raise CheckpointError(path, "was trained on different classes than this data set")
    if checkpoint.image_size is not None and checkpoint.image_size != image_size:
        raise CheckpointError(path, f"was trained on {checkpoint.image_size}px images, this "
                              f"data has {image_size}px; resume with the same --image-size")
    for key in REFUSED_CHANGES:
        if getattr(old, key) != getattr(config, key):
            raise CheckpointError(path, f"was trained with {key}={getattr(old, key)!r}, this "
                                  f"run has {key}={getattr(config, key)!r}; resume with the "
                                  "same value")
    if checkpoint.world_size != world_size:
        print(f"note: resuming a {checkpoint.world_size}-process run with {world_size} "
              "processes: same global batch, but the data order differs from the original run",
              file=sys.stderr)
    return old


def changed_options(old: TrainConfig, new: TrainConfig) -> dict[str, list[Any]]:
    """``{option: [old, new]}`` for every option that differs (not ``progress``, ``out_dir``)."""
    before, after = old.to_dict(), new.to_dict()
    return {key: [before[key], after[key]] for key in after
            if key not in _NOT_RECORDED and before.get(key) != after[key]}


def replan_schedule(optimizer: torch.optim.Optimizer, plan: dict[str, Any],
                    global_step: int) -> Any:
    """A scheduler for ``plan`` positioned at ``global_step``; the optimizer takes the plan's
    peak lr (times each group's ``lr_scale``), weight decay (groups that decay; norm/bias keep
    none) and momentum."""
    for index, group in enumerate(optimizer.param_groups):
        group["lr"] = plan["peak_lr"] * group.get("lr_scale", 1.0)
        group.pop("initial_lr", None)
        if group.get("decays", index == 0):
            group["weight_decay"] = plan["weight_decay"]
        if "momentum" in group:
            group["momentum"] = plan["momentum"]
    scheduler = build_scheduler(optimizer, plan["total_steps"], plan["warmup_steps"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()"
        for _ in range(global_step):
            scheduler.step()
    return scheduler
