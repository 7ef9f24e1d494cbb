"""MobileNetV1 (Howard et al. 2017, "MobileNets", Table 1)."""

from __future__ import annotations

from torch import nn

from ..layers import ActivationFactory, NormFactory
from ..layers.conv import resolve_activation
from ._base import MobileNetBase
from .builder import BlockSpec, build_stages
from .checks import check_common_args

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
MOBILENET_V1_TABLE: tuple[BlockSpec, ...] = (
    BlockSpec("conv", MOBILENET_V1_STEM_CHANNELS, stride=2),
    *(BlockSpec("ds", channels, stride=stride) for channels, stride in MOBILENET_V1_BLOCKS),
)
"""The stem and the 13 blocks as :class:`~mobilecnn.models.builder.BlockSpec` rows."""


class MobileNetV1(MobileNetBase):
    """MobileNetV1: a 3x3 stride-2 stem of 32 channels, 13 depthwise-separable blocks,
    global average pooling and a linear classifier.

    Args:
        num_classes: outputs of the classifier (0: no classifier, pooled features out).
        width_mult: the paper's width multiplier alpha; every width is
            ``make_divisible(width * width_mult, round_nearest)``.
        in_channels: channels of the input images.
        dropout: dropout probability before the classifier (0 = none, as the paper).
        total_stride: 32 as in the paper; 16 (stem stride 1) for 64x64 inputs; 8 (stem and
            the first stride-2 block at stride 1) for 32x32 inputs.
        round_nearest: channel rounding divisor.
        norm_layer: normalization factory (``None`` for none).
        activation: activation factory or name (the paper uses ReLU).

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
        activation: ActivationFactory | str | None = nn.ReLU,
    ) -> None:
        super().__init__()
        check_common_args(num_classes, width_mult, in_channels, dropout)
        self.in_channels = in_channels
        self.width_mult = width_mult
        built = build_stages(MOBILENET_V1_TABLE, in_channels, width_mult=width_mult,
                             round_nearest=round_nearest, total_stride=total_stride,
                             norm_layer=norm_layer, activation=resolve_activation(activation))
        self.features = nn.Sequential(*built.layers)
        self.num_features = built.out_channels
        self.classifier = self._make_classifier(built.out_channels, num_classes, dropout)
        self.feature_info = built.feature_info
        self._finish_init("mobilenet_v1", total_stride)
