"""Optimizers without weight decay on norm/bias parameters, and the warmup + cosine schedule."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["build_optimizer", "build_scheduler", "param_groups"]


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: conv/linear weights with ``weight_decay``, and norm parameters and biases
    (every parameter with fewer than 2 dimensions) with none.

    Decaying BatchNorm scales and biases only fights the normalization; the reference
    MobileNet recipes exclude them.
    """
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for parameter in model.parameters():
        if not parameter.requires_grad:
            continue
        (decay if parameter.ndim >= 2 else no_decay).append(parameter)
    return [
        {"params": decay, "weight_decay": weight_decay, "decays": True},
        {"params": no_decay, "weight_decay": 0.0, "decays": False},
    ]


def build_optimizer(
    model: nn.Module,
    name: str,
    lr: float,
    weight_decay: float,
    momentum: float = 0.9,
    groups: list[dict[str, Any]] | None = None,
) -> torch.optim.Optimizer:
    """``"sgd"`` (Nesterov momentum), ``"adamw"`` or ``"rmsprop"`` (TF-style eps, momentum).

    ``groups`` replaces :func:`param_groups` (e.g. :func:`~mobilecnn.train.finetune.
    layerwise_lr_groups`); a group's ``lr_scale`` multiplies ``lr``.
    """
    groups = param_groups(model, weight_decay) if groups is None else groups
    for group in groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=True)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    if name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr, alpha=0.9, eps=0.0316, momentum=momentum)
    raise ValueError(f"optimizer must be one of sgd, adamw, rmsprop; got {name!r}")


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
