"""What every model shares: input and argument checks, the head, feature_info, init."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, TypedDict

import torch
from torch import nn

from .freeze import freeze_backbone, unfreeze_backbone

__all__ = ["FeatureInfo", "MobileNetBase", "check_total_stride"]


class FeatureInfo(TypedDict):
    """One multi-scale feature level, in the style of timm's ``feature_info``."""

    num_chs: int
    """Channels of the feature map."""
    reduction: int
    """Input size divided by the feature map's size (its stride)."""
    module: str
    """Name of the module (in ``model.named_modules()``) whose output it is."""


VALID_TOTAL_STRIDES = (8, 16, 32)


def check_total_stride(total_stride: int) -> int:
    """Number of leading stride-2 stages turned into stride 1 to reach ``total_stride``."""
    if total_stride not in VALID_TOTAL_STRIDES:
        raise ValueError(
            f"total_stride must be one of {VALID_TOTAL_STRIDES} (32 = the paper; 16 for 64x64 "
            f"inputs; 8 for 32x32 inputs), got {total_stride!r}"
        )
    return int(math.log2(32 // total_stride))


def check_common_args(
    num_classes: int, width_mult: float, in_channels: int, dropout: float
) -> None:
    """Raise ValueError naming the first invalid constructor argument."""
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if not width_mult > 0:
        raise ValueError(f"width_mult must be > 0, got {width_mult!r}")
    if not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")


def check_variant(variant: str, accepted: tuple[str, ...], model: str) -> str:
    """Return ``variant`` or raise a ValueError that lists the accepted names."""
    if variant not in accepted:
        raise ValueError(f"unknown {model} variant {variant!r}; choose one of: "
                         f"{', '.join(repr(a) for a in accepted)}")
    return variant


class MobileNetBase(nn.Module):
    """``features`` (a ``nn.Sequential``) -> global average pool -> ``classifier``.

    Subclasses build ``features``, ``classifier`` and ``feature_info`` and call
    :meth:`_init_weights`.
    """

    if TYPE_CHECKING:  # declared for type checkers only: TorchScript reads real annotations
        features: nn.Sequential
        classifier: nn.Sequential
        feature_info: list[FeatureInfo]
        in_channels: int
        num_features: int  # channels entering the classifier
        num_classes: int

    def _init_weights(self) -> None:
        """Initialize as the reference: kaiming-normal fan_out convs, BN 1/0, linear N(0, 0.01)."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected a 4-D input tensor of shape (batch, {self.in_channels}, height, "
                f"width), got shape {list(x.shape)}; for a single image add the batch "
                "dimension with x.unsqueeze(0)"
            )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The feature map before pooling: ``(N, num_features, H/stride, W/stride)``."""
        self._check_input(x)
        return self.features(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Global average pool and classifier on the output of :meth:`forward_features`."""
        pooled = torch.flatten(nn.functional.adaptive_avg_pool2d(features, 1), 1)
        return self.classifier(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` for images ``(N, in_channels, H, W)``."""
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the last linear layer with a freshly initialized one (for fine-tuning)."""
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        old = self.classifier[-1]
        assert isinstance(old, nn.Linear)
        new = nn.Linear(old.in_features, num_classes, device=old.weight.device,
                        dtype=old.weight.dtype)
        nn.init.normal_(new.weight, 0, 0.01)
        nn.init.zeros_(new.bias)
        self.classifier[-1] = new
        self.num_classes = num_classes

    def freeze_backbone(self, freeze_norm: bool = True) -> None:
        """Stop training ``features`` (see :func:`mobilecnn.models.freeze.freeze_backbone`):
        its parameters stop requiring gradients and, with ``freeze_norm``, its BatchNorms
        keep their running statistics in train mode. Only the classifier then learns."""
        freeze_backbone(self, freeze_norm=freeze_norm)

    def unfreeze_backbone(self) -> None:
        """Make ``features`` trainable again (undoes :meth:`freeze_backbone`)."""
        unfreeze_backbone(self)

