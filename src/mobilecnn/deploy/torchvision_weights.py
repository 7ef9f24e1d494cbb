"""Weights between ``torchvision.models`` and mobilecnn models, by explicit key rules."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..layers import ConvNormAct, InvertedResidual
from ..models import MobileNetV2

__all__ = ["load_torchvision_state_dict", "to_torchvision_state_dict", "torchvision_key_map"]

StateDict = Mapping[str, torch.Tensor]


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


def torchvision_key_map(model: MobileNetV2) -> dict[str, str]:
    """``{mobilecnn key: torchvision key}`` for every tensor of ``model.state_dict()``, in order.

    The rules (torchvision ``mobilenet_v2`` on the right)::

        features.0.conv / .bn                 features.0.0 / .1        (stem, and features.18)
        features.i.expand.conv / .bn          features.i.conv.0.0 / .0.1
        features.i.depthwise.conv / .bn       features.i.conv.1.0 / .1.1   (conv.0.* when t == 1)
        features.i.project.conv / .bn         features.i.conv.2 / .3       (conv.1 / .2 when t == 1)
        classifier.1                          classifier.1
    """
    if not isinstance(model, MobileNetV2):
        raise TypeError(
            "torchvision weights exist only for MobileNetV2 (torchvision has no MobileNetV1); "
            f"got {type(model).__name__}"
        )
    mapping: dict[str, str] = {}
    for index, block in enumerate(model.features):
        prefix = f"features.{index}"
        if isinstance(block, ConvNormAct):
            mapping.update(_conv_norm_keys(prefix, prefix, block))
        elif isinstance(block, InvertedResidual):
            stages = [block.expand] if isinstance(block.expand, ConvNormAct) else []
            stages.append(block.depthwise)
            names = ["expand"] if len(stages) == 2 else []
            names.append("depthwise")
            for position, (name, stage) in enumerate(zip(names, stages, strict=True)):
                mapping.update(
                    _conv_norm_keys(f"{prefix}.{name}", f"{prefix}.conv.{position}", stage)
                )
            mapping.update(_project_keys(f"{prefix}.project", prefix, len(stages), block.project))
        else:
            raise ValueError(f"{prefix} is a {type(block).__name__}, which torchvision lacks")
    for name in model.classifier.state_dict():
        mapping[f"classifier.{name}"] = f"classifier.{name}"
    return mapping


def _read_state_dict(source: StateDict | str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """A flat ``{key: tensor}`` from a mapping or a ``.pth`` file (loaded with weights_only)."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no state_dict file at {str(path)!r}")
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # pickle errors come in many types
            raise ValueError(
                f"{str(path)!r} is not a loadable PyTorch state_dict: {error}"
            ) from None
    else:
        loaded = source
    if not isinstance(loaded, Mapping):
        raise ValueError(f"expected a state_dict (a mapping of names to tensors), got "
                         f"{type(loaded).__name__}")
    # Training checkpoints often wrap the weights; DataParallel prefixes them with "module.".
    for wrapper in ("state_dict", "model"):
        if isinstance(loaded.get(wrapper), Mapping):
            loaded = loaded[wrapper]
            break
    state = {
        (key[len("module."):] if key.startswith("module.") else key): value
        for key, value in loaded.items()
    }
    not_tensors = [key for key, value in state.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise ValueError(f"expected a state_dict of tensors, but {not_tensors[0]!r} is a "
                         f"{type(state[not_tensors[0]]).__name__}")
    return state


def load_torchvision_state_dict(
    model: MobileNetV2,
    state_dict: StateDict | str | os.PathLike[str],
    *,
    include_classifier: bool = True,
) -> MobileNetV2:
    """Load torchvision ``mobilenet_v2`` weights (a state_dict or a ``.pth`` path) into ``model``.

    Every tensor is checked before anything is copied, so a failed load leaves ``model``
    unchanged. A different width, number of classes or block table raises ``ValueError``
    naming the first mismatched tensor with both shapes, or the missing/unexpected keys.
    ``include_classifier=False`` loads only the backbone (for fine-tuning on other classes).
    ``num_batches_tracked`` counters are optional (old checkpoints lack them). Returns ``model``.
    """
    mapping = torchvision_key_map(model)
    source = _read_state_dict(state_dict)
    if not include_classifier:
        mapping = {ours: theirs for ours, theirs in mapping.items()
                   if not ours.startswith("classifier.")}
        source = {key: value for key, value in source.items()
                  if not key.startswith("classifier.")}
    target = model.state_dict()
    missing = [theirs for ours, theirs in mapping.items()
               if theirs not in source and not ours.endswith("num_batches_tracked")]
    unexpected = sorted(set(source) - set(mapping.values()))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (first: {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (first: {', '.join(unexpected[:3])})")
        raise ValueError(
            "the state_dict is not a torchvision mobilenet_v2 with this model's block table: "
            + "; ".join(parts)
        )
    converted: dict[str, torch.Tensor] = {}
    for ours, theirs in mapping.items():
        if theirs not in source:
            continue
        expected = target[ours].shape
        found = source[theirs].shape
        if expected != found:
            raise ValueError(
                f"shape mismatch at torchvision tensor {theirs!r} (mobilecnn {ours!r}): "
                f"state_dict has {tuple(found)}, model expects {tuple(expected)}; check that "
                f"width_mult (model: {model.width_mult}) and num_classes (model: "
                f"{model.num_classes}) match the weights, or pass include_classifier=False"
            )
        converted[ours] = source[theirs]
    model.load_state_dict(converted, strict=False)
    return model


def to_torchvision_state_dict(model: MobileNetV2) -> dict[str, torch.Tensor]:
    """``model``'s weights under torchvision ``mobilenet_v2`` key names (tensors are detached)."""
    mapping = torchvision_key_map(model)
    state = model.state_dict()
    return {mapping[key]: value.detach().clone() for key, value in state.items()}
