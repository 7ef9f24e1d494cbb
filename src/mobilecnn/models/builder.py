"""Architecture as data: one builder turns a table of :class:`BlockSpec` rows into layers.

Every model of the zoo is a table (stem included) plus a head. :func:`build_stages` builds the
blocks, removes the first stride-2 steps to reach ``total_stride`` and records
``feature_info``, the same way for MobileNetV1, V2, V3 and V4.

>>> from torch import nn
>>> table = [BlockSpec("conv", 16, stride=2), BlockSpec("ir", 24, stride=2, expand_ratio=6),
...          BlockSpec("ir", 32, stride=2, expand_ratio=6, repeats=2, se_ratio=0.25)]
>>> built = build_stages(table, in_channels=3, total_stride=16)
>>> [type(layer).__name__ for layer in built.layers]
['ConvNormAct', 'InvertedResidual', 'InvertedResidual', 'InvertedResidual']
>>> [(level["num_chs"], level["reduction"]) for level in built.feature_info]
[(16, 1), (24, 2), (32, 4)]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from torch import nn

from ..layers import (
    ActivationFactory,
    ConvNormAct,
    DepthwiseSeparableConv,
    FusedInvertedResidual,
    InvertedResidual,
    MobileMQA,
    NormFactory,
    Padding,
    UniversalInvertedResidual,
    check_kernel_size,
    check_se_ratio,
    make_divisible,
)
from ._base import FeatureInfo, FeatureInfoList, check_total_stride

__all__ = ["BlockKind", "BlockSpec", "BuiltStages", "build_stages"]

BlockKind = Literal["conv", "ds", "ir", "uib", "fused_ir", "mqa"]
"""The block of a table row: ``conv`` ConvNormAct, ``ds`` DepthwiseSeparableConv, ``ir``
InvertedResidual, ``uib`` UniversalInvertedResidual, ``fused_ir`` FusedInvertedResidual,
``mqa`` MobileMQA (Mobile Multi-Query Attention)."""

BLOCK_KINDS: tuple[str, ...] = get_args(BlockKind)


@dataclass(frozen=True)
class BlockSpec:
    """One row of an architecture table: ``repeats`` blocks of one kind.

    Only the first repeat has ``stride``; the others have stride 1. Channel counts are those of
    width 1.0 (the builder scales them). ``activation=None`` means the model's activation.

    ``kernel_size`` is the depthwise kernel (``ds``, ``ir``), the conv kernel (``conv``,
    ``fused_ir``) or the middle depthwise kernel of a ``uib`` (0 = none); ``start_kernel_size``
    is the leading depthwise kernel of a ``uib`` (0 = none). ``hidden_channels`` gives an
    ``ir`` block's expanded width directly (MobileNetV3); otherwise ``expand_ratio`` sets it.
    ``se_ratio`` adds squeeze-and-excitation to an ``ir`` block. ``scale_width=False`` keeps
    the row's widths as written whatever the width multiplier (timm's MobileNetV4 keeps its
    stem so below width 1.0). ``bias`` gives a ``conv`` row's convolution a bias (MobileNetV5's
    stem).

    An ``mqa`` row has ``num_heads`` query heads of ``key_dim`` (keys and values share one
    head of that size); ``kv_stride=2`` downsamples keys and values with a ``kernel_size``
    depthwise conv. Attention keeps the resolution, so an ``mqa`` row has stride 1.
    """

    kind: BlockKind
    out_channels: int
    stride: int = 1
    repeats: int = 1
    kernel_size: int = 3
    expand_ratio: float = 1.0
    hidden_channels: int | None = None
    se_ratio: float | None = None
    activation: ActivationFactory | None = None
    start_kernel_size: int = 0
    scale_width: bool = True
    bias: bool = False
    num_heads: int = 0
    key_dim: int = 64
    kv_stride: int = 1

    def __post_init__(self) -> None:
        if self.kind not in BLOCK_KINDS:
            raise ValueError(f"unknown block kind {self.kind!r}; choose one of: "
                             f"{', '.join(BLOCK_KINDS)}")
        for name in ("out_channels", "repeats"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {self.stride!r}")
        check_kernel_size(self.kernel_size, allow_zero=self.kind == "uib")
        check_kernel_size(self.start_kernel_size, "start_kernel_size", allow_zero=True)
        check_se_ratio(self.se_ratio)
        if self.se_ratio is not None and self.kind != "ir":
            raise ValueError(f"se_ratio is only used by 'ir' blocks, got it on a {self.kind!r}")
        if self.kind != "uib" and self.start_kernel_size:
            raise ValueError(f"start_kernel_size is only used by 'uib' blocks, got it on a "
                             f"{self.kind!r}")
        if self.bias and self.kind != "conv":
            raise ValueError(f"bias is only used by 'conv' rows, got it on a {self.kind!r}")
        self._check_attention()

    def _check_attention(self) -> None:
        if self.kind != "mqa":
            if self.num_heads:
                raise ValueError(f"num_heads is only used by 'mqa' rows, got it on a "
                                 f"{self.kind!r}")
            return
        if not isinstance(self.num_heads, int) or self.num_heads < 1:
            raise ValueError(f"an 'mqa' row needs num_heads >= 1, got {self.num_heads!r}")
        if not isinstance(self.key_dim, int) or self.key_dim < 1:
            raise ValueError(f"key_dim must be a positive integer, got {self.key_dim!r}")
        if self.kv_stride not in (1, 2):
            raise ValueError(f"kv_stride must be 1 or 2, got {self.kv_stride!r}")
        if self.stride != 1:
            raise ValueError("an 'mqa' row cannot downsample (attention keeps the resolution): "
                             "use stride=1 and kv_stride=2 to downsample keys and values")


@dataclass
class BuiltStages:
    """What :func:`build_stages` returns."""

    layers: list[nn.Module]
    """One module per block, in order (repeats expanded)."""
    feature_info: FeatureInfoList
    """The last block of each resolution (named ``<prefix>.<index>``)."""
    out_channels: int
    """Channels of the last block's output."""


@dataclass(frozen=True)
class _BlockOptions:
    """Model-wide settings every block of a table gets."""

    norm_layer: NormFactory | None
    layer_scale_init: float | None
    padding: Padding


def _make_block(spec: BlockSpec, in_channels: int, out_channels: int, stride: int,
                hidden_channels: int | None, options: _BlockOptions,
                activation: ActivationFactory | None) -> nn.Module:
    norm_layer = options.norm_layer
    if spec.kind == "conv":
        return ConvNormAct(in_channels, out_channels, spec.kernel_size, stride=stride,
                           norm_layer=norm_layer, activation=activation,
                           bias=True if spec.bias else None, padding=options.padding)
    if spec.kind == "ds":
        return DepthwiseSeparableConv(in_channels, out_channels, spec.kernel_size, stride=stride,
                                      norm_layer=norm_layer, activation=activation)
    if spec.kind == "ir":
        return InvertedResidual(in_channels, out_channels, stride, spec.expand_ratio,
                                kernel_size=spec.kernel_size, norm_layer=norm_layer,
                                activation=activation, se_ratio=spec.se_ratio,
                                hidden_channels=hidden_channels)
    if spec.kind == "uib":
        return UniversalInvertedResidual(in_channels, out_channels, stride, spec.expand_ratio,
                                         start_kernel_size=spec.start_kernel_size,
                                         middle_kernel_size=spec.kernel_size,
                                         norm_layer=norm_layer, activation=activation,
                                         layer_scale_init=options.layer_scale_init,
                                         padding=options.padding)
    if spec.kind == "mqa":
        return MobileMQA(in_channels, out_channels, num_heads=spec.num_heads,
                         key_dim=spec.key_dim, kv_stride=spec.kv_stride,
                         kv_kernel_size=spec.kernel_size, norm_layer=norm_layer,
                         layer_scale_init=options.layer_scale_init, padding=options.padding)
    return FusedInvertedResidual(in_channels, out_channels, stride, spec.expand_ratio,
                                 kernel_size=spec.kernel_size, norm_layer=norm_layer,
                                 activation=activation, padding=options.padding)


def build_stages(
    specs: Sequence[BlockSpec],
    in_channels: int,
    *,
    width_mult: float = 1.0,
    round_nearest: int = 8,
    round_channels: Callable[[float], int] | None = None,
    total_stride: int = 32,
    norm_layer: NormFactory | None = nn.BatchNorm2d,
    activation: ActivationFactory | None = nn.ReLU,
    first_index: int = 0,
    prefix: str = "features",
    layer_scale_init: float | None = None,
    padding: Padding = "symmetric",
) -> BuiltStages:
    """Build the blocks of ``specs`` (stem included) from ``in_channels`` input channels.

    * Widths: ``round_channels(c)``, by default ``make_divisible(c * width_mult,
      round_nearest)``, for ``out_channels`` and ``hidden_channels``.
    * ``total_stride`` (32, 16 or 8): the first one (two) stride-2 blocks get stride 1, so a
      64x64 (32x32) input ends at 4x4 instead of 2x2 (1x1). Only strides change; every weight
      stays the same (see ``docs/concepts.md``).
    * ``feature_info``: a level after the last block of each resolution, named
      ``f"{prefix}.{first_index + i}"`` for block ``i``.
    * ``layer_scale_init`` (e.g. 1e-5): a :class:`~mobilecnn.layers.LayerScale2d` at the end of
      every ``uib`` and ``mqa`` block (MobileNetV4 hybrids, MobileNetV5); ``padding`` is every
      conv's (:data:`~mobilecnn.layers.Padding`).
    """
    if not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}")
    if len(specs) == 0:
        raise ValueError("an architecture table needs at least one BlockSpec")
    for spec in specs:
        if not isinstance(spec, BlockSpec):
            raise ValueError(f"architecture tables hold BlockSpec rows, got {spec!r}")
    strides_to_remove = check_total_stride(total_stride)
    options = _BlockOptions(norm_layer, layer_scale_init, padding)
    if round_channels is None:
        def round_channels(channels: float) -> int:
            return make_divisible(channels * width_mult, round_nearest)

    layers: list[nn.Module] = []
    shapes: list[tuple[int, int]] = []  # (out_channels, stride) per block
    channels = in_channels
    for spec in specs:
        width = round_channels if spec.scale_width else int
        out_channels = width(spec.out_channels)
        hidden = None if spec.hidden_channels is None else width(spec.hidden_channels)
        for repeat in range(spec.repeats):
            stride = spec.stride if repeat == 0 else 1
            if stride == 2 and strides_to_remove > 0:
                strides_to_remove -= 1
                stride = 1
            block_activation = spec.activation if spec.activation is not None else activation
            layers.append(_make_block(spec, channels, out_channels, stride, hidden, options,
                                      block_activation))
            shapes.append((out_channels, stride))
            channels = out_channels
    return BuiltStages(layers, stage_feature_info(shapes, first_index, prefix), channels)


def stage_feature_info(shapes: Sequence[tuple[int, int]], first_index: int = 0,
                       prefix: str = "features") -> FeatureInfoList:
    """Feature levels at the end of each resolution; ``shapes`` is ``(out_channels, stride)``
    per block. A block is a level when the next one downsamples, and the last block is one."""
    info = FeatureInfoList()
    reduction = 1
    for index, (channels, stride) in enumerate(shapes):
        reduction *= stride
        next_stride = shapes[index + 1][1] if index + 1 < len(shapes) else 2
        if next_stride == 2:
            info.append(FeatureInfo(num_chs=channels, reduction=reduction,
                                    module=f"{prefix}.{first_index + index}"))
    return info
