"""One training step: the single place a batch becomes an optimizer update.

``mobilecnn train`` and ``benchmarks/train.py`` both call :func:`train_step`, so the benchmark
times exactly what training runs. Extra per-step work (e.g. an EMA update) goes into
``TrainStep.after_optimizer_step``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .distill import distillation_loss
from .distributed import all_reduce_flag
from .precision import autocast

__all__ = ["StepResult", "TrainStep", "all_finite", "train_step"]


@dataclass
class TrainStep:
    """What one optimizer step needs.

    ``model`` owns the parameters (clipped, checked); ``forward`` is what is called on the
    batch (``model`` itself, or its DDP / ``torch.compile`` wrapper). ``augment(images,
    generator=...)`` turns a uint8 batch on the device into normalized float inputs.
    ``scheduler`` may be None (benchmarks). With ``skip_nonfinite`` a step whose loss is
    NaN/inf on any process changes nothing (one device sync per step); otherwise the step is
    taken and :class:`StepResult.finite` tells the caller, without a sync.
    ``after_optimizer_step`` functions run after each applied optimizer step (e.g. the EMA).
    ``mix(inputs, labels, generator)`` (Mixup/CutMix) returns mixed inputs and soft targets,
    which ``criterion`` then receives instead of the labels. A ``teacher`` (eval mode) runs on
    the same inputs under ``torch.no_grad`` in the same autocast; its logits are mixed into
    the loss by :func:`~mobilecnn.train.distill.distillation_loss`.
    """

    model: nn.Module
    forward: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    augment: Callable[..., torch.Tensor]
    generator: torch.Generator | None
    dtype: torch.dtype | None
    device: torch.device
    channels_last: bool = True
    grad_clip: float | None = None
    skip_nonfinite: bool = False
    after_optimizer_step: list[Callable[[TrainStep], None]] = field(default_factory=list)
    mix: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = None
    teacher: nn.Module | None = None
    distill_alpha: float = 0.5
    distill_temperature: float = 4.0


@dataclass
class StepResult:
    """A step's figures, as device tensors (no host sync): loss, correct count, finite flag."""

    loss: torch.Tensor
    correct: torch.Tensor
    samples: int
    finite: torch.Tensor
    skipped: bool = False


def train_step(step: TrainStep, images: torch.Tensor, labels: torch.Tensor) -> StepResult:
    """Augment ``images`` (uint8, on the device), forward, loss, backward, optimizer step."""
    inputs = step.augment(images, generator=step.generator)
    targets = labels
    if step.mix is not None:
        inputs, targets = step.mix(inputs, labels, step.generator)
    if step.channels_last:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    with autocast(step.device, step.dtype):
        logits = step.forward(inputs)
        if step.teacher is not None:
            with torch.no_grad():
                teacher_logits = step.teacher(inputs)
    loss = step.criterion(logits.float(), targets)
    if step.teacher is not None:
        loss = distillation_loss(logits, teacher_logits, loss, step.distill_alpha,
                                 step.distill_temperature)
    finite = torch.isfinite(loss.detach())
    step.optimizer.zero_grad(set_to_none=True)
    if step.skip_nonfinite and all_reduce_flag(not bool(finite), step.device):
        if step.scheduler is not None:
            step.scheduler.step()  # the schedule follows the data position, skipped or not
        return StepResult(loss.detach(), torch.zeros((), device=step.device), labels.numel(),
                          finite, skipped=True)
    step.scaler.scale(loss).backward()
    if step.grad_clip is not None:
        step.scaler.unscale_(step.optimizer)
        nn.utils.clip_grad_norm_(step.model.parameters(), step.grad_clip)
    step.scaler.step(step.optimizer)
    step.scaler.update()
    if step.scheduler is not None:
        step.scheduler.step()
    for hook in step.after_optimizer_step:
        hook(step)
    with torch.no_grad():
        correct = logits.argmax(dim=1).eq(labels).sum()
    return StepResult(loss.detach(), correct, labels.numel(), finite)


def all_finite(module: nn.Module) -> bool:
    """True if every parameter and buffer of ``module`` is finite (one host sync)."""
    tensors = [t for t in (*module.parameters(), *module.buffers()) if t.is_floating_point()]
    if not tensors:
        return True
    return bool(torch.stack([t.detach().isfinite().all() for t in tensors]).all())
