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

Hard-swish and hard-sigmoid are ``nn.Hardswish`` / ``nn.Hardsigmoid``: pass them as
``activation=`` like any other factory.
"""

from __future__ import annotations

from .blocks import DepthwiseSeparableConv, InvertedResidual, SqueezeExcite
from .conv import (
    ActivationFactory,
    ConvNormAct,
    NormFactory,
    build_activation,
    check_kernel_size,
    check_se_ratio,
    check_stride,
    make_divisible,
)
from .uib import FusedInvertedResidual, UniversalInvertedResidual

__all__ = [
    "ActivationFactory",
    "ConvNormAct",
    "DepthwiseSeparableConv",
    "FusedInvertedResidual",
    "InvertedResidual",
    "NormFactory",
    "SqueezeExcite",
    "UniversalInvertedResidual",
    "build_activation",
    "check_kernel_size",
    "check_se_ratio",
    "check_stride",
    "make_divisible",
]
