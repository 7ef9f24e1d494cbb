"""The unit every block is made of: channel rounding, ``ConvNormAct`` and argument checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.fx
from torch import nn
from torch.nn import functional as F

__all__ = [
    "ActivationFactory",
    "ConvNormAct",
    "NormFactory",
    "Padding",
    "SamePad2d",
    "build_activation",
    "check_kernel_size",
    "check_se_ratio",
    "check_stride",
    "make_divisible",
]

NormFactory = Callable[[int], nn.Module]
"""Builds a normalization layer for a number of channels (e.g. ``nn.BatchNorm2d``)."""

ActivationFactory = Callable[[], nn.Module]
"""Builds an activation module (e.g. ``nn.ReLU6``); ``inplace`` is tried first."""


Padding = Literal["symmetric", "same"]
"""How convolutions pad: ``"symmetric"`` (PyTorch's ``(k - 1) // 2`` on every side) or
``"same"`` (TensorFlow's "SAME": for stride 2 the extra row/column goes to the bottom/right,
as in the Gemma 3n MobileNetV5 encoder). Both agree for stride 1."""


def same_padding(x: torch.Tensor, kernel_size: int, stride: int, dilation: int = 1
                 ) -> torch.Tensor:
    """Pad ``x`` as TensorFlow's "SAME" convolution would: ``ceil(size / stride)`` outputs."""
    height = x.shape[-2]
    width = x.shape[-1]
    span = (kernel_size - 1) * dilation + 1
    pad_h = max((-(height // -stride) - 1) * stride + span - height, 0)
    pad_w = max((-(width // -stride) - 1) * stride + span - width, 0)
    return F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])


torch.fx.wrap("same_padding")  # shape arithmetic: one call node in torch.fx graphs


class SamePad2d(nn.Module):
    """TensorFlow "SAME" padding before an unpadded convolution (see :data:`Padding`)."""

    def __init__(self, kernel_size: int, stride: int, dilation: int = 1) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride
        self.dilation = dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` padded with zeros (more at the bottom/right when the total is odd)."""
        return same_padding(x, self.kernel_size, self.stride, self.dilation)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, never below 90% of ``value``.

    This is the rule of the TensorFlow and torchvision MobileNet implementations; it keeps
    every layer width a multiple of 8 for fast kernels.

    >>> make_divisible(32 * 0.35), make_divisible(1280 * 1.4), make_divisible(11.2, 8)
    (16, 1792, 16)
    """
    if divisor < 1:
        raise ValueError(f"divisor must be >= 1, got {divisor}")
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:  # rounding down must not remove more than 10%
        rounded += divisor
    return rounded


def build_activation(activation: ActivationFactory | None) -> nn.Module | None:
    if activation is None:
        return None
    try:
        return activation(inplace=True)  # type: ignore[call-arg]
    except TypeError:
        return activation()


class ConvNormAct(nn.Sequential):
    """``Conv2d -> norm -> activation`` with "same" padding for odd kernels.

    Children are named ``conv``, ``bn`` and ``act`` (the last two only when used).
    ``bias`` defaults to ``True`` exactly when there is no normalization layer.
    ``padding="same"`` pads as TensorFlow for strided convs (a parameter-free ``pad`` child,
    :class:`SamePad2d`, before ``conv``); see :data:`Padding`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        dilation: int = 1,
        norm_layer: NormFactory | None = nn.BatchNorm2d,
        activation: ActivationFactory | None = nn.ReLU6,
        bias: bool | None = None,
        padding: Padding = "symmetric",
    ) -> None:
        super().__init__()
        if bias is None:
            bias = norm_layer is None
        if padding not in ("symmetric", "same"):
            raise ValueError(f"padding must be 'symmetric' or 'same', got {padding!r}")
        pad = (kernel_size - 1) // 2 * dilation
        if padding == "same" and stride > 1:
            self.pad = SamePad2d(kernel_size, stride, dilation)
            pad = 0
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=pad,
            dilation=dilation,
            groups=groups,
            bias=bias,
        )
        if norm_layer is not None:
            self.bn = norm_layer(out_channels)
        act = build_activation(activation)
        if act is not None:
            self.act = act
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride


def check_stride(stride: int) -> None:
    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, got {stride!r}")


def check_kernel_size(kernel_size: int, name: str = "kernel_size",
                      allow_zero: bool = False) -> None:
    """Raise ValueError unless ``kernel_size`` is a positive odd integer (or 0 if allowed)."""
    if allow_zero and kernel_size == 0:
        return
    if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        accepted = "0 (no such layer) or an odd integer" if allow_zero else "an odd integer"
        raise ValueError(
            f"{name} must be {accepted} such as 3 or 5 (even kernels have no centre, so "
            f"'same' padding is impossible), got {kernel_size!r}"
        )


def check_se_ratio(se_ratio: float | None) -> None:
    """Raise ValueError unless ``se_ratio`` is None (no SE) or in (0, 1]."""
    if se_ratio is not None and not (isinstance(se_ratio, (int, float)) and 0 < se_ratio <= 1):
        raise ValueError(
            f"se_ratio must be in (0, 1] (0.25 in MobileNetV3) or None for no squeeze-and-"
            f"excitation, got {se_ratio!r}"
        )
