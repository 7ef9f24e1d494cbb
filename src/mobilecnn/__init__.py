"""mobilecnn: exact MobileNetV1-V4 building blocks, counting utilities and TinyImageNet tooling.

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
from .deploy import (
    FeatureExtractor,
    create_feature_extractor,
    export_onnx,
    export_torchscript,
    fold_batchnorm,
    freeze_backbone,
    optimize_for_inference,
    quantize,
    unfreeze_backbone,
)
from .factory import create_model
from .layers import (
    ConvNormAct,
    DepthwiseSeparableConv,
    FusedInvertedResidual,
    InvertedResidual,
    MobileMQA,
    SqueezeExcite,
    UniversalInvertedResidual,
    make_divisible,
)
from .models import (
    MODELS,
    BlockSpec,
    FeatureInfo,
    MobileNetBase,
    MobileNetV1,
    MobileNetV2,
    MobileNetV3,
    MobileNetV4,
    MobileNetV5,
    MobileNetV5Encoder,
    build_stages,
)
from .version import __version__
from .weights import (
    list_pretrained,
    load_timm_state_dict,
    load_torchvision_state_dict,
    to_timm_state_dict,
    to_torchvision_state_dict,
)

__all__ = [
    "MODELS",
    "BlockSpec",
    "ConvComparison",
    "ConvNormAct",
    "DepthwiseSeparableConv",
    "FeatureExtractor",
    "FeatureInfo",
    "FusedInvertedResidual",
    "InvertedResidual",
    "LayerStats",
    "MobileMQA",
    "MobileNetBase",
    "MobileNetV1",
    "MobileNetV2",
    "MobileNetV3",
    "MobileNetV4",
    "MobileNetV5",
    "MobileNetV5Encoder",
    "ModelSummary",
    "SqueezeExcite",
    "UniversalInvertedResidual",
    "__version__",
    "build_stages",
    "conv_comparison",
    "create_feature_extractor",
    "create_model",
    "export_onnx",
    "export_torchscript",
    "fold_batchnorm",
    "freeze_backbone",
    "load_timm_state_dict",
    "list_pretrained",
    "load_torchvision_state_dict",
    "mac_count",
    "make_divisible",
    "optimize_for_inference",
    "param_count",
    "quantize",
    "summary",
    "to_timm_state_dict",
    "to_torchvision_state_dict",
    "unfreeze_backbone",
]
