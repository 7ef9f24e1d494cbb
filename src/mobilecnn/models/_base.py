"""What every model shares: the head, the timm-style conventions, feature_info and init.

A model is ``features`` (an ``nn.Sequential``, stem first) -> global average pool -> ``head``
(``nn.Identity`` unless the model has a layer after pooling, as MobileNetV4's 1x1 conv) ->
flatten -> ``classifier``, an ``nn.Sequential`` that always ends in ``Dropout, Linear`` (the
``Linear`` is an ``nn.Identity`` when ``num_classes == 0``). Layers before those two belong to
the pre-logits (MobileNetV3's ``Linear, Hardswish``).

A subclass calls ``super().__init__()``, builds ``features`` (and ``head``), sets
``self.classifier = self._make_classifier(...)`` and ``feature_info``, then ends its
``__init__`` with ``self._finish_init(architecture, total_stride)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypedDict

import torch
from torch import nn

from ..limits import NUM_CLASSES
from .checkpointing import checkpoint_layers
from .checks import check_common_args, check_count, check_images, check_variant, is_symbolic
from .freeze import freeze_backbone, unfreeze_backbone

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "FeatureInfo",
    "FeatureInfoList",
    "MobileNetBase",
    "check_common_args",
    "check_total_stride",
    "check_variant",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FeatureInfo(TypedDict):
    """One multi-scale feature level, in the style of timm's ``feature_info``."""

    num_chs: int
    """Channels of the feature map."""
    reduction: int
    """Input size divided by the feature map's size (its stride)."""
    module: str
    """Name of the module (in ``model.named_modules()``) whose output it is."""


class FeatureInfoList(list[FeatureInfo]):
    """A list of :class:`FeatureInfo` with timm's accessors: ``channels()``, ``reduction()``,
    ``module_name()`` (all levels, or the level(s) ``idx``)."""

    def _get(self, key: str, idx: int | Sequence[int] | None) -> Any:
        if idx is None:
            return [level[key] for level in self]  # type: ignore[literal-required]
        if isinstance(idx, int):
            return self[idx][key]  # type: ignore[literal-required]
        return [self[i][key] for i in idx]  # type: ignore[literal-required]

    def channels(self, idx: int | Sequence[int] | None = None) -> Any:
        """Channels of every level (a list), or of level ``idx``."""
        return self._get("num_chs", idx)

    def reduction(self, idx: int | Sequence[int] | None = None) -> Any:
        """Stride of every level relative to the input (a list), or of level ``idx``."""
        return self._get("reduction", idx)

    def module_name(self, idx: int | Sequence[int] | None = None) -> Any:
        """Module name of every level (a list), or of level ``idx``."""
        return self._get("module", idx)

    def get_dicts(self) -> list[FeatureInfo]:
        """The levels as plain dicts."""
        return [FeatureInfo(**level) for level in self]


VALID_TOTAL_STRIDES = (8, 16, 32)
DEFAULT_INPUT_SIZE = {32: 224, 16: 64, 8: 32}  # the image size each total_stride is meant for


def check_total_stride(total_stride: int) -> int:
    """Number of leading stride-2 stages turned into stride 1 to reach ``total_stride``."""
    if isinstance(total_stride, bool) or total_stride not in VALID_TOTAL_STRIDES:
        raise ValueError(
            f"total_stride must be one of {VALID_TOTAL_STRIDES} (32 = the paper; 16 for 64x64 "
            f"inputs; 8 for 32x32 inputs), got {total_stride!r}"
        )
    return int(math.log2(32 // total_stride))


class MobileNetBase(nn.Module):
    """``features`` -> global average pool -> ``head`` -> ``classifier``, with timm's
    conventions: ``num_classes=0`` / ``reset_classifier(0)`` for pooled features,
    ``forward_head(x, pre_logits=True)``, ``get_classifier()``, ``set_grad_checkpointing()``,
    ``feature_info`` and ``pretrained_cfg``."""

    default_cfg: ClassVar[dict[str, Any]] = {
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "crop_pct": 0.875,
        "interpolation": "bilinear",
        "first_conv": "features.0.conv",
    }
    """Architecture defaults of :attr:`pretrained_cfg`; a subclass may override entries."""

    if TYPE_CHECKING:  # declared for type checkers only: TorchScript reads real annotations
        features: nn.Sequential
        head: nn.Module
        classifier: nn.Sequential
        feature_info: FeatureInfoList
        in_channels: int
        num_features: int  # channels of the feature map (the output of ``features``)
        head_hidden_size: int  # width of the pre-logits (what ``num_classes=0`` returns)
        num_classes: int
        pretrained_cfg: dict[str, Any]

    def __init__(self) -> None:
        super().__init__()
        self.grad_checkpointing = False
        self._pre_logits_layers = 0

    def _make_classifier(self, in_features: int, num_classes: int, dropout: float,
                         pre_logits: Sequence[nn.Module] = ()) -> nn.Sequential:
        """``Sequential(*pre_logits, Dropout, Linear)``; sets ``num_classes`` and
        ``head_hidden_size`` (``in_features``, the width entering the last Linear) and adds
        an ``nn.Identity`` ``head`` unless the model has one."""
        if "head" not in self._modules:
            self.head = nn.Identity()
        self.num_classes = num_classes
        self.head_hidden_size = in_features
        self._pre_logits_layers = len(pre_logits)
        return nn.Sequential(*pre_logits, nn.Dropout(dropout),
                             self._new_linear(in_features, num_classes))

    @staticmethod
    def _new_linear(in_features: int, num_classes: int, like: nn.Module | None = None
                    ) -> nn.Module:
        if num_classes == 0:
            return nn.Identity()
        weight = getattr(like, "weight", None)
        linear = nn.Linear(in_features, num_classes,
                           device=None if weight is None else weight.device,
                           dtype=None if weight is None else weight.dtype)
        nn.init.normal_(linear.weight, 0, 0.01)
        nn.init.zeros_(linear.bias)
        return linear

    def _finish_init(self, architecture: str, total_stride: int,
                     input_size: int | None = None) -> None:
        """Initialize the weights and set ``pretrained_cfg`` (``input_size``: the model's image
        size at ``total_stride=32``, 224 by default); the last call of ``__init__``."""
        self.feature_info = FeatureInfoList(self.feature_info)
        self._init_weights()
        size = DEFAULT_INPUT_SIZE[total_stride]
        if input_size is not None and total_stride == 32:
            size = input_size
        cfg: dict[str, Any] = {"architecture": architecture,
                               "input_size": (self.in_channels, size, size)}
        cfg.update(type(self).default_cfg)
        if self.in_channels != 3:  # one value per channel
            cfg["mean"] = (sum(cfg["mean"]) / len(cfg["mean"]),) * self.in_channels
            cfg["std"] = (sum(cfg["std"]) / len(cfg["std"]),) * self.in_channels
        cfg["num_classes"] = self.num_classes
        cfg["classifier"] = f"classifier.{len(self.classifier) - 1}"
        self.pretrained_cfg = cfg

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
        # two branches: TorchScript compiles only the first (is_scripting() is a constant there)
        if torch.jit.is_scripting():  # noqa: SIM114
            check_images(x, self.in_channels)
        elif not is_symbolic(x):
            check_images(x, self.in_channels)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The feature map before pooling: ``(N, num_features, H/stride, W/stride)``."""
        self._check_input(x)
        if torch.jit.is_scripting():
            return self.features(x)
        if self._checkpointing(x):
            return checkpoint_layers(self.features, x)
        return self.features(x)

    @torch.jit.unused
    def _checkpointing(self, x: torch.Tensor) -> bool:
        """Whether to checkpoint the blocks now (set, training with gradients, not tracing)."""
        return self.grad_checkpointing and torch.is_grad_enabled() and not is_symbolic(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool, ``head`` and classifier on the output of :meth:`forward_features`; with
        ``pre_logits=True`` the pooled features before dropout and the last Linear
        ``(N, head_hidden_size)``."""
        x = self.head(nn.functional.adaptive_avg_pool2d(x, 1))
        x = torch.flatten(x, 1)
        for index, layer in enumerate(self.classifier):
            if not pre_logits or index < self._pre_logits_layers:
                x = layer(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` for images ``(N, in_channels, H, W)``, or pooled
        features ``(N, head_hidden_size)`` when ``num_classes == 0``."""
        return self.forward_head(self.forward_features(x))

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        """The last layer: the ``nn.Linear`` of the logits (``nn.Identity`` without one)."""
        return self.classifier[-1]

    @torch.jit.ignore
    def reset_classifier(self, num_classes: int) -> None:
        """Replace the last layer with a freshly initialized ``Linear(head_hidden_size,
        num_classes)``, or with ``nn.Identity`` for ``num_classes=0`` (pooled features)."""
        num_classes = check_count(num_classes, "num_classes", minimum=0, limit=NUM_CLASSES)
        old = self.classifier[-1]
        self.classifier[-1] = self._new_linear(self.head_hidden_size, num_classes, like=old)
        self.classifier[-1].train(self.training)
        self.num_classes = num_classes

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block of ``features`` in the backward pass instead of storing its
        activations: less memory in training, the same outputs and gradients."""
        self.grad_checkpointing = bool(enable)

    @torch.jit.ignore
    def freeze_backbone(self, freeze_norm: bool = True) -> None:
        """Stop training ``features`` (see :func:`mobilecnn.models.freeze.freeze_backbone`):
        its parameters stop requiring gradients and, with ``freeze_norm``, its BatchNorms
        keep their running statistics in train mode. Only the head then learns."""
        freeze_backbone(self, freeze_norm=freeze_norm)

    @torch.jit.ignore
    def unfreeze_backbone(self) -> None:
        """Make ``features`` trainable again (undoes :meth:`freeze_backbone`)."""
        unfreeze_backbone(self)
