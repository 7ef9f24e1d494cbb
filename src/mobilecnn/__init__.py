"""mobilecnn: exact MobileNetV1-V4 building blocks, counting utilities and TinyImageNet tooling.

>>> from mobilecnn import MobileNetV2, param_count
>>> param_count(MobileNetV2())
3504872
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .counting import (
    ConvComparison,
    LayerStats,
    ModelSummary,
    conv_comparison,
    mac_count,
    param_count,
    summary,
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
    is_model,
    list_models,
)
from .models.features import FeatureExtractor
from .models.freeze import freeze_backbone, unfreeze_backbone
from .models.registry import create_feature_extractor
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
    "is_model",
    "list_models",
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


# mobilecnn.deploy (export, int8, benchmarks) is imported on first use: it pulls in modules
# (statistics -> fractions, ...) that every `import mobilecnn` and CLI call would pay for.
_DEPLOY_NAMES = ("export_onnx", "export_torchscript", "fold_batchnorm", "optimize_for_inference",
                 "quantize")
_LAZY_MODULES = ("deploy", "inference", "train", "data", "cli")

if TYPE_CHECKING:
    from .deploy import (
        export_onnx,
        export_torchscript,
        fold_batchnorm,
        optimize_for_inference,
        quantize,
    )


def __getattr__(name: str) -> Any:
    if name in _DEPLOY_NAMES:
        value = getattr(importlib.import_module(".deploy", __name__), name)
        globals()[name] = value
        return value
    if name in _LAZY_MODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_LAZY_MODULES))
