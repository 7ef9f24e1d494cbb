"""Freezing a backbone for fine-tuning: frozen BatchNorm and parameters that stop learning."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["FrozenBatchNorm2d", "freeze_backbone", "unfreeze_backbone"]

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
