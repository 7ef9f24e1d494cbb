"""mobilecnn: exact MobileNetV1/V2 building blocks, counting utilities and TinyImageNet tooling.

>>> from mobilecnn import MobileNetV2, param_count
>>> param_count(MobileNetV2())
3504872
"""

from __future__ import annotations

from .counting import (
    ConvComparison,
    LayerStats,
    ModelSummary,
    conv_comparison,
    mac_count,
    param_count,
    summary,
)
from .layers import ConvNormAct, DepthwiseSeparableConv, InvertedResidual, make_divisible
from .models import MODELS, FeatureInfo, MobileNetBase, MobileNetV1, MobileNetV2, create_model

__version__ = "0.1.0"

__all__ = [
    "MODELS",
    "ConvComparison",
    "ConvNormAct",
    "DepthwiseSeparableConv",
    "FeatureInfo",
    "InvertedResidual",
    "LayerStats",
    "MobileNetBase",
    "MobileNetV1",
    "MobileNetV2",
    "ModelSummary",
    "__version__",
    "conv_comparison",
    "create_model",
    "mac_count",
    "make_divisible",
    "param_count",
    "summary",
]
