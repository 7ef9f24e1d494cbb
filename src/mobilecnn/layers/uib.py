"""MobileNetV4's blocks: the Universal Inverted Bottleneck and the fused inverted bottleneck."""

from __future__ import annotations

import torch
from torch import nn

from .conv import (
    ActivationFactory,
    ConvNormAct,
    NormFactory,
    Padding,
    check_int,
    check_kernel_size,
    check_number,
    check_stride,
    make_divisible,
)
from .norm import LayerScale2d

__all__ = ["FusedInvertedResidual", "UniversalInvertedResidual"]

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
    ``middle_depthwise``, ``project`` and ``layer_scale`` (absent ones are ``None``).

    ``layer_scale_init`` (MobileNetV4 hybrids, MobileNetV5: 1e-5) multiplies the branch by a
    learned per-channel :class:`~mobilecnn.layers.LayerScale2d` before the residual addition;
    ``padding`` is the depthwise convs' (:data:`~mobilecnn.layers.Padding`).
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
        activation: ActivationFactory | str | None = nn.ReLU,
        layer_scale_init: float | None = None,
        padding: Padding = "symmetric",
    ) -> None:
        super().__init__()
        in_channels = check_int(in_channels, "in_channels")
        out_channels = check_int(out_channels, "out_channels")
        check_stride(stride)
        check_kernel_size(start_kernel_size, "start_kernel_size", allow_zero=True)
        check_kernel_size(middle_kernel_size, "middle_kernel_size", allow_zero=True)
        check_number(expand_ratio, "expand_ratio", minimum=0, inclusive=False)
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
                norm_layer=norm_layer, activation=None, padding=padding,
            )
        self.expand = ConvNormAct(in_channels, self.hidden_channels, 1, norm_layer=norm_layer,
                                  activation=activation)
        self.middle_depthwise: ConvNormAct | None = None
        if middle_kernel_size:
            self.middle_depthwise = ConvNormAct(
                self.hidden_channels, self.hidden_channels, middle_kernel_size, stride=stride,
                groups=self.hidden_channels, norm_layer=norm_layer, activation=activation,
                padding=padding,
            )
        self.project = ConvNormAct(self.hidden_channels, out_channels, 1, norm_layer=norm_layer,
                                   activation=None)
        self.layer_scale: LayerScale2d | None = None
        if layer_scale_init is not None:
            self.layer_scale = LayerScale2d(out_channels, layer_scale_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output; ``x`` is added when ``use_residual``."""
        out = x
        if self.start_depthwise is not None:
            out = self.start_depthwise(out)
        out = self.expand(out)
        if self.middle_depthwise is not None:
            out = self.middle_depthwise(out)
        out = self.project(out)
        if self.layer_scale is not None:
            out = self.layer_scale(out)
        if self.use_residual:
            return x + out
        return out


class FusedInvertedResidual(nn.Module):
    """MobileNetV4's fused inverted bottleneck: ``k x k`` expand conv -> act -> 1x1 linear.

    The expansion and the depthwise conv of :class:`InvertedResidual` fused into one full
    ``k x k`` convolution (``expand``, carrying the stride), then the linear ``project``. Hidden
    width is ``make_divisible(in_channels * expand_ratio)``; residual as in the other blocks.
    Full convolutions are costly, so MobileNetV4 uses it only early, where channels are few.
    ``padding`` is the expansion conv's (:data:`~mobilecnn.layers.Padding`).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        expand_ratio: float = 4.0,
        kernel_size: int = 3,
        norm_layer: NormFactory | None = nn.BatchNorm2d,
        activation: ActivationFactory | str | None = nn.ReLU,
        padding: Padding = "symmetric",
    ) -> None:
        super().__init__()
        in_channels = check_int(in_channels, "in_channels")
        out_channels = check_int(out_channels, "out_channels")
        check_stride(stride)
        check_kernel_size(kernel_size)
        check_number(expand_ratio, "expand_ratio", minimum=0, inclusive=False)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride
        self.hidden_channels = make_divisible(in_channels * expand_ratio)
        self.use_residual = stride == 1 and in_channels == out_channels
        self.expand = ConvNormAct(in_channels, self.hidden_channels, kernel_size, stride=stride,
                                  norm_layer=norm_layer, activation=activation, padding=padding)
        self.project = ConvNormAct(self.hidden_channels, out_channels, 1, norm_layer=norm_layer,
                                   activation=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output; ``x`` is added when ``use_residual``."""
        out = self.project(self.expand(x))
        if self.use_residual:
            return x + out
        return out
