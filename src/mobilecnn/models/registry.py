"""The model registry: every model name the library, the command line and checkpoints accept,
and :func:`create_model`, which builds a model (or its feature extractor) by name with timm's
argument names."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Literal, overload

from ..limits import NUM_CLASSES
from ._base import MobileNetBase
from .checks import check_count, check_drop_rate
from .features import FeatureExtractor
from .mobilenet_v1 import MobileNetV1
from .mobilenet_v2 import MobileNetV2
from .mobilenet_v3 import MobileNetV3
from .mobilenet_v4 import MobileNetV4
from .mobilenet_v5 import MobileNetV5, MobileNetV5Encoder

__all__ = ["MODELS", "create_feature_extractor", "create_model", "is_model", "list_models"]

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


def list_models(pattern: str | Sequence[str] | None = None) -> list[str]:
    """Sorted model names, all or those matching the shell-style ``pattern`` (or any of several
    patterns), e.g. ``list_models("mobilenet_v3*")``."""
    if pattern is None:
        return sorted(MODELS)
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    for one in patterns:
        if not isinstance(one, str):
            raise TypeError(f"pattern must be a string such as 'mobilenet_v3*' (or a list of "
                            f"them), got {one!r}")
    return sorted(name for name in MODELS
                  if any(fnmatch.fnmatchcase(name, one) for one in patterns))


def is_model(name: str) -> bool:
    """Whether ``name`` is a registered model name."""
    return isinstance(name, str) and name in MODELS


def _renamed(model_kwargs: dict[str, Any], timm_name: str, value: Any, own_name: str) -> None:
    """Put timm's argument ``timm_name`` into ``model_kwargs`` under the constructor's name."""
    if value is None:
        return
    if own_name in model_kwargs:
        raise ValueError(f"{timm_name}= and {own_name}= are the same argument; pass only one")
    model_kwargs[own_name] = value


@overload
def create_model(name: str, *, pretrained: bool | str | os.PathLike[str] = ...,
                 num_classes: int | None = ..., in_chans: int | None = ...,
                 features_only: Literal[False] = ..., out_indices: Sequence[int] | None = ...,
                 drop_rate: float | None = ..., total_stride: int | None = ...,
                 **model_kwargs: Any) -> MobileNetBase: ...


@overload
def create_model(name: str, *, pretrained: bool | str | os.PathLike[str] = ...,
                 num_classes: int | None = ..., in_chans: int | None = ...,
                 features_only: Literal[True], out_indices: Sequence[int] | None = ...,
                 drop_rate: float | None = ..., total_stride: int | None = ...,
                 **model_kwargs: Any) -> FeatureExtractor: ...


def create_model(
    name: str,
    *,
    pretrained: bool | str | os.PathLike[str] = False,
    num_classes: int | None = None,
    in_chans: int | None = None,
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    drop_rate: float | None = None,
    total_stride: int | None = None,
    **model_kwargs: Any,
) -> MobileNetBase | FeatureExtractor:
    """Build a registered model by name, with timm's argument names.

    ``None`` keeps the model's default. ``num_classes=0`` gives pooled features;
    ``in_chans`` and ``drop_rate`` are the constructor's ``in_channels`` and ``dropout``;
    ``features_only=True`` returns the :class:`FeatureExtractor` of the levels
    ``out_indices`` (default: all). Other keywords go to the model's constructor.
    This builds architectures only (random weights): weights are loaded by
    ``mobilecnn.create_model(name, pretrained=...)``.
    """
    if not isinstance(name, str) or name not in MODELS:
        raise ValueError(
            f"unknown model {name!r}; choose one of: {', '.join(sorted(MODELS))}"
        )
    if pretrained:
        raise ValueError("mobilecnn.models.create_model builds random weights only; for "
                         f"pretrained weights call mobilecnn.create_model({name!r}, "
                         f"pretrained={pretrained!r})")
    model_class = MODELS[name]
    if "variant" in model_kwargs and isinstance(model_class, partial):
        raise ValueError(
            f"the model name {name!r} already fixes the variant; drop variant="
            f"{model_kwargs['variant']!r} or pick another name: {', '.join(sorted(MODELS))}"
        )
    if not isinstance(features_only, bool):
        raise TypeError(f"features_only must be True or False, got {features_only!r}")
    if out_indices is not None and not features_only:
        raise ValueError("out_indices selects the levels of features_only=True; pass "
                         "features_only=True too, or drop out_indices")
    if num_classes is not None:
        model_kwargs["num_classes"] = check_count(num_classes, "num_classes", minimum=0,
                                                  limit=NUM_CLASSES)
    _renamed(model_kwargs, "in_chans", in_chans, "in_channels")
    if drop_rate is not None:
        _renamed(model_kwargs, "drop_rate", check_drop_rate(drop_rate, "drop_rate"), "dropout")
    if total_stride is not None:
        model_kwargs["total_stride"] = total_stride
    model = model_class(**model_kwargs)
    if features_only:
        return FeatureExtractor(model, out_indices)
    return model


def create_feature_extractor(
    model: MobileNetBase | str,
    out_indices: Sequence[int] | None = None,
    **model_kwargs: Any,
) -> FeatureExtractor:
    """A :class:`FeatureExtractor` of ``model``, or of ``create_model(model, **model_kwargs)``
    when given a name (the same as ``create_model(name, features_only=True, ...)``)."""
    if isinstance(model, str):
        return create_model(model, features_only=True, out_indices=out_indices, **model_kwargs)
    if model_kwargs:
        raise ValueError("model_kwargs are only used when model is a name; got a model and "
                         f"{sorted(model_kwargs)}")
    return FeatureExtractor(model, out_indices)
