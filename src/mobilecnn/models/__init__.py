"""The model zoo: one file per architecture, tables as data, and a name registry.

* :mod:`~mobilecnn.models.builder` - :class:`BlockSpec` tables -> stages (the one stage builder);
* :mod:`~mobilecnn.models.mobilenet_v1` ... :mod:`~mobilecnn.models.mobilenet_v5` - one table
  and head per generation;
* :mod:`~mobilecnn.models.registry` - :data:`MODELS`, :func:`list_models`, :func:`is_model`,
  :func:`create_model` and :func:`create_feature_extractor`;
* :mod:`~mobilecnn.models.features` - :class:`FeatureExtractor` (multi-scale maps);
* :mod:`~mobilecnn.models.checks` - constructor argument checks and the traceable input check;
* :mod:`~mobilecnn.models.checkpointing` - gradient checkpointing of the blocks;
* :mod:`~mobilecnn.models.freeze` - :func:`freeze_backbone`, :class:`FrozenBatchNorm2d`.
"""

from __future__ import annotations

from ._base import FeatureInfo, FeatureInfoList, MobileNetBase
from .builder import BlockSpec, BuiltStages, build_stages
from .features import FeatureExtractor
from .mobilenet_v1 import MOBILENET_V1_BLOCKS, MobileNetV1
from .mobilenet_v2 import MOBILENET_V2_SETTING, MobileNetV2
from .mobilenet_v3 import MOBILENET_V3_TABLES, MobileNetV3
from .mobilenet_v4 import MOBILENET_V4_TABLES, MobileNetV4
from .mobilenet_v5 import MOBILENET_V5_TABLES, MobileNetV5, MobileNetV5Encoder
from .registry import MODELS, create_feature_extractor, create_model, is_model, list_models

__all__ = [
    "MOBILENET_V1_BLOCKS",
    "MOBILENET_V2_SETTING",
    "MOBILENET_V3_TABLES",
    "MOBILENET_V4_TABLES",
    "MOBILENET_V5_TABLES",
    "MODELS",
    "BlockSpec",
    "BuiltStages",
    "FeatureExtractor",
    "FeatureInfo",
    "FeatureInfoList",
    "MobileNetBase",
    "MobileNetV1",
    "MobileNetV2",
    "MobileNetV3",
    "MobileNetV4",
    "MobileNetV5",
    "MobileNetV5Encoder",
    "build_stages",
    "create_feature_extractor",
    "create_model",
    "is_model",
    "list_models",
]
