"""Quantization-aware training: :func:`prepare_qat` -> train as usual -> :func:`convert_qat`.

``prepare_qat`` returns a copy of a float model (same class, same ``forward``) whose BatchNorms
are folded into the convolutions and whose ``Conv2d``/``Linear`` layers see int8-rounded
inputs and weights (:mod:`mobilecnn.deploy.fake_quant`, straight-through gradients). Fine-tune
it with any training loop (an epoch or two at a small learning rate: with BatchNorm folded,
about 1/1000 of the original peak, e.g. 1e-4 after training at 0.1, worked on the demo model,
and 5e-3 destroyed it), then
``convert_qat`` turns it into an int8 :class:`~mobilecnn.deploy.RuntimeModel` with the same
backends as :func:`~mobilecnn.quantize`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import nn

from .fake_quant import FakeQuantLayer, strip_fake_quant, wrap_fake_quant
from .quantize import _check_model, quantize
from .runtimes import RuntimeModel

__all__ = ["convert_qat", "prepare_qat"]


def prepare_qat(model: nn.Module, *, momentum: float = 0.01) -> nn.Module:
    """A trainable, fake-quantized copy of ``model`` (``model`` is untouched), in train mode.

    BatchNorm is folded first (its statistics are frozen into the weights, as in the late
    phase of standard QAT); activation ranges follow an exponential moving average with
    ``momentum`` while training and are frozen in eval mode. The copy keeps ``model``'s class
    and attributes, so ``forward_features`` and training code keep working; its state dict has
    extra keys (``<layer>.layer.weight``, ``<layer>.input_quant.low``/``high``), so checkpoint
    it as is and load it into ``prepare_qat(fresh_model)``. Fine-tune at a small learning rate
    (about 1/1000 of the original peak, e.g. 1e-4).
    """
    _check_model(model)
    if not 0.0 < momentum <= 1.0:
        raise ValueError(f"momentum must be in (0, 1], got {momentum!r}")
    prepared = wrap_fake_quant(model, momentum=momentum)
    prepared.requires_grad_(True)
    return prepared.train()


def convert_qat(
    model: nn.Module,
    calibration: Iterable[Any],
    *,
    backend: str | None = None,
    threads: int | None = None,
) -> RuntimeModel:
    """The int8 :class:`~mobilecnn.deploy.RuntimeModel` of a model made by :func:`prepare_qat`.

    The weights QAT learned are quantized per channel exactly as during training; the
    runtime calibrates the activation ranges again on ``calibration`` (a few batches of
    training images), as :func:`~mobilecnn.quantize` does. ``backend`` as for ``quantize``.
    """
    if not any(isinstance(m, FakeQuantLayer) for m in model.modules()):
        raise ValueError("convert_qat expects a model made by prepare_qat (it has no "
                         "fake-quantized layers); use mobilecnn.quantize for a float model")
    return quantize(strip_fake_quant(model).eval(), calibration, backend=backend,
                    threads=threads)
