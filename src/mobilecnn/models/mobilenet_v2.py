"""MobileNetV2 (Sandler et al. 2018, "MobileNetV2: Inverted Residuals and Linear Bottlenecks")."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ..layers import (
    ActivationFactory,
    ConvNormAct,
    NormFactory,
    make_divisible,
)
from ..layers.conv import resolve_activation
from ._base import MobileNetBase
from .builder import BlockSpec, build_stages
from .checks import check_common_args

__all__ = ["MOBILENET_V2_SETTING", "MobileNetV2"]

MOBILENET_V2_STEM_CHANNELS = 32
MOBILENET_V2_LAST_CHANNELS = 1280
MOBILENET_V2_SETTING: tuple[tuple[int, int, int, int], ...] = (
    # Table 2: t (expansion), c (output channels), n (repeats), s (stride of the first repeat)
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def _check_setting(setting: Sequence[Sequence[int]]) -> list[tuple[int, int, int, int]]:
    rows: list[tuple[int, int, int, int]] = []
    if len(setting) == 0:
        raise ValueError("inverted_residual_setting must not be empty")
    for row in setting:
        if len(row) != 4 or not all(isinstance(v, int) and v > 0 for v in row):
            raise ValueError(
                "each row of inverted_residual_setting must be 4 positive integers "
                f"[t, c, n, s], got {row!r}"
            )
        if row[3] not in (1, 2):
            raise ValueError(f"stride s in inverted_residual_setting must be 1 or 2, got {row!r}")
        t, c, n, s = row
        rows.append((t, c, n, s))
    return rows


def mobilenet_v2_table(setting: Sequence[Sequence[int]] = MOBILENET_V2_SETTING
                       ) -> tuple[BlockSpec, ...]:
    """The stem and the rows ``[t, c, n, s]`` of ``setting`` as BlockSpec rows."""
    return (
        BlockSpec("conv", MOBILENET_V2_STEM_CHANNELS, stride=2),
        *(BlockSpec("ir", c, stride=s, repeats=n, expand_ratio=t)
          for t, c, n, s in _check_setting(setting)),
    )


class MobileNetV2(MobileNetBase):
    """MobileNetV2: a 3x3 stride-2 stem, the inverted-residual stages of Table 2, a 1x1 conv to
    1280 channels, global average pooling, dropout and a linear classifier.

    Args:
        num_classes: outputs of the classifier (0: no classifier, pooled features out).
        width_mult: width multiplier; widths are ``make_divisible(c * width_mult, round_nearest)``
            and the last conv is never narrower than 1280.
        inverted_residual_setting: rows ``[t, c, n, s]`` replacing Table 2.
        round_nearest: channel rounding divisor (1 turns rounding off).
        dropout: dropout probability before the classifier.
        in_channels: channels of the input images.
        total_stride: 32 as in the paper; 16 (stem stride 1) for 64x64 inputs; 8 (stem and the
            first stride-2 stage at stride 1) for 32x32 inputs.
        norm_layer: normalization factory.
        activation: activation factory or name (ReLU6 in the paper).

    ``features`` holds the stem at index 0, the 17 blocks at 1..17 and the last 1x1 conv at 18,
    the same indices as torchvision's ``mobilenet_v2``.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        width_mult: float = 1.0,
        inverted_residual_setting: Sequence[Sequence[int]] | None = None,
        round_nearest: int = 8,
        dropout: float = 0.2,
        in_channels: int = 3,
        total_stride: int = 32,
        norm_layer: NormFactory | None = nn.BatchNorm2d,
        activation: ActivationFactory | str | None = nn.ReLU6,
    ) -> None:
        super().__init__()
        check_common_args(num_classes, width_mult, in_channels, dropout)
        activation = resolve_activation(activation)
        table = mobilenet_v2_table(
            MOBILENET_V2_SETTING if inverted_residual_setting is None
            else inverted_residual_setting
        )
        self.in_channels = in_channels
        self.width_mult = width_mult
        built = build_stages(table, in_channels, width_mult=width_mult,
                             round_nearest=round_nearest, total_stride=total_stride,
                             norm_layer=norm_layer, activation=activation)
        last_channels = make_divisible(
            MOBILENET_V2_LAST_CHANNELS * max(1.0, width_mult), round_nearest
        )
        head_conv = ConvNormAct(built.out_channels, last_channels, 1, norm_layer=norm_layer,
                                activation=activation)
        self.features = nn.Sequential(*built.layers, head_conv)
        self.num_features = last_channels
        self.classifier = self._make_classifier(last_channels, num_classes, dropout)
        self.feature_info = built.feature_info
        self._finish_init("mobilenet_v2", total_stride)
