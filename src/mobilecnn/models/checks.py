"""Argument checks for model constructors and the input check of ``forward``.

Constructor checks raise a one-line ``TypeError`` (wrong kind of value: a string for a number,
a bool for an integer) or ``ValueError`` (right kind, wrong value) naming the argument and what
it accepts.

The input check (:func:`check_images`) runs in eager mode and inside TorchScript,
``torch.compile`` and ``torch.export`` (where its conditions are static: they become guards,
not graph nodes). It is skipped while ``torch.fx`` traces symbolically and while
``torch.jit.trace`` records, where the input holds no real shape or dtype
(:func:`is_symbolic`).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch

from ..limits import CHANNELS, NUM_CLASSES, WIDTH, Limit, check_size

__all__ = [
    "check_common_args",
    "check_count",
    "check_drop_rate",
    "check_images",
    "check_variant",
    "check_width_mult",
    "is_symbolic",
]



def _kind(value: object) -> str:
    return type(value).__name__


def check_count(value: object, name: str, minimum: int = 1, limit: Limit | None = None) -> int:
    """``value`` as an int if it is an integer >= ``minimum`` (bool is not an integer) and, when
    given, no larger than ``limit`` (one of :mod:`mobilecnn.limits`)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r} "
                        f"({_kind(value)})")
    if int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if limit is not None and int(value) > 0:
        check_size(name, int(value), limit)
    return int(value)


def check_width_mult(width_mult: object) -> float:
    """``width_mult`` as a float if it is a finite number > 0."""
    if isinstance(width_mult, bool) or not isinstance(width_mult, numbers.Real):
        raise TypeError(f"width_mult must be a number > 0 such as 1.0 or 0.5, got "
                        f"{width_mult!r} ({_kind(width_mult)})")
    if not (math.isfinite(width_mult) and float(width_mult) > 0):
        raise ValueError(f"width_mult must be a finite number > 0 such as 1.0 or 0.5, got "
                         f"{width_mult!r}")
    return check_size("width_mult", float(width_mult), WIDTH)


def check_drop_rate(value: object, name: str = "dropout") -> float:
    """``value`` as a float if it is a probability in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in [0, 1), got {value!r} ({_kind(value)})")
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return float(value)


def check_common_args(num_classes: object, width_mult: object, in_channels: object,
                      dropout: object) -> None:
    """Raise TypeError/ValueError naming the first invalid constructor argument.

    ``num_classes=0`` is valid: the model then returns pooled features (no classifier)."""
    check_count(num_classes, "num_classes", minimum=0, limit=NUM_CLASSES)
    check_width_mult(width_mult)
    check_count(in_channels, "in_channels", limit=CHANNELS)
    check_drop_rate(dropout)


def check_variant(variant: str, accepted: tuple[str, ...], model: str) -> str:
    """Return ``variant`` or raise a ValueError that lists the accepted names."""
    if variant not in accepted:
        raise ValueError(f"unknown {model} variant {variant!r}; choose one of: "
                         f"{', '.join(repr(a) for a in accepted)}")
    return variant


def is_symbolic(x: Any) -> bool:
    """True while ``x`` is being traced without real values (``torch.fx``, ``torch.jit.trace``)."""
    return isinstance(x, torch.fx.Proxy) or torch.jit.is_tracing()


ACCEPTED_DTYPES = "float32, float16 or bfloat16"


def check_images(x: torch.Tensor, in_channels: int) -> None:
    """Raise ValueError unless ``x`` is a float batch ``(N, in_channels, H, W)``.

    Written in the TorchScript subset, so that scripted models keep the check."""
    if x.dim() != 4 or x.shape[1] != in_channels:
        raise ValueError(
            f"expected a 4-D input tensor of shape (batch, {in_channels}, height, width), got "
            f"shape {list(x.shape)}; for a single image add the batch dimension with "
            "x.unsqueeze(0)"
        )
    if x.dtype != torch.float32 and x.dtype != torch.float16 and x.dtype != torch.bfloat16:
        if x.is_floating_point():
            raise ValueError(
                "expected float32, float16 or bfloat16 images, got float64; convert them "
                "with x.float() (the model's weights are float32)"
            )
        raise ValueError(
            "expected float32, float16 or bfloat16 images, got an integer or bool tensor; "
            "convert 8-bit images with x.float() / 255 and normalize them as the model was "
            "trained (model.pretrained_cfg has the mean and std)"
        )
