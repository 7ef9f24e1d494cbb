"""MobileNetV4 (Qin et al. 2024, "MobileNetV4: Universal Models for the Mobile Ecosystem", the
architecture tables of the appendix): the convolutional variants and the hybrids with Mobile
MQA attention, exactly as timm builds them."""

from __future__ import annotations

from dataclasses import replace

from torch import nn

from ..layers import (
    ActivationFactory,
    ConvNormAct,
    MultiQueryAttention2d,
    NormFactory,
    make_divisible,
)
from ..layers.conv import resolve_activation
from ._base import MobileNetBase
from .builder import BlockSpec, build_stages
from .checks import check_common_args, check_variant

__all__ = ["MOBILENET_V4_TABLES", "MobileNetV4"]

_HYBRID_LAYER_SCALE = 1e-5  # every UIB and MQA block of the hybrids ends with a layer scale


def _uib(out: int, start: int, middle: int, expand: float, stride: int = 1,
         repeats: int = 1) -> BlockSpec:
    """A UIB row: start and middle depthwise kernels (0 = none), expansion, stride."""
    return BlockSpec("uib", out, stride=stride, repeats=repeats, start_kernel_size=start,
                     kernel_size=middle, expand_ratio=expand)


def _mqa(out: int, heads: int, key_dim: int, kv_stride: int = 1) -> BlockSpec:
    """A Mobile MQA row: query heads, key/value size, key/value downsampling (3x3 dw conv)."""
    return BlockSpec("mqa", out, num_heads=heads, key_dim=key_dim, kv_stride=kv_stride)


MOBILENET_V4_TABLES: dict[str, tuple[BlockSpec, ...]] = {
    "conv_small": (
        BlockSpec("conv", 32, stride=2),  # stem
        BlockSpec("conv", 32, stride=2),
        BlockSpec("conv", 32, kernel_size=1),
        BlockSpec("conv", 96, stride=2),
        BlockSpec("conv", 64, kernel_size=1),
        _uib(96, 5, 5, 3, stride=2),  # ExtraDW
        _uib(96, 0, 3, 2, repeats=4),  # IB
        _uib(96, 3, 0, 4),  # ConvNext-like
        _uib(128, 3, 3, 6, stride=2),
        _uib(128, 5, 5, 4),
        _uib(128, 0, 5, 4),
        _uib(128, 0, 5, 3),
        _uib(128, 0, 3, 4, repeats=2),
    ),
    "conv_medium": (
        BlockSpec("conv", 32, stride=2),  # stem
        BlockSpec("fused_ir", 48, stride=2, expand_ratio=4),
        _uib(80, 3, 5, 4, stride=2),
        _uib(80, 3, 3, 2),
        _uib(160, 3, 5, 6, stride=2),
        _uib(160, 3, 3, 4, repeats=2),
        _uib(160, 3, 5, 4),
        _uib(160, 3, 3, 4),
        _uib(160, 3, 0, 4),
        _uib(160, 0, 0, 2),  # FFN
        _uib(160, 3, 0, 4),
        _uib(256, 5, 5, 6, stride=2),
        _uib(256, 5, 5, 4),
        _uib(256, 3, 5, 4, repeats=2),
        _uib(256, 0, 0, 4),
        _uib(256, 3, 0, 4),
        _uib(256, 3, 5, 2),
        _uib(256, 5, 5, 4),
        _uib(256, 0, 0, 4, repeats=2),
        _uib(256, 5, 0, 2),
    ),
    "conv_large": (
        BlockSpec("conv", 24, stride=2),  # stem
        BlockSpec("fused_ir", 48, stride=2, expand_ratio=4),
        _uib(96, 3, 5, 4, stride=2),
        _uib(96, 3, 3, 4),
        _uib(192, 3, 5, 4, stride=2),
        _uib(192, 3, 3, 4, repeats=3),
        _uib(192, 3, 5, 4),
        _uib(192, 5, 3, 4, repeats=5),
        _uib(192, 3, 0, 4),
        _uib(512, 5, 5, 4, stride=2, repeats=4),
        _uib(512, 5, 0, 4),
        _uib(512, 5, 3, 4),
        _uib(512, 5, 0, 4, repeats=2),
        _uib(512, 5, 3, 4),
        _uib(512, 5, 5, 4),
        _uib(512, 5, 0, 4, repeats=3),
    ),
    "hybrid_medium": (
        BlockSpec("conv", 32, stride=2),  # stem
        BlockSpec("fused_ir", 48, stride=2, expand_ratio=4),
        _uib(80, 3, 5, 4, stride=2),
        _uib(80, 3, 3, 2),
        _uib(160, 3, 5, 6, stride=2),
        _uib(160, 0, 0, 2),
        _uib(160, 3, 3, 4),
        _uib(160, 3, 5, 4),
        _mqa(160, 4, 64, kv_stride=2),
        _uib(160, 3, 3, 4),
        _mqa(160, 4, 64, kv_stride=2),
        _uib(160, 3, 0, 4),
        _mqa(160, 4, 64, kv_stride=2),
        _uib(160, 3, 3, 4),
        _mqa(160, 4, 64, kv_stride=2),
        _uib(160, 3, 0, 4),
        _uib(256, 5, 5, 6, stride=2),
        _uib(256, 5, 5, 4),
        _uib(256, 3, 5, 4, repeats=2),
        _uib(256, 0, 0, 2),
        _uib(256, 3, 5, 2),
        _uib(256, 0, 0, 2),
        _uib(256, 0, 0, 4),
        _mqa(256, 4, 64),
        _uib(256, 3, 0, 4),
        _mqa(256, 4, 64),
        _uib(256, 5, 5, 4),
        _mqa(256, 4, 64),
        _uib(256, 5, 0, 4),
        _mqa(256, 4, 64),
        _uib(256, 5, 0, 4),
    ),
    "hybrid_large": (
        BlockSpec("conv", 24, stride=2),  # stem
        BlockSpec("fused_ir", 48, stride=2, expand_ratio=4),
        _uib(96, 3, 5, 4, stride=2),
        _uib(96, 3, 3, 4),
        _uib(192, 3, 5, 4, stride=2),
        _uib(192, 3, 3, 4, repeats=3),
        _uib(192, 3, 5, 4),
        _uib(192, 5, 3, 4, repeats=2),
        _mqa(192, 8, 48, kv_stride=2),
        _uib(192, 5, 3, 4),
        _mqa(192, 8, 48, kv_stride=2),
        _uib(192, 5, 3, 4),
        _mqa(192, 8, 48, kv_stride=2),
        _uib(192, 5, 3, 4),
        _mqa(192, 8, 48, kv_stride=2),
        _uib(192, 3, 0, 4),
        _uib(512, 5, 5, 4, stride=2, repeats=4),
        _uib(512, 5, 0, 4),
        _uib(512, 5, 3, 4),
        _uib(512, 5, 0, 4, repeats=2),
        _uib(512, 5, 3, 4),
        _uib(512, 5, 5, 4),
        _mqa(512, 8, 64),
        _uib(512, 5, 0, 4),
        _mqa(512, 8, 64),
        _uib(512, 5, 0, 4),
        _mqa(512, 8, 64),
        _uib(512, 5, 0, 4),
        _mqa(512, 8, 64),
        _uib(512, 5, 0, 4),
    ),
}
"""Stem and blocks of the MobileNetV4s, as timm's ``mobilenetv4_conv_*`` and
``mobilenetv4_hybrid_*``."""

MOBILENET_V4_ACTIVATIONS: dict[str, ActivationFactory] = {"hybrid_large": nn.GELU}
"""The variants whose activation is not ReLU."""

MOBILENET_V4_LAST_CHANNELS = 960  # the last 1x1 conv of ``features``
MOBILENET_V4_HEAD_CHANNELS = 1280  # the 1x1 conv after pooling


class MobileNetV4(MobileNetBase):
    """MobileNetV4-Conv-Small, -Medium or -Large, or Hybrid-Medium or -Large: a 3x3 stride-2
    stem, fused and universal inverted bottlenecks (and, in the hybrids, Mobile MQA attention
    blocks at stride 16 and 32), a 1x1 conv to 960, global average pooling, then a 1x1 conv to
    1280 with BatchNorm and the activation (``head``) and the linear classifier.

    In the hybrids every UIB and :class:`~mobilecnn.layers.MobileMQA` block ends with a
    :class:`~mobilecnn.layers.LayerScale2d` (started at 1e-5), as in timm.

    Args:
        variant: ``"conv_small"``, ``"conv_medium"``, ``"conv_large"``, ``"hybrid_medium"`` or
            ``"hybrid_large"``.
        num_classes: outputs of the classifier (0: no classifier; the 1280-wide head's output).
        width_mult: width multiplier for every block width (``make_divisible(c * width_mult,
            8)``); the 1280-wide head is not scaled, nor is the stem below 1.0 (as in timm).
        in_channels: channels of the input images.
        dropout: dropout probability before the classifier (0 as in timm).
        total_stride: 32 as in the paper; 16 (stem stride 1) for 64x64 inputs; 8 (stem and the
            first stride-2 block at stride 1) for 32x32 inputs.
        norm_layer: normalization factory.
        activation: activation factory or name (``"relu"``); ``None`` takes the variant's
            (GELU in Hybrid-Large, ReLU in the others).

    ``features`` holds the stem at index 0, the blocks and the 960-wide 1x1 conv; timm weights
    load with :func:`~mobilecnn.deploy.load_timm_state_dict`. :meth:`freeze_backbone` freezes
    ``features``; ``head`` and ``classifier`` keep learning. As in timm, the head's BatchNorm
    sees one value per channel and sample, so training needs batches of at least 2.
    """

    def __init__(
        self,
        variant: str = "conv_small",
        num_classes: int = 1000,
        width_mult: float = 1.0,
        in_channels: int = 3,
        dropout: float = 0.0,
        total_stride: int = 32,
        norm_layer: NormFactory | None = nn.BatchNorm2d,
        activation: ActivationFactory | str | None = None,
    ) -> None:
        super().__init__()
        self.variant = check_variant(variant, tuple(MOBILENET_V4_TABLES), "MobileNetV4")
        if activation is None:
            activation = MOBILENET_V4_ACTIVATIONS.get(variant, nn.ReLU)
        check_common_args(num_classes, width_mult, in_channels, dropout)
        activation = resolve_activation(activation)
        self.in_channels = in_channels
        self.width_mult = width_mult
        table = MOBILENET_V4_TABLES[variant]
        if width_mult < 1:  # as timm: a thinner model keeps its stem
            table = (replace(table[0], scale_width=False), *table[1:])
        built = build_stages(table, in_channels, width_mult=width_mult,
                             total_stride=total_stride, norm_layer=norm_layer,
                             activation=activation,
                             layer_scale_init=_HYBRID_LAYER_SCALE if "hybrid" in variant else None)
        last_channels = make_divisible(MOBILENET_V4_LAST_CHANNELS * width_mult)
        self.features = nn.Sequential(
            *built.layers,
            ConvNormAct(built.out_channels, last_channels, 1, norm_layer=norm_layer,
                        activation=activation),
        )
        self.num_features = last_channels
        self.head = ConvNormAct(last_channels, MOBILENET_V4_HEAD_CHANNELS, 1,
                                norm_layer=norm_layer, activation=activation, bias=False)
        self.classifier = self._make_classifier(MOBILENET_V4_HEAD_CHANNELS, num_classes,
                                                dropout)
        self.feature_info = built.feature_info
        self._finish_init(f"mobilenet_v4_{variant}", total_stride)
        for module in self.modules():  # the attention's own initialization, as timm
            if isinstance(module, MultiQueryAttention2d):
                module.reset_parameters()
