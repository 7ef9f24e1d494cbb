"""Optimizers without weight decay on norm/bias parameters (the learning-rate schedule is in
:mod:`~mobilecnn.train.schedule`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .schedule import build_scheduler  # its home is schedule.py; kept importable from here

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
