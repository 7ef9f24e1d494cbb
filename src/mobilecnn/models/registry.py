"""The model registry: every model name the library, the command line and checkpoints accept."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from ._base import MobileNetBase
from .mobilenet_v1 import MobileNetV1
from .mobilenet_v2 import MobileNetV2
from .mobilenet_v3 import MobileNetV3
from .mobilenet_v4 import MobileNetV4
from .mobilenet_v5 import MobileNetV5, MobileNetV5Encoder

__all__ = ["MODELS", "create_model"]

MODELS: dict[str, Callable[..., MobileNetBase]] = {
    "mobilenet_v1": MobileNetV1,
    "mobilenet_v2": MobileNetV2,
    "mobilenet_v3_large": partial(MobileNetV3, variant="large"),
    "mobilenet_v3_small": partial(MobileNetV3, variant="small"),
    "mobilenet_v4_conv_small": partial(MobileNetV4, variant="conv_small"),
    "mobilenet_v4_conv_medium": partial(MobileNetV4, variant="conv_medium"),
    "mobilenet_v4_conv_large": partial(MobileNetV4, variant="conv_large"),
    "mobilenet_v4_hybrid_medium": partial(MobileNetV4, variant="hybrid_medium"),
    "mobilenet_v4_hybrid_large": partial(MobileNetV4, variant="hybrid_large"),
    "mobilenet_v5_base": partial(MobileNetV5, variant="base"),
    "mobilenet_v5_300m": partial(MobileNetV5, variant="300m"),
    "mobilenet_v5_300m_encoder": partial(MobileNetV5Encoder, variant="300m"),
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
