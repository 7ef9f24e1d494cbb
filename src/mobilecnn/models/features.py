"""Multi-scale features for detection and segmentation backbones, and backbone freezing.

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

__all__ = [
    "FeatureExtractor",
    "FrozenBatchNorm2d",
    "create_feature_extractor",
    "freeze_backbone",
    "unfreeze_backbone",
]


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
        from . import create_model

        model = create_model(model, **model_kwargs)
    elif model_kwargs:
        raise ValueError("model_kwargs are only used when model is a name; got a model and "
                         f"{sorted(model_kwargs)}")
    return FeatureExtractor(model, out_indices)


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm2d with fixed statistics and affine parameters, in train mode too.

    Has the buffers ``weight``, ``bias``, ``running_mean``, ``running_var`` (the state_dict
    keys of ``nn.BatchNorm2d``, which it accepts, ``num_batches_tracked`` included).
    """

    weight: torch.Tensor
    bias: torch.Tensor
    running_mean: torch.Tensor
    running_var: torch.Tensor

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    @classmethod
    def from_batchnorm(cls, bn: nn.BatchNorm2d) -> FrozenBatchNorm2d:
        """A frozen copy of ``bn``'s eval-mode behaviour."""
        if bn.running_mean is None or bn.running_var is None:
            raise ValueError("cannot freeze a BatchNorm2d without running statistics "
                             "(track_running_stats=False)")
        frozen = cls(bn.num_features, bn.eps).to(bn.running_mean)
        with torch.no_grad():
            if bn.weight is not None:
                frozen.weight.copy_(bn.weight)
            if bn.bias is not None:
                frozen.bias.copy_(bn.bias)
            frozen.running_mean.copy_(bn.running_mean)
            frozen.running_var.copy_(bn.running_var)
        return frozen

    def to_batchnorm(self) -> nn.BatchNorm2d:
        """A trainable ``nn.BatchNorm2d`` with these statistics and parameters."""
        bn = nn.BatchNorm2d(self.num_features, self.eps).to(self.running_mean)
        bn.load_state_dict(
            {"weight": self.weight, "bias": self.bias, "running_mean": self.running_mean,
             "running_var": self.running_var},
            strict=False,
        )
        return bn

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str,
                              *args: Any, **kwargs: Any) -> None:
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - running_mean) / sqrt(running_var + eps) * weight + bias`` per channel."""
        scale = self.weight * torch.rsqrt(self.running_var + self.eps)
        shift = self.bias - self.running_mean * scale
        return x * scale.reshape(1, -1, 1, 1).to(x.dtype) + shift.reshape(1, -1, 1, 1).to(x.dtype)

    def extra_repr(self) -> str:
        """Shown by ``print(module)``."""
        return f"{self.num_features}, eps={self.eps}"


def _replace_children(module: nn.Module, source: type[nn.Module], convert: Any) -> None:
    for name, child in module.named_children():
        if type(child) is source:
            setattr(module, name, convert(child))
        else:
            _replace_children(child, source, convert)


def _backbone(model: nn.Module) -> nn.Module:
    features = getattr(model, "features", None)
    if not isinstance(features, nn.Module):
        raise TypeError(f"expected a mobilecnn model or FeatureExtractor with a 'features' "
                        f"backbone, got {type(model).__name__}")
    return features


def freeze_backbone(model: nn.Module, freeze_norm: bool = True) -> nn.Module:
    """Freeze ``model.features`` for fine-tuning only the head (or a detection/segmentation neck).

    Backbone parameters stop requiring gradients (the optimizer skips them when built from
    ``filter(lambda p: p.requires_grad, model.parameters())`` or ``model.parameters()`` alike,
    since they get no gradient). With ``freeze_norm`` every ``BatchNorm2d`` of the backbone is
    replaced by a :class:`FrozenBatchNorm2d`, so ``model.train()`` no longer updates its running
    statistics. Works in place on a :class:`~mobilecnn.MobileNetBase` or
    :class:`FeatureExtractor`; returns ``model``. Undo with :func:`unfreeze_backbone`.
    """
    backbone = _backbone(model)
    backbone.requires_grad_(False)
    if freeze_norm:
        _replace_children(backbone, nn.BatchNorm2d, FrozenBatchNorm2d.from_batchnorm)
    return model


def unfreeze_backbone(model: nn.Module) -> nn.Module:
    """Undo :func:`freeze_backbone`: trainable parameters and ``BatchNorm2d`` again."""
    backbone = _backbone(model)
    _replace_children(backbone, FrozenBatchNorm2d, FrozenBatchNorm2d.to_batchnorm)
    backbone.requires_grad_(True)
    return model
