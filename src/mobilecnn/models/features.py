"""Multi-scale features for detection and segmentation backbones.

In the style of timm's ``features_only``: :class:`FeatureExtractor` returns the feature map at
the end of each resolution of a model (strides 2, 4, 8, 16, 32 for the paper's models), and
``feature_info`` describes them (channels, stride, module) without running anything.

>>> from mobilecnn import MobileNetV2
>>> extractor = FeatureExtractor(MobileNetV2(), out_indices=(2, 3, 4))
>>> extractor.channels, extractor.reductions
([32, 96, 320], [8, 16, 32])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ._base import FeatureInfo, MobileNetBase
from .registry import create_model

__all__ = ["FeatureExtractor", "create_feature_extractor"]


def _feature_index(module_name: str) -> int:
    """``"features.6"`` -> 6: the position in ``model.features`` after which a level ends."""
    prefix, _, index = module_name.partition(".")
    if prefix != "features" or not index.isdigit():
        raise ValueError(f"feature_info module {module_name!r} is not a child of 'features'")
    return int(index)


def _check_out_indices(out_indices: Sequence[int], levels: int) -> list[int]:
    if len(out_indices) == 0:
        raise ValueError("out_indices must select at least one feature level")
    chosen: list[int] = []
    for index in out_indices:
        if not isinstance(index, int) or not -levels <= index < levels:
            raise ValueError(
                f"out_indices entries must be integers in [{-levels}, {levels - 1}] (this model "
                f"has {levels} feature levels), got {index!r}"
            )
        chosen.append(index % levels)
    if sorted(set(chosen)) != chosen:
        raise ValueError(f"out_indices must be increasing without repeats, got {out_indices!r}")
    return chosen


class FeatureExtractor(nn.Module):
    """The feature maps of ``model`` at the selected levels of ``model.feature_info``.

    ``forward(x)`` returns a list of tensors, one per entry of ``out_indices`` (default: all
    levels), each ``(N, channels[i], H / reductions[i], W / reductions[i])``. The extractor
    shares the model's modules (no copy: fine-tuning one trains the other) and keeps only the
    layers it needs; its state_dict keys are those of the model (``features.<i>...``), so a
    model checkpoint loads into it with ``strict=False``.
    """

    def __init__(self, model: MobileNetBase, out_indices: Sequence[int] | None = None) -> None:
        super().__init__()
        if not isinstance(model, MobileNetBase):
            raise TypeError(f"expected a mobilecnn model (MobileNetBase), got "
                            f"{type(model).__name__}")
        levels = len(model.feature_info)
        chosen = _check_out_indices(
            list(range(levels)) if out_indices is None else list(out_indices), levels
        )
        self.out_indices: tuple[int, ...] = tuple(chosen)
        self.feature_info: list[FeatureInfo] = [
            FeatureInfo(**model.feature_info[i]) for i in chosen
        ]
        self._taps = [_feature_index(info["module"]) for info in self.feature_info]
        self.in_channels = model.in_channels
        self.features = nn.Sequential(*list(model.features)[: self._taps[-1] + 1])

    @property
    def channels(self) -> list[int]:
        """Channels of each returned feature map."""
        return [info["num_chs"] for info in self.feature_info]

    @property
    def reductions(self) -> list[int]:
        """Stride of each returned feature map relative to the input."""
        return [info["reduction"] for info in self.feature_info]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """One feature map per selected level, shallowest first."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"FeatureExtractor expects a 4-D tensor of shape (batch, {self.in_channels}, "
                f"height, width), got shape {tuple(x.shape)}"
            )
        outputs: list[torch.Tensor] = []
        taps = set(self._taps)
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in taps:
                outputs.append(x)
        return outputs


def create_feature_extractor(
    model: MobileNetBase | str,
    out_indices: Sequence[int] | None = None,
    **model_kwargs: Any,
) -> FeatureExtractor:
    """A :class:`FeatureExtractor` of ``model``, or of ``create_model(model, **model_kwargs)``
    when given a name (the ``features_only=True`` of timm)."""
    if isinstance(model, str):
        model = create_model(model, **model_kwargs)
    elif model_kwargs:
        raise ValueError("model_kwargs are only used when model is a name; got a model and "
                         f"{sorted(model_kwargs)}")
    return FeatureExtractor(model, out_indices)
