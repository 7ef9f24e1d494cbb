"""The model zoo: one file per architecture, tables as data, and a name registry."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from ._base import FeatureInfo, MobileNetBase
from .builder import BlockSpec, BuiltStages, build_stages
from .mobilenet_v1 import MOBILENET_V1_BLOCKS, MobileNetV1
from .mobilenet_v2 import MOBILENET_V2_SETTING, MobileNetV2
from .mobilenet_v3 import MOBILENET_V3_TABLES, MobileNetV3
from .mobilenet_v4 import MOBILENET_V4_TABLES, MobileNetV4

__all__ = [
    "MOBILENET_V1_BLOCKS",
    "MOBILENET_V2_SETTING",
    "MOBILENET_V3_TABLES",
    "MOBILENET_V4_TABLES",
    "MODELS",
    "BlockSpec",
    "BuiltStages",
    "FeatureInfo",
    "MobileNetBase",
    "MobileNetV1",
    "MobileNetV2",
    "MobileNetV3",
    "MobileNetV4",
    "build_stages",
    "create_model",
]

MODELS: dict[str, Callable[..., MobileNetBase]] = {
    "mobilenet_v1": MobileNetV1,
    "mobilenet_v2": MobileNetV2,
    "mobilenet_v3_large": partial(MobileNetV3, variant="large"),
    "mobilenet_v3_small": partial(MobileNetV3, variant="small"),
    "mobilenet_v4_conv_small": partial(MobileNetV4, variant="conv_small"),
    "mobilenet_v4_conv_medium": partial(MobileNetV4, variant="conv_medium"),
    "mobilenet_v4_conv_large": partial(MobileNetV4, variant="conv_large"),
}
"""Model names accepted by :func:`create_model` and the command line, each with the class (or
the class and its ``variant``) that builds it."""


def create_model(name: str, **kwargs: Any) -> MobileNetBase:
    """Build a model by name (a key of :data:`MODELS`, e.g. ``"mobilenet_v3_small"``) with
    constructor kwargs."""
    try:
        model_class = MODELS[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; choose one of: {', '.join(sorted(MODELS))}"
        ) from None
    if "variant" in kwargs and isinstance(model_class, partial):
        raise ValueError(
            f"the model name {name!r} already fixes the variant; drop variant="
            f"{kwargs['variant']!r} or pick another name: {', '.join(sorted(MODELS))}"
        )
    return model_class(**kwargs)
