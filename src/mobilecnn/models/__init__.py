"""The model zoo: one file per architecture, tables as data, and a name registry."""

from __future__ import annotations

from typing import Any

from ._base import FeatureInfo, MobileNetBase
from .mobilenet_v1 import MOBILENET_V1_BLOCKS, MobileNetV1
from .mobilenet_v2 import MOBILENET_V2_SETTING, MobileNetV2

__all__ = [
    "MOBILENET_V1_BLOCKS",
    "MOBILENET_V2_SETTING",
    "MODELS",
    "FeatureInfo",
    "MobileNetBase",
    "MobileNetV1",
    "MobileNetV2",
    "create_model",
]

MODELS: dict[str, type[MobileNetBase]] = {
    "mobilenet_v1": MobileNetV1,
    "mobilenet_v2": MobileNetV2,
}
"""Model names accepted by :func:`create_model` and the command line."""


def create_model(name: str, **kwargs: Any) -> MobileNetBase:
    """Build a model by name (``"mobilenet_v1"`` or ``"mobilenet_v2"``) with constructor kwargs."""
    try:
        model_class = MODELS[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; choose one of: {', '.join(sorted(MODELS))}"
        ) from None
    return model_class(**kwargs)
