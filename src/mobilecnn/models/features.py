"""Multi-scale features for detection and segmentation backbones.

In the style of timm's ``features_only``: :class:`FeatureExtractor` returns the feature map at
the end of each resolution of a model (strides 2, 4, 8, 16, 32 for the paper's models), and
``feature_info`` describes them (``channels()``, ``reduction()``, ``module_name()``) without
running anything. ``create_model(name, features_only=True, out_indices=...)`` builds one.

>>> from mobilecnn import MobileNetV2
>>> extractor = FeatureExtractor(MobileNetV2(), out_indices=(2, 3, 4))
>>> extractor.feature_info.channels(), extractor.feature_info.reduction()
([32, 96, 320], [8, 16, 32])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._base import FeatureInfo, FeatureInfoList, MobileNetBase
from .checkpointing import checkpoint_taps
from .checks import check_images, is_symbolic

__all__ = ["FeatureExtractor"]


def _feature_index(module_name: str) -> int:
    """``"features.6"`` -> 6: the position in ``model.features`` after which a level ends."""
    prefix, _, index = module_name.partition(".")
    if prefix != "features" or not index.isdigit():
        raise ValueError(f"feature_info module {module_name!r} is not a child of 'features'")
    return int(index)


def _check_out_indices(out_indices: Sequence[int], levels: int) -> list[int]:
    if isinstance(out_indices, (str, bytes)) or not isinstance(out_indices, Sequence):
        raise ValueError(f"out_indices must be a sequence of level indices such as (1, 2, 3), "
                         f"got {out_indices!r}")
    if len(out_indices) == 0:
        raise ValueError("out_indices must select at least one feature level")
    chosen: list[int] = []
    for index in out_indices:
        if isinstance(index, bool) or not isinstance(index, int) or not -levels <= index < levels:
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

    __jit_unused_properties__ = ["channels", "reductions"]

    def __init__(self, model: MobileNetBase, out_indices: Sequence[int] | None = None) -> None:
        super().__init__()
        if not isinstance(model, MobileNetBase):
            raise TypeError(f"expected a mobilecnn model (MobileNetBase), got "
                            f"{type(model).__name__}")
        levels = len(model.feature_info)
        chosen = _check_out_indices(
            list(range(levels)) if out_indices is None else out_indices, levels
        )
        self.out_indices = tuple(chosen)
        self.feature_info = FeatureInfoList(FeatureInfo(**model.feature_info[i]) for i in chosen)
        self._taps = [_feature_index(info["module"]) for info in self.feature_info]
        self.in_channels = model.in_channels
        self.pretrained_cfg = dict(getattr(model, "pretrained_cfg", {}))
        self.grad_checkpointing = False
        self.features = nn.Sequential(*list(model.features)[: self._taps[-1] + 1])

    @property
    def channels(self) -> list[int]:
        """Channels of each returned feature map (``feature_info.channels()``)."""
        return [info["num_chs"] for info in self.feature_info]

    @property
    def reductions(self) -> list[int]:
        """Stride of each returned feature map (``feature_info.reduction()``)."""
        return [info["reduction"] for info in self.feature_info]

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block in the backward pass instead of storing its activations."""
        self.grad_checkpointing = bool(enable)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """One feature map per selected level, shallowest first."""
        if torch.jit.is_scripting():
            check_images(x, self.in_channels)
        elif not is_symbolic(x):
            check_images(x, self.in_channels)
            if self.grad_checkpointing and torch.is_grad_enabled():
                return self._checkpointed(x)
        outputs: list[torch.Tensor] = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self._taps:
                outputs.append(x)
        return outputs

    @torch.jit.unused
    def _checkpointed(self, x: torch.Tensor) -> list[torch.Tensor]:
        return checkpoint_taps(self.features, x, self._taps)
