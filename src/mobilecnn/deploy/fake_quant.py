"""Simulated int8 in PyTorch ("fake quantization"), shared by QAT and the per-layer error report.

It mirrors what the int8 runtimes compute for every ``Conv2d``/``Linear``: the input activation
rounded to uint8 with one affine scale per tensor (range observed on data), the weight rounded
to int8 with one symmetric scale per output channel. Rounding uses ``torch.fake_quantize_*``,
whose gradient is the straight-through estimator, so a model of :class:`FakeQuantLayer` trains.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from torch import nn
from torch.nn import functional as F

from .fold import fold_batchnorm

__all__ = [
    "ActivationFakeQuant",
    "FakeQuantLayer",
    "calibrated_fake_quant",
    "strip_fake_quant",
    "wrap_fake_quant",
]


def fake_quantize_weight(weight: torch.Tensor) -> torch.Tensor:
    """Per-output-channel symmetric int8 rounding of ``weight`` (values -127..127)."""
    flat = weight.detach().reshape(weight.shape[0], -1)
    scale = (flat.abs().amax(dim=1) / 127.0).clamp_min(1e-12).float()
    zero_point = torch.zeros(weight.shape[0], dtype=torch.int32, device=weight.device)
    return torch.fake_quantize_per_channel_affine(weight, scale, zero_point, 0, -127, 127)


class ActivationFakeQuant(nn.Module):
    """Per-tensor uint8 affine rounding with an observed range.

    While ``observing`` (in train mode, or when set explicitly for calibration) it widens its
    range to the batch's min/max (``momentum=None``) or moves it by an exponential moving
    average (``momentum``, QAT). It rounds only once a range exists and ``enabled`` is true.
    """

    def __init__(self, momentum: float | None = None) -> None:
        super().__init__()
        self.momentum = momentum
        self.enabled = True
        self.observing: bool | None = None  # None: observe in train mode only
        self.low: torch.Tensor
        self.high: torch.Tensor
        self.register_buffer("low", torch.tensor(float("inf")))
        self.register_buffer("high", torch.tensor(float("-inf")))

    def _observe(self, x: torch.Tensor) -> None:
        low, high = x.detach().min().float(), x.detach().max().float()
        if self.momentum is None or not torch.isfinite(self.low):
            self.low.copy_(torch.minimum(self.low, low))
            self.high.copy_(torch.maximum(self.high, high))
        else:
            self.low.lerp_(low, self.momentum)
            self.high.lerp_(high, self.momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        observing = self.training if self.observing is None else self.observing
        if observing:
            self._observe(x)
        if not self.enabled or not torch.isfinite(self.low):
            return x
        low, high = self.low.clamp(max=0.0), self.high.clamp(min=0.0)
        scale = ((high - low) / 255.0).clamp_min(1e-12).reshape(1)
        zero_point = torch.round(-low / scale).clamp(0, 255).to(torch.int32).reshape(1)
        return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, 0, 255)


class FakeQuantLayer(nn.Module):
    """A ``Conv2d`` or ``Linear`` whose input and weight are rounded as int8 runtimes do."""

    def __init__(self, layer: nn.Conv2d | nn.Linear, momentum: float | None = None) -> None:
        super().__init__()
        self.layer = layer
        self.input_quant = ActivationFakeQuant(momentum)
        self.quantize_weight = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_quant(x)
        layer = self.layer
        weight = fake_quantize_weight(layer.weight) if self.quantize_weight else layer.weight
        if isinstance(layer, nn.Linear):
            return F.linear(x, weight, layer.bias)
        return layer._conv_forward(x, weight, layer.bias)


def wrap_fake_quant(model: nn.Module, momentum: float | None = None) -> nn.Module:
    """A copy of ``model`` with BatchNorm folded and every ``Conv2d``/``Linear`` wrapped in a
    :class:`FakeQuantLayer` (the copy keeps the class and attributes of ``model``)."""
    wrapped = fold_batchnorm(copy.deepcopy(model).float(), inplace=True)
    for parent in list(wrapped.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Conv2d or type(child) is nn.Linear:
                assert isinstance(child, (nn.Conv2d, nn.Linear))
                setattr(parent, name, FakeQuantLayer(child, momentum))
    return wrapped


def calibrated_fake_quant(model: nn.Module, batches: Iterable[torch.Tensor]) -> nn.Module:
    """``model`` with fake quantization (:func:`wrap_fake_quant`), in eval mode, whose
    activation ranges were observed on ``batches``: PyTorch's picture of the int8 model."""
    simulated = wrap_fake_quant(model).eval()
    observers = [m for m in simulated.modules() if isinstance(m, ActivationFakeQuant)]
    for observer in observers:
        observer.observing, observer.enabled = True, False
    with torch.no_grad():
        for batch in batches:
            simulated(batch)
    for observer in observers:
        observer.observing, observer.enabled = False, True
    return simulated


def strip_fake_quant(model: nn.Module) -> nn.Module:
    """A float copy of ``model`` with every :class:`FakeQuantLayer` replaced by its layer."""
    plain = copy.deepcopy(model)
    for parent in list(plain.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, FakeQuantLayer):
                setattr(parent, name, child.layer)
    return plain
