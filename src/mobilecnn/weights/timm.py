"""Weights between timm's ``mobilenetv1_100`` / ``mobilenetv4_*`` / ``mobilenetv5_*`` models
and :class:`~mobilecnn.MobileNetV1` / :class:`~mobilecnn.MobileNetV4` /
:class:`~mobilecnn.MobileNetV5`.

timm is not a dependency: these functions only rename tensors. timm groups blocks into stages
(``blocks.<stage>.<index>``, a new stage at every stride-2 block of the table); mobilecnn keeps
them flat in ``features`` (``features.<i>``), so the map is computed from the variant's table.
timm's MobileNetV1 uses ReLU6: build ``MobileNetV1(activation=nn.ReLU6)`` for its weights.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial

import torch
from torch import nn

from ..layers import (
    ConvNormAct,
    DepthwiseSeparableConv,
    FusedInvertedResidual,
    MobileMQA,
    UniversalInvertedResidual,
)
from ..models import MobileNetV1, MobileNetV4, MobileNetV5, MobileNetV5Encoder
from ..models.builder import BlockSpec
from ..models.mobilenet_v1 import MOBILENET_V1_BLOCKS
from ..models.mobilenet_v4 import MOBILENET_V4_TABLES
from ..models.mobilenet_v5 import MOBILENET_V5_TABLES
from .keymap import StateDict, load_with_key_map

TimmModel = MobileNetV1 | MobileNetV4 | MobileNetV5
"""The models with timm weights: MobileNetV1, every MobileNetV4 and MobileNetV5 (encoder
included)."""

__all__ = ["load_timm_state_dict", "timm_key_map", "to_timm_state_dict"]

# mobilecnn child -> timm child, per block type
_UIB_PARTS = {"start_depthwise": "dw_start", "expand": "pw_exp", "middle_depthwise": "dw_mid",
              "project": "pw_proj", "layer_scale": "layer_scale"}
_MQA_PARTS = {"norm": "norm", "attn.query_proj": "attn.query.proj",
              "attn.key_down.conv": "attn.key.down_conv", "attn.key_down.bn": "attn.key.norm",
              "attn.key_proj": "attn.key.proj", "attn.value_down.conv": "attn.value.down_conv",
              "attn.value_down.bn": "attn.value.norm", "attn.value_proj": "attn.value.proj",
              "attn.out_proj": "attn.output.proj", "layer_scale": "layer_scale"}
_FUSED_PARTS = {"expand.conv": "conv_exp", "expand.bn": "bn1", "project.conv": "conv_pwl",
                "project.bn": "bn2"}
_SEPARABLE_PARTS = {"depthwise.conv": "conv_dw", "depthwise.bn": "bn1",
                    "pointwise.conv": "conv_pw", "pointwise.bn": "bn2"}


def _timm_block_prefixes(table: tuple[BlockSpec, ...], last_conv: bool) -> list[str]:
    """timm's ``blocks.<stage>.<index>`` for ``features[1:]`` (with ``last_conv``, V4's last
    1x1 conv, a stage of its own)."""
    prefixes: list[str] = []
    stage, index = -1, 0
    for spec in table[1:]:  # the stem is conv_stem / bn1
        for repeat in range(spec.repeats):
            if repeat == 0 and spec.stride == 2:  # the table's stride, before total_stride
                stage, index = stage + 1, 0
            prefixes.append(f"blocks.{stage}.{index}")
            index += 1
    if last_conv:
        prefixes.append(f"blocks.{stage + 1}.0")
    return prefixes


def _unit_keys(ours: str, theirs: str, unit: nn.Module, parts: dict[str, str]) -> dict[str, str]:
    """Rename ``<ours>.<part>.<tensor>`` to ``<theirs>.<parts[part]>.<tensor>``."""
    mapping: dict[str, str] = {}
    for key in unit.state_dict():
        for part, timm_part in parts.items():
            if key.startswith(part + "."):
                mapping[f"{ours}.{key}"] = f"{theirs}.{timm_part}.{key[len(part) + 1:]}"
                break
        else:
            raise ValueError(f"{ours}.{key} has no timm counterpart")
    return mapping


def _block_keys(ours: str, theirs: str, block: nn.Module) -> dict[str, str]:
    if isinstance(block, ConvNormAct):
        return _unit_keys(ours, theirs, block, {"conv": "conv", "bn": "bn1"})
    if isinstance(block, UniversalInvertedResidual):
        return _unit_keys(ours, theirs, block, _UIB_PARTS)
    if isinstance(block, FusedInvertedResidual):
        return _unit_keys(ours, theirs, block, _FUSED_PARTS)
    if isinstance(block, MobileMQA):
        return _unit_keys(ours, theirs, block, _MQA_PARTS)
    raise ValueError(f"{ours} is a {type(block).__name__}, which timm's MobileNets lack")


def timm_key_map(model: TimmModel) -> dict[str, str]:
    """``{mobilecnn key: timm key}`` for every tensor of ``model.state_dict()``, in order.

    The rules (timm ``mobilenetv4_*`` / ``mobilenetv5_*`` on the right)::

        features.0.conv / .bn                    conv_stem / bn1 (V5: conv_stem.conv / .bn)
        features.i.conv / .bn  (ConvNormAct)     blocks.s.j.conv / .bn1
        features.i.expand / .project  (fused)    blocks.s.j.conv_exp, .bn1 / .conv_pwl, .bn2
        features.i.start_depthwise (UIB)         blocks.s.j.dw_start      (.conv / .bn)
        features.i.expand / .middle_depthwise    blocks.s.j.pw_exp / .dw_mid
        features.i.project / .layer_scale        blocks.s.j.pw_proj / .layer_scale
        features.i.norm / .layer_scale (MQA)     blocks.s.j.norm / .layer_scale
        features.i.attn.query_proj               blocks.s.j.attn.query.proj
        features.i.attn.key_down.conv / .bn      blocks.s.j.attn.key.down_conv / .norm
        features.i.attn.key_proj (value alike)   blocks.s.j.attn.key.proj
        features.i.attn.out_proj                 blocks.s.j.attn.output.proj
        fusion.ffn.expand / .project, .norm      msfa.ffn.pw_exp / .pw_proj, msfa.norm (V5)
        head.conv / head.bn                      conv_head / norm_head (V4)
        classifier.1                             classifier
    """
    if isinstance(model, MobileNetV1):
        return _v1_key_map(model)
    if not isinstance(model, (MobileNetV4, MobileNetV5)):
        raise TypeError(f"timm weights are mapped only for MobileNetV1, MobileNetV4 and "
                        f"MobileNetV5 (use "
                        f"load_torchvision_state_dict for V2/V3); got {type(model).__name__}")
    is_v4 = isinstance(model, MobileNetV4)
    table = (MOBILENET_V4_TABLES if is_v4 else MOBILENET_V5_TABLES)[model.variant]
    prefixes = _timm_block_prefixes(table, last_conv=is_v4)
    stem = {"conv": "conv_stem", "bn": "bn1"} if is_v4 else {"conv": "conv_stem.conv",
                                                              "bn": "conv_stem.bn"}
    mapping: dict[str, str] = {}
    for index, block in enumerate(model.features):
        ours = f"features.{index}"
        if index == 0:
            mapping.update(_unit_keys(ours, "", block, stem))
        else:
            mapping.update(_block_keys(ours, prefixes[index - 1], block))
    if isinstance(model, MobileNetV4):
        mapping.update(_unit_keys("head", "", model.head, {"conv": "conv_head",
                                                           "bn": "norm_head"}))
    else:
        mapping.update(_unit_keys("fusion", "", model.fusion,
                                  {"ffn.expand": "msfa.ffn.pw_exp",
                                   "ffn.project": "msfa.ffn.pw_proj", "norm": "msfa.norm"}))
    if not isinstance(model, MobileNetV5Encoder):
        mapping.update(_unit_keys("classifier", "", model.classifier, {"1": "classifier"}))
    return {ours: theirs.lstrip(".") for ours, theirs in mapping.items()}


def _v1_key_map(model: MobileNetV1) -> dict[str, str]:
    """MobileNetV1 (timm ``mobilenetv1_100``): ``features.0`` is timm's stem, ``features.i``
    its ``blocks.s.j`` (a new stage at the first block and at every stride-2 block of Table 1:
    ``depthwise`` / ``pointwise`` -> ``conv_dw``, ``bn1`` / ``conv_pw``, ``bn2``)."""
    mapping = _unit_keys("features.0", "", model.features[0], {"conv": "conv_stem", "bn": "bn1"})
    stage, index = -1, 0
    for position, (_, stride) in enumerate(MOBILENET_V1_BLOCKS, start=1):
        stage, index = (stage + 1, 0) if position == 1 or stride == 2 else (stage, index + 1)
        block = model.features[position]
        if not isinstance(block, DepthwiseSeparableConv):
            raise ValueError(f"features.{position} is a {type(block).__name__}, which timm's "
                             "MobileNetV1 lacks")
        mapping.update(_unit_keys(f"features.{position}", f"blocks.{stage}.{index}", block,
                                  _SEPARABLE_PARTS))
    mapping.update(_unit_keys("classifier", "", model.classifier, {"1": "classifier"}))
    return {ours: theirs.lstrip(".") for ours, theirs in mapping.items()}


def _timm_candidates() -> dict[str, Callable[[], dict[str, str]]]:
    def key_map(build_model: Callable[[], TimmModel]) -> Callable[[], dict[str, str]]:
        def build() -> dict[str, str]:
            with torch.device("meta"):
                return timm_key_map(build_model())
        return build

    candidates = {"mobilenet_v1": key_map(MobileNetV1)}
    candidates.update({f"mobilenet_v4_{variant}": key_map(partial(MobileNetV4, variant))
                       for variant in MOBILENET_V4_TABLES})
    candidates.update({f"mobilenet_v5_{variant}": key_map(partial(MobileNetV5, variant))
                       for variant in MOBILENET_V5_TABLES})
    candidates["mobilenet_v5_300m_encoder"] = key_map(MobileNetV5Encoder)
    return candidates


def load_timm_state_dict(
    model: TimmModel,
    state_dict: StateDict | str | os.PathLike[str],
    *,
    include_classifier: bool = True,
) -> TimmModel:
    """Load timm ``mobilenetv4_conv_*`` / ``mobilenetv4_hybrid_*`` / ``mobilenetv5_*`` weights
    (a state_dict or a ``.pth`` path) into a :class:`~mobilecnn.MobileNetV4` or
    :class:`~mobilecnn.MobileNetV5` of the same variant (``mobilenetv5_300m_enc`` and the
    Gemma 3n weights, which have no classifier: :class:`~mobilecnn.MobileNetV5Encoder`), or
    timm ``mobilenetv1_100`` weights into a :class:`~mobilecnn.MobileNetV1` (built with
    ``activation=nn.ReLU6``, as timm's, for the same outputs).

    As :func:`~mobilecnn.deploy.load_torchvision_state_dict`: every tensor is checked first (a
    failed load changes nothing), mismatches raise a one-line ``ValueError`` (a state_dict of
    another variant is named as such), ``include_classifier=False`` skips the last linear layer.
    Returns ``model``.
    """
    mapping = timm_key_map(model)
    if isinstance(model, MobileNetV5Encoder):
        include_classifier = True  # there is none to leave out
    load_with_key_map(model, mapping, state_dict, include_classifier=include_classifier,
                      library="timm", candidates=_timm_candidates())
    return model


def to_timm_state_dict(model: TimmModel) -> dict[str, torch.Tensor]:
    """``model``'s weights under timm key names (tensors are detached copies)."""
    mapping = timm_key_map(model)
    return {mapping[key]: value.detach().clone() for key, value in model.state_dict().items()}
