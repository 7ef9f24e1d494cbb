"""MobileNetV5, the vision encoder of Gemma 3n (2025): MobileNetV4's fused IB, UIB and Mobile
MQA blocks at a larger scale, with RMSNorm, tanh-GELU, layer scale on every UIB/MQA block, and a
multi-scale fusion adapter that merges the stride-16 and stride-32 maps into one 16x16 map.

There is no MobileNetV5 paper; the tables are timm's ``mobilenetv5_base`` and
``mobilenetv5_300m`` (the Gemma 3n encoder), reproduced exactly.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import torch
from torch import nn

from ..layers import (
    ActivationFactory,
    MultiQueryAttention2d,
    MultiScaleFusionAdapter,
    NormFactory,
    Padding,
    RMSNorm2d,
)
from ..limits import NUM_CLASSES
from ._base import MobileNetBase
from .builder import BlockSpec, build_stages
from .checkpointing import checkpoint_taps
from .checks import check_common_args, check_count, check_variant

__all__ = ["MOBILENET_V5_TABLES", "MobileNetV5", "MobileNetV5Encoder"]

GELU_TANH: ActivationFactory = partial(nn.GELU, approximate="tanh")
"""MobileNetV5's activation: GELU with the tanh approximation."""

MOBILENET_V5_FEATURES = 2048  # channels of the fused map (not scaled by width_mult)
_LAYER_SCALE = 1e-5


def _uib(out: int, start: int, middle: int, expand: float, stride: int = 1) -> BlockSpec:
    return BlockSpec("uib", out, stride=stride, start_kernel_size=start, kernel_size=middle,
                     expand_ratio=expand)


def _attention_pairs(out: int, heads: int, key_dim: int, count: int,
                     kv_stride: int = 1) -> tuple[BlockSpec, ...]:
    """``count`` times: a Mobile MQA block, then a UIB FFN of expansion 2."""
    pair = (BlockSpec("mqa", out, num_heads=heads, key_dim=key_dim, kv_stride=kv_stride),
            _uib(out, 0, 0, 2))
    return pair * count


_STEM_AND_FIRST_STAGES = (
    BlockSpec("conv", 64, stride=2, bias=True),  # stem: conv (with bias), RMSNorm, GELU
    BlockSpec("fused_ir", 128, stride=2, expand_ratio=4),
    BlockSpec("fused_ir", 128, expand_ratio=4, repeats=2),
    _uib(256, 3, 5, 6, stride=2),
    _uib(256, 5, 0, 4),
    _uib(256, 3, 0, 4),
    _uib(256, 5, 0, 4),
    _uib(256, 3, 0, 4),
)

MOBILENET_V5_TABLES: dict[str, tuple[BlockSpec, ...]] = {
    "base": (
        *_STEM_AND_FIRST_STAGES,
        _uib(512, 5, 5, 6, stride=2),
        _uib(512, 5, 0, 4),
        _uib(512, 5, 0, 4),
        _uib(512, 0, 0, 1),
        *_attention_pairs(512, 8, 64, 6),
        _uib(1024, 5, 5, 6, stride=2),
        *_attention_pairs(1024, 16, 64, 7),
    ),
    "300m": (
        *_STEM_AND_FIRST_STAGES,
        _uib(640, 5, 5, 6, stride=2),
        *(_uib(640, 5, 0, 4),) * 7,
        _uib(640, 0, 0, 1),
        *_attention_pairs(640, 12, 64, 14, kv_stride=2),
        _uib(1280, 5, 5, 6, stride=2),
        *_attention_pairs(1280, 16, 96, 19),
    ),
}
"""Stem and blocks of MobileNetV5-Base and -300M, as timm's ``mobilenetv5_base`` / ``_300m``."""


class MobileNetV5(MobileNetBase):
    """MobileNetV5-Base or -300M: stem, blocks (``features``), the multi-scale fusion adapter
    (``fusion``: the last blocks at stride 16 and 32 -> one ``(N, 2048, 16, 16)`` map),
    global average pooling and the linear classifier. ``forward_features`` returns the fused map.

    Args:
        variant: ``"base"`` or ``"300m"`` (the Gemma 3n encoder's backbone).
        num_classes: outputs of the classifier.
        width_mult: width multiplier of every block (``make_divisible(c * width_mult, 8)``);
            the stem below 1.0 and the 2048-wide fused map are not scaled (as in timm).
        in_channels: channels of the input images.
        dropout: dropout probability before the classifier.
        total_stride: 32 as published; 16 (stem at stride 1) for 64x64 inputs; 8 for 32x32.
        fusion_size: the fused map's size (16 as published; a 256x256 image gives 16x16, a
            768x768 one is average-pooled by 3, others are resized bilinearly), or ``None`` to
            keep the stride-16 map's own size (what small inputs and dynamic shapes want).
        padding: ``"symmetric"`` (timm's ``mobilenetv5_base``/``_300m``) or ``"same"``
            (TensorFlow padding, as the Gemma 3n encoder weights were trained with).
        norm_layer: normalization factory (RMSNorm).
        activation: activation factory (tanh-GELU).

    Every UIB and Mobile MQA block ends with a layer scale (started at 1e-5). timm weights
    load with :func:`~mobilecnn.deploy.load_timm_state_dict`.
    """

    def __init__(
        self,
        variant: str = "base",
        num_classes: int = 1000,
        width_mult: float = 1.0,
        in_channels: int = 3,
        dropout: float = 0.0,
        total_stride: int = 32,
        fusion_size: int | None = 16,
        padding: Padding = "symmetric",
        norm_layer: NormFactory = RMSNorm2d,
        activation: ActivationFactory = GELU_TANH,
    ) -> None:
        super().__init__()
        self.variant = check_variant(variant, tuple(MOBILENET_V5_TABLES), "MobileNetV5")
        check_common_args(num_classes, width_mult, in_channels, dropout)
        self.in_channels = in_channels
        self.width_mult = width_mult
        table = MOBILENET_V5_TABLES[variant]
        if width_mult < 1:  # as timm: a thinner model keeps its stem
            table = (replace(table[0], scale_width=False), *table[1:])
        built = build_stages(table, in_channels, width_mult=width_mult,
                             total_stride=total_stride, norm_layer=norm_layer,
                             activation=activation, layer_scale_init=_LAYER_SCALE,
                             padding=padding)
        self.features = nn.Sequential(*built.layers)
        self.feature_info = built.feature_info
        # the fusion taps: the last block at stride 16 (before the last stage) and the last one
        taps = [int(level["module"].split(".")[1]) for level in built.feature_info[-2:]]
        self.fusion_taps: list[int] = taps
        tap_channels = sum(level["num_chs"] for level in built.feature_info[-2:])
        self.fusion = MultiScaleFusionAdapter(tap_channels, MOBILENET_V5_FEATURES,
                                              output_size=fusion_size, norm_layer=norm_layer,
                                              activation=activation)
        self.num_features = MOBILENET_V5_FEATURES
        self.classifier = self._make_classifier(MOBILENET_V5_FEATURES, num_classes, dropout)
        self._finish_init(f"mobilenet_v5_{variant}", total_stride, input_size=256)
        for module in self.modules():
            if isinstance(module, MultiQueryAttention2d):
                module.reset_parameters()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The fused map ``(N, 2048, 16, 16)`` (``fusion_size``) before pooling."""
        self._check_input(x)
        if torch.jit.is_scripting():
            return self.fusion(self._taps(x))
        if self._checkpointing(x):
            return self.fusion(checkpoint_taps(self.features, x, self.fusion_taps))
        return self.fusion(self._taps(x))

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps: list[torch.Tensor] = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self.fusion_taps:
                taps.append(x)
        return taps


class MobileNetV5Encoder(MobileNetV5):
    """The MobileNetV5 vision encoder (timm's ``mobilenetv5_300m_enc``, Gemma 3n's image
    tower): :class:`MobileNetV5` without pooling and classifier, whose ``forward`` returns the
    fused multi-scale map ``(N, 2048, 16, 16)``. It pads as TensorFlow (``padding="same"``),
    as the Gemma 3n weights expect. The arguments are :class:`MobileNetV5`'s, less the
    classifier's (``num_classes`` may only be 0).
    """

    def __init__(
        self,
        variant: str = "300m",
        width_mult: float = 1.0,
        in_channels: int = 3,
        total_stride: int = 32,
        fusion_size: int | None = 16,
        padding: Padding = "same",
        norm_layer: NormFactory = RMSNorm2d,
        activation: ActivationFactory = GELU_TANH,
        num_classes: int = 0,
    ) -> None:
        if check_count(num_classes, "num_classes", minimum=0, limit=NUM_CLASSES) != 0:
            raise ValueError(f"the MobileNetV5 encoder returns the fused feature map and has no "
                             f"classifier, so num_classes must be 0, got {num_classes!r}; for "
                             f"classification use MobileNetV5 (mobilenet_v5_{variant})")
        super().__init__(variant, 0, width_mult, in_channels, 0.0, total_stride, fusion_size,
                         padding, norm_layer, activation)
        self.pretrained_cfg.update(architecture=f"mobilenet_v5_{variant}_encoder",
                                   mean=(0.0,) * in_channels, std=(1.0,) * in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The fused map ``(N, 2048, 16, 16)`` for images ``(N, in_channels, H, W)``."""
        return self.forward_features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """The encoder has no head: raises ``ValueError``."""
        raise ValueError("the MobileNetV5 encoder has no classifier head; use MobileNetV5")

    def reset_classifier(self, num_classes: int) -> None:
        """The encoder has no classifier: raises ``ValueError``."""
        raise ValueError("the MobileNetV5 encoder has no classifier; build MobileNetV5("
                         f"{self.variant!r}, num_classes={num_classes!r}) for classification")
