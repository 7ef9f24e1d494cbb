"""The learning-rate schedule: linear warmup, then cosine to zero, stepped per optimizer step.

A run's schedule is a :class:`SchedulePlan` (stored in every checkpoint as a plain dict), built
into a scheduler by :func:`build_scheduler`. A fresh run plans ``epochs * steps_per_epoch``
steps (:func:`plan_schedule`). A resumed run whose schedule options or epoch length changed is
re-planned (:func:`resume_plan`, :func:`replan_schedule`) so that the learning rate ends at
zero with its last step, continuing from the optimizer steps it has already taken.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from .config import TrainConfig

__all__ = [
    "SchedulePlan",
    "build_scheduler",
    "plan_schedule",
    "replan_schedule",
    "resume_plan",
]


@dataclass(frozen=True)
class SchedulePlan:
    """What the scheduler and optimizer follow: the total and warmup optimizer steps, the peak
    learning rate, weight decay and momentum, and the epoch length they were planned for."""

    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    peak_lr: float
    weight_decay: float
    momentum: float

    def to_dict(self) -> dict[str, Any]:
        """The dict stored as ``Checkpoint.schedule`` (the same six keys as mobilecnn 0.2)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> SchedulePlan | None:
        """The plan a checkpoint recorded; None if it recorded none (0.1) or a damaged one."""
        if not isinstance(values, dict):
            return None
        names = [item.name for item in dataclasses.fields(cls)]
        try:
            numbers = [values[name] for name in names]
        except KeyError:
            return None
        if any(isinstance(value, bool) or not isinstance(value, int | float)
               or not math.isfinite(value) for value in numbers):
            return None
        return cls(int(values["steps_per_epoch"]), int(values["total_steps"]),
                   int(values["warmup_steps"]), float(values["peak_lr"]),
                   float(values["weight_decay"]), float(values["momentum"]))


def plan_schedule(config: TrainConfig, steps_per_epoch: int, *, steps_done: int = 0,
                  steps_left: int | None = None) -> SchedulePlan:
    """The plan of ``config`` for epochs of ``steps_per_epoch`` optimizer steps.

    A fresh run plans ``epochs * steps_per_epoch`` steps. A resumed run passes the optimizer
    steps it has taken (``steps_done``) and the steps its remaining epochs take
    (``steps_left``): the plan then ends exactly at its last step.
    """
    total = (steps_per_epoch * config.epochs if steps_left is None
             else steps_done + steps_left)
    return SchedulePlan(steps_per_epoch=steps_per_epoch, total_steps=total,
                        warmup_steps=round(config.warmup_epochs * steps_per_epoch),
                        peak_lr=config.peak_lr, weight_decay=config.effective_weight_decay,
                        momentum=config.momentum)


def resume_plan(config: TrainConfig, saved: SchedulePlan, steps_per_epoch: int,
                steps_done: int, steps_left: int) -> SchedulePlan:
    """The plan a resumed run follows: ``saved`` if nothing that shapes it changed, else a
    re-plan that continues at ``steps_done`` and ends at zero after ``steps_left`` more."""
    replanned = plan_schedule(config, steps_per_epoch, steps_done=steps_done,
                              steps_left=steps_left)
    return saved if saved == replanned else replanned


def build_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """Linear warmup from ``1/warmup_steps`` of the peak to the peak, then cosine to zero.

    Stepped once per optimizer step, so the schedule does not depend on the epoch length.
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    warmup_steps = max(0, min(warmup_steps, total_steps - 1))
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=max(1, total_steps - warmup_steps)
    )
    if warmup_steps == 0:
        return cosine
    warmup = torch.optim.lr_scheduler.LinearLR(
        optimizer, start_factor=1.0 / warmup_steps, end_factor=1.0, total_iters=warmup_steps
    )
    return torch.optim.lr_scheduler.SequentialLR(
        optimizer, schedulers=[warmup, cosine], milestones=[warmup_steps]
    )


def replan_schedule(optimizer: torch.optim.Optimizer, plan: SchedulePlan,
                    global_step: int) -> Any:
    """A scheduler for ``plan`` positioned at ``global_step``; the optimizer takes the plan's
    peak lr (times each group's ``lr_scale``), weight decay (groups that decay; norm/bias keep
    none) and momentum."""
    for index, group in enumerate(optimizer.param_groups):
        group["lr"] = plan.peak_lr * group.get("lr_scale", 1.0)
        group.pop("initial_lr", None)
        if group.get("decays", index == 0):
            group["weight_decay"] = plan.weight_decay
        if "momentum" in group:
            group["momentum"] = plan.momentum
    scheduler = build_scheduler(optimizer, plan.total_steps, plan.warmup_steps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()"
        for _ in range(global_step):
            scheduler.step()
    return scheduler
