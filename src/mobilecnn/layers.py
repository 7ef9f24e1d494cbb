"""Building blocks shared by every mobilecnn model.

* :func:`make_divisible` - the channel-rounding rule of the reference implementations.
* :class:`ConvNormAct` - convolution -> normalization -> activation, the unit everything uses.
* :class:`DepthwiseSeparableConv` - the MobileNetV1 block (Howard et al. 2017, Fig. 3).
* :class:`InvertedResidual` - the MobileNetV2 linear-bottleneck block (Sandler et al. 2018),
  with MobileNetV3's options (Howard et al. 2019): 5x5 kernels, squeeze-and-excitation, the
  activation per block.
* :class:`SqueezeExcite` - MobileNetV3's channel gate (ReLU, then hard-sigmoid).
* :class:`UniversalInvertedResidual` - MobileNetV4's UIB (Qin et al. 2024): ExtraDW, IB,
  ConvNext-like and FFN are its four settings.
* :class:`FusedInvertedResidual` - MobileNetV4's fused IB: one ``k x k`` expansion conv.

Hard-swish and hard-sigmoid are ``nn.Hardswish`` / ``nn.Hardsigmoid``: pass them as
``activation=`` like any other factory.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = [
    "ActivationFactory",
    "ConvNormAct",
    "DepthwiseSeparableConv",
    "FusedInvertedResidual",
    "InvertedResidual",
    "NormFactory",
    "SqueezeExcite",
    "UniversalInvertedResidual",
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


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation as MobileNetV3 defines it: a per-channel gate from global context.

    ``x * gate(fc2(act(fc1(mean(x)))))``: global average pool to ``(N, C, 1, 1)``, a 1x1 conv
    ``C -> S`` (with bias), ReLU, a 1x1 conv ``S -> C`` (with bias), hard-sigmoid. The squeeze
    width is ``S = make_divisible(int(C * se_ratio), divisor)``, i.e.
    ``make_divisible(C // 4, 8)`` for the reference ``se_ratio=0.25``. It adds
    ``2*C*S + C + S`` parameters and ``2*C*S`` MACs, independent of the image size.
    """

    def __init__(
        self,
        channels: int,
        se_ratio: float = 0.25,
        divisor: int = 8,
        activation: ActivationFactory = nn.ReLU,
        gate: ActivationFactory = nn.Hardsigmoid,
    ) -> None:
        super().__init__()
        check_se_ratio(se_ratio)
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive integer, got {channels!r}")
        self.channels = channels
        self.squeeze_channels = make_divisible(int(channels * se_ratio), divisor)
        self.fc1 = nn.Conv2d(channels, self.squeeze_channels, 1)
        act = _build_activation(activation)
        self.act = act if act is not None else nn.Identity()
        self.fc2 = nn.Conv2d(self.squeeze_channels, channels, 1)
        gate_module = _build_activation(gate)
        self.gate = gate_module if gate_module is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` scaled per channel by a gate in [0, 1]."""
        scale = nn.functional.adaptive_avg_pool2d(x, 1)
        scale = self.gate(self.fc2(self.act(self.fc1(scale))))
        return x * scale


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

    The expansion is omitted when ``expand_ratio == 1`` (or ``hidden_channels == in_channels``);
    the projection has no activation (the *linear bottleneck*). The input is added to
    the output only when ``stride == 1`` and ``in_channels == out_channels`` (``use_residual``).
    Hidden width is ``round(in_channels * expand_ratio)``, or ``hidden_channels`` when given
    (MobileNetV3's tables give it directly).

    MobileNetV3 options: ``kernel_size`` 3 or 5, ``se_ratio`` (e.g. 0.25) adds a
    :class:`SqueezeExcite` named ``se`` after the depthwise conv, and ``activation`` is chosen
    per block (``nn.ReLU`` or ``nn.Hardswish``). Without them the block, its children
    (``expand``, ``depthwise``, ``project``) and its state_dict are exactly the V2 block's.
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
        se_ratio: float | None = None,
        hidden_channels: int | None = None,
    ) -> None:
        super().__init__()
        _check_stride(stride)
        check_kernel_size(kernel_size)
        check_se_ratio(se_ratio)
        if expand_ratio < 1:
            raise ValueError(f"expand_ratio must be >= 1, got {expand_ratio!r}")
        if hidden_channels is not None and (
            not isinstance(hidden_channels, int) or hidden_channels < 1
        ):
            raise ValueError(f"hidden_channels must be a positive integer or None, got "
                             f"{hidden_channels!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride
        self.hidden_channels = (int(round(in_channels * expand_ratio)) if hidden_channels is None
                                else hidden_channels)
        self.use_residual = stride == 1 and in_channels == out_channels
        self.expand: nn.Module
        has_expansion = (expand_ratio != 1 if hidden_channels is None
                         else hidden_channels != in_channels)
        if has_expansion:
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
        # registered only when used, so that a V2 block has exactly the V2 children
        self.se: SqueezeExcite | None = (
            SqueezeExcite(self.hidden_channels, se_ratio) if se_ratio is not None else None
        )
        self.project = ConvNormAct(
            self.hidden_channels, out_channels, 1, norm_layer=norm_layer, activation=None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output; ``x`` is added when ``use_residual``."""
        out = self.depthwise(self.expand(x))
        if self.se is not None:
            out = self.se(out)
        out = self.project(out)
        if self.use_residual:
            return x + out
        return out


class UniversalInvertedResidual(nn.Module):
    """MobileNetV4's Universal Inverted Bottleneck (UIB, Qin et al. 2024, Fig. 4).

    ``[start depthwise] -> 1x1 expand -> act -> [middle depthwise -> act] -> 1x1 linear project``
    with a residual when ``stride == 1`` and ``in_channels == out_channels``. The two optional
    depthwise convs give its four settings, ``block_type`` (``0`` = leave that conv out):

    * ``"extra_dw"`` (ExtraDW): ``start_kernel_size=k``, ``middle_kernel_size=k``;
    * ``"ib"`` (the inverted bottleneck of V2): ``start_kernel_size=0``, ``middle_kernel_size=k``;
    * ``"convnext"`` (ConvNext-like): ``start_kernel_size=k``, ``middle_kernel_size=0``;
    * ``"ffn"`` (feed-forward, two 1x1 convs): both 0.

    The start depthwise has no activation; the stride sits on the middle depthwise when there is
    one, else on the start depthwise (an FFN cannot downsample). Hidden width is
    ``make_divisible(in_channels * expand_ratio)``. Children: ``start_depthwise``, ``expand``,
    ``middle_depthwise``, ``project`` (absent ones are ``None``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        expand_ratio: float = 4.0,
        start_kernel_size: int = 3,
        middle_kernel_size: int = 3,
        norm_layer: NormFactory | None = nn.BatchNorm2d,
        activation: ActivationFactory | None = nn.ReLU,
    ) -> None:
        super().__init__()
        _check_stride(stride)
        check_kernel_size(start_kernel_size, "start_kernel_size", allow_zero=True)
        check_kernel_size(middle_kernel_size, "middle_kernel_size", allow_zero=True)
        if not expand_ratio > 0:
            raise ValueError(f"expand_ratio must be > 0, got {expand_ratio!r}")
        if stride != 1 and not (start_kernel_size or middle_kernel_size):
            raise ValueError("a UniversalInvertedResidual without depthwise convs (FFN) cannot "
                             f"downsample: use stride=1, got stride={stride}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride
        self.hidden_channels = make_divisible(in_channels * expand_ratio)
        self.use_residual = stride == 1 and in_channels == out_channels
        self.block_type = {(True, True): "extra_dw", (False, True): "ib",
                           (True, False): "convnext", (False, False): "ffn"}[
            (bool(start_kernel_size), bool(middle_kernel_size))]
        self.start_depthwise: ConvNormAct | None = None
        if start_kernel_size:
            self.start_depthwise = ConvNormAct(
                in_channels, in_channels, start_kernel_size,
                stride=1 if middle_kernel_size else stride, groups=in_channels,
                norm_layer=norm_layer, activation=None,
            )
        self.expand = ConvNormAct(in_channels, self.hidden_channels, 1, norm_layer=norm_layer,
                                  activation=activation)
        self.middle_depthwise: ConvNormAct | None = None
        if middle_kernel_size:
            self.middle_depthwise = ConvNormAct(
                self.hidden_channels, self.hidden_channels, middle_kernel_size, stride=stride,
                groups=self.hidden_channels, norm_layer=norm_layer, activation=activation,
            )
        self.project = ConvNormAct(self.hidden_channels, out_channels, 1, norm_layer=norm_layer,
                                   activation=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output; ``x`` is added when ``use_residual``."""
        out = x
        if self.start_depthwise is not None:
            out = self.start_depthwise(out)
        out = self.expand(out)
        if self.middle_depthwise is not None:
            out = self.middle_depthwise(out)
        out = self.project(out)
        if self.use_residual:
            return x + out
        return out


class FusedInvertedResidual(nn.Module):
    """MobileNetV4's fused inverted bottleneck: ``k x k`` expand conv -> act -> 1x1 linear.

    The expansion and the depthwise conv of :class:`InvertedResidual` fused into one full
    ``k x k`` convolution (``expand``, carrying the stride), then the linear ``project``. Hidden
    width is ``make_divisible(in_channels * expand_ratio)``; residual as in the other blocks.
    Full convolutions are costly, so MobileNetV4 uses it only early, where channels are few.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        expand_ratio: float = 4.0,
        kernel_size: int = 3,
        norm_layer: NormFactory | None = nn.BatchNorm2d,
        activation: ActivationFactory | None = nn.ReLU,
    ) -> None:
        super().__init__()
        _check_stride(stride)
        check_kernel_size(kernel_size)
        if not expand_ratio > 0:
            raise ValueError(f"expand_ratio must be > 0, got {expand_ratio!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride
        self.hidden_channels = make_divisible(in_channels * expand_ratio)
        self.use_residual = stride == 1 and in_channels == out_channels
        self.expand = ConvNormAct(in_channels, self.hidden_channels, kernel_size, stride=stride,
                                  norm_layer=norm_layer, activation=activation)
        self.project = ConvNormAct(self.hidden_channels, out_channels, 1, norm_layer=norm_layer,
                                   activation=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output; ``x`` is added when ``use_residual``."""
        out = self.project(self.expand(x))
        if self.use_residual:
            return x + out
        return out
