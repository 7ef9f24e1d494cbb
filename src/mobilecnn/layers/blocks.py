"""The MobileNetV1-V3 blocks: squeeze-and-excitation, depthwise-separable, inverted residual."""

from __future__ import annotations

import torch
from torch import nn

from .conv import (
    ActivationFactory,
    ConvNormAct,
    NormFactory,
    build_activation,
    check_int,
    check_kernel_size,
    check_number,
    check_se_ratio,
    check_stride,
    make_divisible,
)

__all__ = ["DepthwiseSeparableConv", "InvertedResidual", "SqueezeExcite"]

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
        activation: ActivationFactory | str = nn.ReLU,
        gate: ActivationFactory | str = nn.Hardsigmoid,
    ) -> None:
        super().__init__()
        check_se_ratio(se_ratio)
        channels = check_int(channels, "channels")
        self.channels = channels
        self.squeeze_channels = make_divisible(int(channels * se_ratio), divisor)
        self.fc1 = nn.Conv2d(channels, self.squeeze_channels, 1)
        act = build_activation(activation, "activation")
        self.act = act if act is not None else nn.Identity()
        self.fc2 = nn.Conv2d(self.squeeze_channels, channels, 1)
        gate_module = build_activation(gate, "gate")
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
        activation: ActivationFactory | str | None = nn.ReLU,
        bias: bool | None = None,
    ) -> None:
        super().__init__()
        check_stride(stride)
        check_kernel_size(kernel_size)
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
        activation: ActivationFactory | str | None = nn.ReLU6,
        se_ratio: float | None = None,
        hidden_channels: int | None = None,
    ) -> None:
        super().__init__()
        in_channels = check_int(in_channels, "in_channels")
        out_channels = check_int(out_channels, "out_channels")
        check_stride(stride)
        check_kernel_size(kernel_size)
        check_se_ratio(se_ratio)
        check_number(expand_ratio, "expand_ratio", minimum=1)
        if hidden_channels is not None:
            check_int(hidden_channels, "hidden_channels")
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
