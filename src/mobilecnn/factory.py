"""``mobilecnn.create_model``: build a model by name, optionally with pretrained weights.

:func:`mobilecnn.models.create_model` builds the architecture; this adds ``pretrained=``
(published ImageNet weights by tag, or a local file), which needs :mod:`mobilecnn.weights`.
"""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from . import models
from .weights.pretrained import apply_pretrained, fetch_pretrained

__all__ = ["create_model"]


def create_model(
    name: str,
    *,
    pretrained: bool | str | os.PathLike[str] = False,
    progress: bool = True,
    **kwargs: Any,
) -> nn.Module:
    """Build the model ``name`` (see :func:`mobilecnn.list_models`) with ``kwargs`` and,
    with ``pretrained``, load ImageNet weights into it.

    ``pretrained=True`` loads the model's default published weights (downloaded once into
    ``$TORCH_HOME/hub/checkpoints``, checksum verified), ``pretrained="imagenet1k_v1"`` a named
    tag (:func:`~mobilecnn.weights.registry.list_pretrained`), ``pretrained=PATH`` a local
    ``.pth`` / ``.bin`` / ``.safetensors`` file in torchvision, timm or mobilecnn key names.
    With another ``num_classes`` or ``total_stride`` than the weights were trained for, the
    backbone is loaded and the classifier starts fresh. ``model.pretrained_cfg`` then names the
    weights (tag, source, license, published top-1) and their eval preprocessing.
    """
    if pretrained is False or pretrained is None:
        return models.create_model(name, **kwargs)
    if name not in models.MODELS:  # the architecture builder's one-line error, before I/O
        models.create_model(name, **kwargs)
    source = fetch_pretrained(name, pretrained, progress=progress, model_kwargs=kwargs)
    features_only = bool(kwargs.pop("features_only", False))
    feature_kwargs = {key: kwargs.pop(key) for key in ("out_indices",) if key in kwargs}
    model = models.create_model(name, **{**source.model_kwargs, **kwargs})
    apply_pretrained(model, source, total_stride=int(kwargs.get("total_stride", 32)))
    if features_only:
        return _features_of(model, feature_kwargs)
    return model


def _features_of(model: nn.Module, feature_kwargs: dict[str, Any]) -> nn.Module:
    """The multi-scale feature extractor of a loaded model."""
    from .models.features import FeatureExtractor

    return FeatureExtractor(model, **feature_kwargs)  # type: ignore[arg-type]
