"""``pretrained=``: find the weights (a published tag or a local file), read them, load them.

:func:`fetch_pretrained` turns ``True`` / a tag / a path into a :class:`PretrainedSource` (the
tensors, their key layout and, for published weights, their registry entry);
:func:`apply_pretrained` loads it into a built model through the exact torchvision / timm
loaders and records the weights in ``model.pretrained_cfg``. The classifier is loaded only when
the model has the weights' classes at the ImageNet resolution (``total_stride=32``); otherwise
the backbone is loaded and the classifier starts fresh, as ``mobilecnn train --init`` does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..models import MobileNetBase
from .download import download_weights
from .keymap import read_state_dict
from .registry import PretrainedWeights, get_pretrained
from .timm import load_timm_state_dict, timm_key_map
from .torchvision import load_torchvision_state_dict, torchvision_key_map

__all__ = ["PretrainedSource", "apply_pretrained", "fetch_pretrained", "read_weights_file"]

Pretrained = bool | str | os.PathLike[str]


@dataclass
class PretrainedSource:
    """Weights ready to load: tensors under upstream (or mobilecnn) key names."""

    state: dict[str, torch.Tensor]
    layout: str  # "torchvision", "timm" or "mobilecnn"
    origin: str  # the file the tensors came from
    weights: PretrainedWeights | None = None  # the registry entry of published weights
    model_kwargs: dict[str, Any] = field(default_factory=dict)


def read_weights_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The tensors of a ``.pth``/``.bin`` (loaded with ``weights_only``) or ``.safetensors``
    file; checkpoint wrappers (``"state_dict"``, ``"model"``) and ``module.`` are removed."""
    path = Path(path).expanduser()
    if path.suffix != ".safetensors":
        return read_state_dict(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {str(path)!r}")
    try:
        from safetensors.torch import load_file
    except ImportError as error:
        raise ImportError("reading .safetensors files needs the safetensors package: "
                          "pip install 'mobilecnn[safetensors]'") from error
    try:
        return read_state_dict(load_file(str(path)))
    except Exception as error:  # safetensors raises its own error types
        raise ValueError(f"{str(path)!r} is not a readable safetensors file: {error}") from None


def _layout(state: dict[str, torch.Tensor], origin: str) -> str:
    if "conv_stem.weight" in state:
        return "timm"
    if "features.0.0.weight" in state:
        return "torchvision"
    if "features.0.conv.weight" in state:
        return "mobilecnn"
    raise ValueError(f"{origin} holds no torchvision, timm or mobilecnn MobileNet weights (no "
                     "'features.0.0.weight', 'conv_stem.weight' or 'features.0.conv.weight')")


def fetch_pretrained(name: str, pretrained: Pretrained, *, progress: bool = True,
                     model_kwargs: Mapping[str, Any] | None = None) -> PretrainedSource:
    """Resolve ``pretrained`` for model ``name``: ``True`` (the default published weights), a
    tag (``"imagenet1k_v1"``, see :func:`~mobilecnn.weights.registry.list_pretrained`) or a
    path to a local ``.pth`` / ``.bin`` / ``.safetensors`` file in torchvision, timm or
    mobilecnn key names. Published weights are downloaded once (see
    :func:`~mobilecnn.weights.download.download_weights`); ``model_kwargs`` (those the model
    will be built with) are checked against them first."""
    weights: PretrainedWeights | None = None
    if pretrained is True:
        weights = get_pretrained(name)
    elif isinstance(pretrained, str) and not _looks_like_path(pretrained):
        weights = get_pretrained(name, pretrained)
    elif not isinstance(pretrained, (str, os.PathLike)):
        raise ValueError(f"pretrained must be True, False, a weights tag or a file path, got "
                         f"{pretrained!r}")
    if weights is not None:
        _check_fits(weights, dict(model_kwargs or {}))
        path = download_weights(weights.url, weights.file_name, weights.sha256,
                                progress=progress)
    else:
        path = Path(pretrained).expanduser()  # type: ignore[arg-type]
    state = read_weights_file(path)
    layout = _layout(state, str(path))
    kwargs = dict(weights.model_kwargs) if weights is not None else {}
    if weights is None and layout == "timm" and name == "mobilenet_v1":
        kwargs = dict(get_pretrained("mobilenet_v1").model_kwargs)  # timm's V1 uses ReLU6
    return PretrainedSource(state, layout, str(path), weights, kwargs)


def _check_fits(weights: PretrainedWeights, kwargs: dict[str, Any]) -> None:
    width = kwargs.get("width_mult", 1.0)
    if width != 1.0:
        raise ValueError(f"the published {weights.tag} weights are for width_mult=1.0, not "
                         f"{width}; pass pretrained=PATH for weights of another width")
    channels = kwargs.get("in_channels", kwargs.get("in_chans", 3))
    if channels != 3:
        raise ValueError(f"pretrained weights take 3-channel (RGB) images, not {channels}; "
                         "build the model with 3 input channels")


def _looks_like_path(text: str) -> bool:
    return (os.sep in text or "/" in text or Path(text).suffix in (".pth", ".pt", ".bin",
            ".safetensors") or Path(text).expanduser().exists())


def _key_map(model: MobileNetBase, layout: str) -> dict[str, str]:
    """``{mobilecnn key: key in the file}`` for ``model`` in ``layout``."""
    if layout == "timm":
        return timm_key_map(model)  # type: ignore[arg-type]
    if layout == "torchvision":
        return torchvision_key_map(model)  # type: ignore[arg-type]
    return {key: key for key in model.state_dict()}


def _classifier_rows(model: MobileNetBase, source: PretrainedSource) -> int | None:
    """The number of classes the weights' last linear layer has (None if the model has no
    linear layer there, as with ``num_classes=0``)."""
    last = f"classifier.{len(model.classifier) - 1}.weight"
    tensor = source.state.get(_key_map(model, source.layout).get(last, ""))
    return None if tensor is None else int(tensor.shape[0])


def apply_pretrained(model: MobileNetBase, source: PretrainedSource, *, total_stride: int = 32
                     ) -> MobileNetBase:
    """Load ``source`` into ``model`` and record it in ``model.pretrained_cfg``.

    Every tensor is checked before anything is copied (a mismatch raises a one-line
    ``ValueError`` and leaves ``model`` unchanged). The classifier is loaded only when the
    weights have the model's classes and ``total_stride`` is 32.
    """
    if model.in_channels != 3:
        raise ValueError(f"pretrained weights take 3-channel (RGB) images; this model has "
                         f"in_channels={model.in_channels}: build it with 3 input channels")
    if source.weights is not None:
        _check_fits(source.weights, {"width_mult": getattr(model, "width_mult", 1.0)})
    try:
        whole = _classifier_rows(model, source) == model.num_classes and total_stride == 32
        _load(model, source, include_classifier=whole)
    except TypeError as error:  # a layout the model's family has no weights in
        raise ValueError(f"{source.origin}: {error}") from None
    meta: dict[str, Any] = (source.weights.cfg() if source.weights is not None else
                            {"tag": None, "source": f"local file ({source.layout} layout)",
                             "url": None, "file": source.origin})
    if total_stride != 32:  # the eval size follows the model, not the ImageNet weights
        meta = {key: value for key, value in meta.items()
                if key not in ("input_size", "crop_pct")}
    meta["classifier_pretrained"] = whole
    cfg = {**(getattr(model, "pretrained_cfg", None) or {}), **meta}
    setattr(model, "pretrained_cfg", cfg)  # noqa: B010 - a plain attribute of the module
    return model


def _load(model: MobileNetBase, source: PretrainedSource, *, include_classifier: bool) -> None:
    state = source.state
    if not include_classifier:  # a model without the last linear layer (num_classes=0)
        known = set(_key_map(model, source.layout).values())
        state = {key: value for key, value in state.items()
                 if key in known or not key.startswith("classifier")}
    if source.layout == "timm":
        load_timm_state_dict(model, state,  # type: ignore[arg-type]
                             include_classifier=include_classifier)
    elif source.layout == "torchvision":
        load_torchvision_state_dict(model, state,  # type: ignore[arg-type]
                                    include_classifier=include_classifier)
    else:
        _load_own(model, PretrainedSource(state, source.layout, source.origin),
                  include_classifier=include_classifier)


def _load_own(model: MobileNetBase, source: PretrainedSource, *, include_classifier: bool
              ) -> None:
    """Weights saved by mobilecnn itself (``model.state_dict()`` or a training checkpoint)."""
    from .keymap import load_with_key_map

    mapping = {key: key for key in model.state_dict()}
    load_with_key_map(model, mapping, source.state, include_classifier=include_classifier,
                      library="mobilecnn", candidates={})
