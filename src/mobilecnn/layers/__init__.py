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
* :class:`MobileMQA` - Mobile Multi-Query Attention (MobileNetV4 hybrids, MobileNetV5), built on
  :class:`MultiQueryAttention2d` and :class:`ScaledDotProductAttention`.
* :class:`RMSNorm2d`, :class:`LayerScale2d` - MobileNetV5's normalization; per-channel
  residual scaling.
* :class:`MultiScaleFusionAdapter` - MobileNetV5's fusion of its stride-16 and stride-32 maps.
* :class:`SamePad2d` - TensorFlow "SAME" padding for strided convs (``padding="same"``).

Hard-swish and hard-sigmoid are ``nn.Hardswish`` / ``nn.Hardsigmoid``: pass them as
``activation=`` like any other factory.
"""

from __future__ import annotations

from .attention import MobileMQA, MultiQueryAttention2d, ScaledDotProductAttention
from .blocks import DepthwiseSeparableConv, InvertedResidual, SqueezeExcite
from .conv import (
    ActivationFactory,
    ConvNormAct,
    NormFactory,
    Padding,
    SamePad2d,
    build_activation,
    check_kernel_size,
    check_se_ratio,
    check_stride,
    make_divisible,
)
from .fusion import MultiScaleFusionAdapter
from .norm import LayerScale2d, RMSNorm2d
from .uib import FusedInvertedResidual, UniversalInvertedResidual

__all__ = [
    "ActivationFactory",
    "ConvNormAct",
    "DepthwiseSeparableConv",
    "FusedInvertedResidual",
    "InvertedResidual",
    "LayerScale2d",
    "MobileMQA",
    "MultiQueryAttention2d",
    "MultiScaleFusionAdapter",
    "NormFactory",
    "Padding",
    "RMSNorm2d",
    "SamePad2d",
    "ScaledDotProductAttention",
    "SqueezeExcite",
    "UniversalInvertedResidual",
    "build_activation",
    "check_kernel_size",
    "check_se_ratio",
    "check_stride",
    "make_divisible",
]
