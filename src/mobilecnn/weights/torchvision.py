"""Weights between ``torchvision.models`` and mobilecnn models, by explicit key rules.

torchvision has ``mobilenet_v2``, ``mobilenet_v3_large`` and ``mobilenet_v3_small``; the
functions dispatch on the model's type. The loading machinery (reading a file, checking every
tensor before copying, naming a state_dict of the wrong model) is
:mod:`~mobilecnn.weights.keymap`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch import nn

from ..layers import ConvNormAct, InvertedResidual
from ..models import MobileNetV2, MobileNetV3
from .keymap import StateDict, load_with_key_map

__all__ = ["load_torchvision_state_dict", "to_torchvision_state_dict", "torchvision_key_map"]

TorchvisionModel = MobileNetV2 | MobileNetV3


def _conv_norm_keys(ours: str, theirs: str, unit: nn.Module) -> dict[str, str]:
    """Key map of one ConvNormAct: ``conv`` -> ``<theirs>.0``, ``bn`` -> ``<theirs>.1``."""
    mapping: dict[str, str] = {}
    for name, _ in unit.state_dict().items():
        child, _, tensor = name.partition(".")
        index = {"conv": "0", "bn": "1"}.get(child)
        if index is None:
            raise ValueError(f"{ours}.{name} has no torchvision counterpart")
        mapping[f"{ours}.{name}"] = f"{theirs}.{index}.{tensor}"
    return mapping


def _project_keys(ours: str, theirs: str, position: int, unit: nn.Module) -> dict[str, str]:
    """The linear projection is flattened in torchvision: ``conv.<p>`` conv, ``conv.<p+1>`` bn."""
    mapping: dict[str, str] = {}
    for name, _ in unit.state_dict().items():
        child, _, tensor = name.partition(".")
        offset = {"conv": 0, "bn": 1}.get(child)
        if offset is None:
            raise ValueError(f"{ours}.{name} has no torchvision counterpart")
        mapping[f"{ours}.{name}"] = f"{theirs}.conv.{position + offset}.{tensor}"
    return mapping


def _v2_block_keys(prefix: str, block: InvertedResidual) -> dict[str, str]:
    mapping: dict[str, str] = {}
    stages = [block.expand] if isinstance(block.expand, ConvNormAct) else []
    stages.append(block.depthwise)
    names = ["expand"] if len(stages) == 2 else []
    names.append("depthwise")
    for position, (name, stage) in enumerate(zip(names, stages, strict=True)):
        mapping.update(_conv_norm_keys(f"{prefix}.{name}", f"{prefix}.conv.{position}", stage))
    mapping.update(_project_keys(f"{prefix}.project", prefix, len(stages), block.project))
    return mapping


def _v3_block_keys(prefix: str, block: InvertedResidual) -> dict[str, str]:
    """torchvision's V3 block is one ``block`` Sequential: [expand], depthwise, [se], project."""
    mapping: dict[str, str] = {}
    position = 0
    for name in ("expand", "depthwise", "se", "project"):
        unit = getattr(block, name)
        if isinstance(unit, ConvNormAct):
            mapping.update(_conv_norm_keys(f"{prefix}.{name}", f"{prefix}.block.{position}",
                                           unit))
        elif unit is not None and name == "se":
            for key in unit.state_dict():
                mapping[f"{prefix}.se.{key}"] = f"{prefix}.block.{position}.{key}"
        else:
            continue
        position += 1
    return mapping


def torchvision_key_map(model: TorchvisionModel) -> dict[str, str]:
    """``{mobilecnn key: torchvision key}`` for every tensor of ``model.state_dict()``, in order.

    The rules for ``mobilenet_v2`` (torchvision on the right)::

        features.0.conv / .bn                 features.0.0 / .1        (stem, and features.18)
        features.i.expand.conv / .bn          features.i.conv.0.0 / .0.1
        features.i.depthwise.conv / .bn       features.i.conv.1.0 / .1.1   (conv.0.* when t == 1)
        features.i.project.conv / .bn         features.i.conv.2 / .3       (conv.1 / .2 when t == 1)
        classifier.1                          classifier.1

    and for ``mobilenet_v3_large`` / ``_small``, where each block is one ``block`` Sequential
    of the parts it has (``expand``, ``depthwise``, ``se``, ``project``, in that order)::

        features.i.<part>.conv / .bn          features.i.block.<position>.0 / .1
        features.i.se.fc1 / .fc2              features.i.block.<position>.fc1 / .fc2
        classifier.0 / classifier.3           classifier.0 / classifier.3
    """
    if isinstance(model, MobileNetV3):
        block_keys = _v3_block_keys
    elif isinstance(model, MobileNetV2):
        block_keys = _v2_block_keys
    else:
        hint = (" (for MobileNetV4 use load_timm_state_dict / timm_key_map)"
                if type(model).__name__ == "MobileNetV4" else "")
        raise TypeError(
            "torchvision weights exist only for MobileNetV2 and MobileNetV3 (torchvision has no "
            f"MobileNetV1 or V4){hint}; got {type(model).__name__}"
        )
    mapping: dict[str, str] = {}
    for index, block in enumerate(model.features):
        prefix = f"features.{index}"
        if isinstance(block, ConvNormAct):
            mapping.update(_conv_norm_keys(prefix, prefix, block))
        elif isinstance(block, InvertedResidual):
            mapping.update(block_keys(prefix, block))
        else:
            raise ValueError(f"{prefix} is a {type(block).__name__}, which torchvision lacks")
    for name in model.classifier.state_dict():
        mapping[f"classifier.{name}"] = f"classifier.{name}"
    return mapping


def _torchvision_candidates() -> dict[str, Callable[[], dict[str, str]]]:
    def key_map(name: str) -> Callable[[], dict[str, str]]:
        def build() -> dict[str, str]:
            from ..models import create_model

            with torch.device("meta"):
                return torchvision_key_map(create_model(name))  # type: ignore[arg-type]
        return build

    names = ("mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small")
    return {name: key_map(name) for name in names}


def load_torchvision_state_dict(
    model: TorchvisionModel,
    state_dict: StateDict | str | os.PathLike[str],
    *,
    include_classifier: bool = True,
) -> TorchvisionModel:
    """Load torchvision ``mobilenet_v2`` / ``mobilenet_v3_large`` / ``mobilenet_v3_small``
    weights (a state_dict or a ``.pth`` path) into a :class:`~mobilecnn.MobileNetV2` or
    :class:`~mobilecnn.MobileNetV3` of the same variant.

    Every tensor is checked before anything is copied, so a failed load leaves ``model``
    unchanged. A different width, number of classes or block table raises ``ValueError``
    naming the first mismatched tensor with both shapes, or the missing/unexpected keys (and
    which torchvision model the keys belong to, e.g. a V3-Small state_dict for a V3-Large).
    ``include_classifier=False`` loads all but the last linear layer (for fine-tuning on other
    classes). ``num_batches_tracked`` counters are optional (old checkpoints lack them).
    Returns ``model``.
    """
    mapping = torchvision_key_map(model)
    load_with_key_map(model, mapping, state_dict, include_classifier=include_classifier,
                      library="torchvision", candidates=_torchvision_candidates())
    return model


def to_torchvision_state_dict(model: TorchvisionModel) -> dict[str, torch.Tensor]:
    """``model``'s weights under torchvision key names (tensors are detached copies)."""
    mapping = torchvision_key_map(model)
    state = model.state_dict()
    return {mapping[key]: value.detach().clone() for key, value in state.items()}
