"""Building blocks shared by every mobilecnn model.

* :func:`make_divisible` - the channel-rounding rule of the reference implementations.
* :class:`ConvNormAct` - convolution -> normalization -> activation, the unit everything uses.
* :class:`DepthwiseSeparableConv` - the MobileNetV1 block (Howard et al. 2017, Fig. 3).
* :class:`InvertedResidual` - the MobileNetV2 linear-bottleneck block (Sandler et al. 2018).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = [
    "ActivationFactory",
    "ConvNormAct",
    "DepthwiseSeparableConv",
    "InvertedResidual",
    "NormFactory",
    "make_divisible",
]

NormFactory = Callable[[int], nn.Module]
"""Builds a normalization layer for a number of channels (e.g. ``nn.BatchNorm2d``)."""

ActivationFactory = Callable[[], nn.Module]
"""Builds an activation module (e.g. ``nn.ReLU6``); ``inplace`` is tried first."""


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


def _build_activation(activation: ActivationFactory | None) -> nn.Module | None:
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
    ) -> None:
        super().__init__()
        if bias is None:
            bias = norm_layer is None
        padding = (kernel_size - 1) // 2 * dilation
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=bias,
        )
        if norm_layer is not None:
            self.bn = norm_layer(out_channels)
        act = _build_activation(activation)
        if act is not None:
            self.act = act
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride


def _check_stride(stride: int) -> None:
    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, got {stride!r}")


class DepthwiseSeparableConv(nn.Module):
    """The MobileNetV1 block: depthwise ``k x k`` conv -> norm -> act, pointwise 1x1 -> norm -> act.

    A standard ``k x k`` convolution from ``M`` to ``N`` channels has ``k*k*M*N`` weights; this
    block has ``k*k*M + M*N``, a ratio of ``1/N + 1/k**2``. With ``norm_layer=None,
    activation=None, bias=False``, ``DepthwiseSeparableConv(128, 256)`` has 33,920 parameters.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        norm_layer: NormFactory | None = nn.BatchNorm2d,
        activation: ActivationFactory | None = nn.ReLU,
        bias: bool | None = None,
    ) -> None:
        super().__init__()
        _check_stride(stride)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride
        self.depthwise = ConvNormAct(
            in_channels,
            in_channels,
            kernel_size,
            stride=stride,
            groups=in_channels,
            dilation=dilation,
            norm_layer=norm_layer,
            activation=activation,
            bias=bias,
        )
        self.pointwise = ConvNormAct(
            in_channels,
            out_channels,
            1,
            norm_layer=norm_layer,
            activation=activation,
            bias=bias,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class InvertedResidual(nn.Module):
    """The MobileNetV2 block: 1x1 expand -> ReLU6 -> depthwise ``k x k`` -> ReLU6 -> 1x1 linear.

    The expansion is omitted when ``expand_ratio == 1``; the projection has no activation (the
    *linear bottleneck*). The input is added to the output only when ``stride == 1`` and
    ``in_channels == out_channels`` (``use_residual``). Hidden width is
    ``round(in_channels * expand_ratio)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        expand_ratio: float,
        kernel_size: int = 3,
        dilation: int = 1,
        norm_layer: NormFactory | None = nn.BatchNorm2d,
        activation: ActivationFactory | None = nn.ReLU6,
    ) -> None:
        super().__init__()
        _check_stride(stride)
        if expand_ratio < 1:
            raise ValueError(f"expand_ratio must be >= 1, got {expand_ratio!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride
        self.hidden_channels = int(round(in_channels * expand_ratio))
        self.use_residual = stride == 1 and in_channels == out_channels
        self.expand: nn.Module
        if expand_ratio != 1:
            self.expand = ConvNormAct(
                in_channels,
                self.hidden_channels,
                1,
                norm_layer=norm_layer,
                activation=activation,
            )
        else:
            self.expand = nn.Identity()
        self.depthwise = ConvNormAct(
            self.hidden_channels,
            self.hidden_channels,
            kernel_size,
            stride=stride,
            groups=self.hidden_channels,
            dilation=dilation,
            norm_layer=norm_layer,
            activation=activation,
        )
        self.project = ConvNormAct(
            self.hidden_channels, out_channels, 1, norm_layer=norm_layer, activation=None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.expand(x)))
        if self.use_residual:
            return x + out
        return out
