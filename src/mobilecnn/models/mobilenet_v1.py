"""MobileNetV1 (Howard et al. 2017, "MobileNets", Table 1)."""

from __future__ import annotations

from torch import nn

from ..layers import (
    ActivationFactory,
    ConvNormAct,
    DepthwiseSeparableConv,
    NormFactory,
    make_divisible,
)
from ._base import MobileNetBase, check_common_args, check_total_stride, stage_feature_info

__all__ = ["MOBILENET_V1_BLOCKS", "MobileNetV1"]

MOBILENET_V1_STEM_CHANNELS = 32
MOBILENET_V1_BLOCKS: tuple[tuple[int, int], ...] = (
    # (output channels, stride) of the 13 depthwise-separable blocks of Table 1
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),  # the paper's table prints "s2" here, but the map stays 7x7: stride 1
)


class MobileNetV1(MobileNetBase):
    """MobileNetV1: a 3x3 stride-2 stem of 32 channels, 13 depthwise-separable blocks,
    global average pooling and a linear classifier.

    Args:
        num_classes: outputs of the classifier.
        width_mult: the paper's width multiplier alpha; every width is
            ``make_divisible(width * width_mult, round_nearest)``.
        in_channels: channels of the input images.
        dropout: dropout probability before the classifier (0 = none, as the paper).
        total_stride: 32 as in the paper; 16 (stem stride 1) for 64x64 inputs; 8 (stem and
            the first stride-2 block at stride 1) for 32x32 inputs.
        round_nearest: channel rounding divisor.
        norm_layer: normalization factory (``None`` for none).
        activation: activation factory (the paper uses ReLU).

    ``features`` holds the stem at index 0 and the blocks at 1..13.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        width_mult: float = 1.0,
        in_channels: int = 3,
        dropout: float = 0.0,
        total_stride: int = 32,
        round_nearest: int = 8,
        norm_layer: NormFactory | None = nn.BatchNorm2d,
        activation: ActivationFactory | None = nn.ReLU,
    ) -> None:
        super().__init__()
        check_common_args(num_classes, width_mult, in_channels, dropout)
        strides_removed = check_total_stride(total_stride)
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.width_mult = width_mult

        def width(channels: int) -> int:
            return make_divisible(channels * width_mult, round_nearest)

        stem_stride = 1 if strides_removed >= 1 else 2
        channels = width(MOBILENET_V1_STEM_CHANNELS)
        layers: list[nn.Module] = [
            ConvNormAct(in_channels, channels, 3, stride=stem_stride, norm_layer=norm_layer,
                        activation=activation)
        ]
        block_info: list[tuple[str, int, int]] = []
        first_downsample = True
        for out_channels, stride in MOBILENET_V1_BLOCKS:
            if stride == 2 and first_downsample:
                first_downsample = False
                if strides_removed >= 2:
                    stride = 1
            out_channels = width(out_channels)
            layers.append(
                DepthwiseSeparableConv(channels, out_channels, 3, stride=stride,
                                       norm_layer=norm_layer, activation=activation)
            )
            block_info.append((f"features.{len(layers) - 1}", out_channels, stride))
            channels = out_channels
        self.features = nn.Sequential(*layers)
        self.num_features = channels
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels, num_classes))
        self.feature_info = stage_feature_info(block_info, stem_stride)
        self._init_weights()
