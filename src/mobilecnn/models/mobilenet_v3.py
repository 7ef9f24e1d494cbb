"""MobileNetV3 (Howard et al. 2019, "Searching for MobileNetV3", Tables 1 and 2)."""

from __future__ import annotations

from functools import partial

from torch import nn

from ..layers import ConvNormAct, NormFactory, make_divisible
from ._base import MobileNetBase
from .builder import BlockSpec, build_stages
from .checks import check_common_args, check_variant

__all__ = ["MOBILENET_V3_TABLES", "MobileNetV3"]

RE, HS = nn.ReLU, nn.Hardswish


def _bneck(kernel: int, hidden: int, out: int, se: bool, act: type[nn.Module],
           stride: int = 1) -> BlockSpec:
    """One row of the paper's tables: kernel, exp size, #out, SE, NL, s."""
    return BlockSpec("ir", out, stride=stride, kernel_size=kernel, hidden_channels=hidden,
                     se_ratio=0.25 if se else None, activation=act)


MOBILENET_V3_TABLES: dict[str, tuple[BlockSpec, ...]] = {
    "large": (  # Table 1
        BlockSpec("conv", 16, stride=2, activation=HS),
        _bneck(3, 16, 16, False, RE),
        _bneck(3, 64, 24, False, RE, 2),
        _bneck(3, 72, 24, False, RE),
        _bneck(5, 72, 40, True, RE, 2),
        _bneck(5, 120, 40, True, RE),
        _bneck(5, 120, 40, True, RE),
        _bneck(3, 240, 80, False, HS, 2),
        _bneck(3, 200, 80, False, HS),
        _bneck(3, 184, 80, False, HS),
        _bneck(3, 184, 80, False, HS),
        _bneck(3, 480, 112, True, HS),
        _bneck(3, 672, 112, True, HS),
        _bneck(5, 672, 160, True, HS, 2),
        _bneck(5, 960, 160, True, HS),
        _bneck(5, 960, 160, True, HS),
    ),
    "small": (  # Table 2
        BlockSpec("conv", 16, stride=2, activation=HS),
        _bneck(3, 16, 16, True, RE, 2),
        _bneck(3, 72, 24, False, RE, 2),
        _bneck(3, 88, 24, False, RE),
        _bneck(5, 96, 40, True, HS, 2),
        _bneck(5, 240, 40, True, HS),
        _bneck(5, 240, 40, True, HS),
        _bneck(5, 120, 48, True, HS),
        _bneck(5, 144, 48, True, HS),
        _bneck(5, 288, 96, True, HS, 2),
        _bneck(5, 576, 96, True, HS),
        _bneck(5, 576, 96, True, HS),
    ),
}
"""The stem and bottleneck rows of the paper's Table 1 (``large``) and Table 2 (``small``)."""

MOBILENET_V3_HIDDEN = {"large": 1280, "small": 1024}  # width of the classifier's hidden layer
MOBILENET_V3_NORM: NormFactory = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)
"""BatchNorm as the reference trains V3: eps 1e-3, momentum 0.01."""


class MobileNetV3(MobileNetBase):
    """MobileNetV3-Large or -Small: a 3x3 stride-2 hard-swish stem, the bottlenecks of the paper's
    Table 1 / Table 2 (3x3 and 5x5 depthwise, squeeze-and-excitation, ReLU or hard-swish per
    block), a 1x1 conv to 6x the last width, global average pooling, then
    ``Linear -> hard-swish -> dropout -> Linear``.

    Args:
        variant: ``"large"`` or ``"small"``.
        num_classes: outputs of the classifier (0: no last Linear; the 1280-wide (Small: 1024)
            pre-logits out).
        width_mult: width multiplier; every width (hidden widths and the classifier's 1280/1024
            included) is ``make_divisible(c * width_mult, 8)``, as in torchvision.
        in_channels: channels of the input images.
        dropout: dropout probability inside the classifier (0.2 in the reference).
        total_stride: 32 as in the paper; 16 (stem stride 1) for 64x64 inputs; 8 (stem and the
            first stride-2 block at stride 1) for 32x32 inputs.
        norm_layer: normalization factory (BatchNorm with eps 1e-3, as the reference).

    ``features`` holds the stem at index 0, the bottlenecks and the last 1x1 conv, at the
    indices of torchvision's ``mobilenet_v3_large`` / ``_small`` (whose weights load with
    :func:`~mobilecnn.deploy.load_torchvision_state_dict`).
    """

    def __init__(
        self,
        variant: str = "large",
        num_classes: int = 1000,
        width_mult: float = 1.0,
        in_channels: int = 3,
        dropout: float = 0.2,
        total_stride: int = 32,
        norm_layer: NormFactory | None = MOBILENET_V3_NORM,
    ) -> None:
        super().__init__()
        self.variant = check_variant(variant, tuple(MOBILENET_V3_TABLES), "MobileNetV3")
        check_common_args(num_classes, width_mult, in_channels, dropout)
        self.in_channels = in_channels
        self.width_mult = width_mult
        built = build_stages(MOBILENET_V3_TABLES[variant], in_channels, width_mult=width_mult,
                             total_stride=total_stride, norm_layer=norm_layer)
        last_conv = 6 * built.out_channels
        hidden = make_divisible(MOBILENET_V3_HIDDEN[variant] * width_mult)
        self.features = nn.Sequential(
            *built.layers,
            ConvNormAct(built.out_channels, last_conv, 1, norm_layer=norm_layer,
                        activation=nn.Hardswish),
        )
        self.num_features = last_conv
        self.classifier = self._make_classifier(
            hidden, num_classes, dropout,
            pre_logits=(nn.Linear(last_conv, hidden), nn.Hardswish(inplace=True)),
        )
        self.feature_info = built.feature_info
        self._finish_init(f"mobilenet_v3_{variant}", total_stride)
