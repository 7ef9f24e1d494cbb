"""Where int8 loses accuracy: :func:`quantization_report`, the error of every layer.

The int8 arithmetic of the runtimes is simulated in PyTorch (:mod:`~mobilecnn.deploy.fake_quant`:
uint8 per-tensor activations with ranges from calibration data, int8 per-channel weights) and
each ``Conv2d``/``Linear`` output is compared with the float model's on the same images.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .fake_quant import FakeQuantLayer, calibrated_fake_quant
from .quantize import _check_model, calibration_batches

__all__ = ["LayerQuantError", "QuantizationReport", "quantization_report"]


@dataclass(frozen=True)
class LayerQuantError:
    """The int8 error of one layer's output (signal-to-quantization-noise ratio, in dB:
    ``10 log10(sum(float^2) / sum((int8 - float)^2))``; 20 dB is 10% relative error)."""

    name: str
    """Module name in the BatchNorm-folded model (``named_modules``)."""
    kind: str
    """``"conv 3x3 dw"``, ``"conv 1x1"``, ``"linear"``, ..."""
    sqnr_db: float
    """With the whole model quantized up to here (errors accumulate)."""
    alone_sqnr_db: float
    """With only this layer quantized (its own input and weight rounding)."""

    @property
    def relative_error(self) -> float:
        """``||int8 - float|| / ||float||`` with the whole model quantized."""
        return 10 ** (-self.sqnr_db / 20)


@dataclass(frozen=True)
class QuantizationReport:
    """Per-layer int8 errors of a model and what they add up to at the logits."""

    layers: list[LayerQuantError] = field(default_factory=list)
    logits_sqnr_db: float = math.inf
    """SQNR of the logits with every layer quantized."""
    top1_agreement: float = 1.0
    """Fraction of images whose simulated int8 top-1 class equals the float model's."""

    def worst(self, count: int = 5) -> list[LayerQuantError]:
        """The ``count`` layers with the lowest stand-alone SQNR (the ones to keep in float)."""
        return sorted(self.layers, key=lambda row: row.alone_sqnr_db)[:count]

    def table(self) -> str:
        """A Markdown table, one row per layer."""
        lines = ["| layer | kind | SQNR dB (cumulative) | SQNR dB (alone) | relative error |",
                 "| --- | --- | ---: | ---: | ---: |"]
        lines += [f"| {r.name} | {r.kind} | {r.sqnr_db:.1f} | {r.alone_sqnr_db:.1f} | "
                  f"{r.relative_error:.3f} |" for r in self.layers]
        lines.append(f"logits SQNR {self.logits_sqnr_db:.1f} dB, top-1 agreement "
                     f"{100 * self.top1_agreement:.2f}%")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _sqnr_db(reference: torch.Tensor, actual: torch.Tensor) -> float:
    noise = (actual.double() - reference.double()).pow(2).sum().item()
    signal = reference.double().pow(2).sum().item()
    if noise == 0.0:
        return math.inf
    return 10 * math.log10(max(signal, 1e-300) / noise)


def _kind(layer: nn.Module) -> str:
    if isinstance(layer, nn.Linear):
        return "linear"
    assert isinstance(layer, nn.Conv2d)
    size = "x".join(str(k) for k in layer.kernel_size)
    depthwise = layer.groups == layer.in_channels and layer.groups > 1
    return f"conv {size}{' dw' if depthwise else ''}"


def _layer_outputs(model: nn.Module, names: list[str], images: list[torch.Tensor]
                   ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]:
    """Every named layer's inputs and outputs, and the logits, over ``images``."""
    inputs: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    outputs: dict[str, list[torch.Tensor]] = {name: [] for name in names}

    def hook(name: str) -> Any:
        def record(_module: nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> None:
            # clones: a following in-place activation (ReLU6(inplace=True)) would change them
            inputs[name].append(args[0].detach().clone())
            outputs[name].append(out.detach().clone())
        return record

    modules = dict(model.named_modules())
    handles = [modules[name].register_forward_hook(hook(name)) for name in names]
    try:
        with torch.no_grad():
            logits = torch.cat([model(batch) for batch in images])
    finally:
        for handle in handles:
            handle.remove()
    return ({n: torch.cat(v) for n, v in inputs.items()},
            {n: torch.cat(v) for n, v in outputs.items()}, logits)


def quantization_report(
    model: nn.Module,
    calibration: Iterable[Any],
    images: Iterable[Any] | None = None,
) -> QuantizationReport:
    """Simulate int8 on ``model`` and report the SQNR of every ``Conv2d``/``Linear`` output.

    Activation ranges are observed on ``calibration`` (as :func:`~mobilecnn.quantize` does);
    errors are measured on ``images`` (default: the calibration batches; a few hundred images
    are plenty: every layer's input is kept in memory). Both take float
    batches ``(N, C, H, W)`` or ``(images, labels)`` pairs. A layer whose stand-alone SQNR is far
    below the others (``report.worst()``) is the one to fix, e.g. by keeping it in float or
    calibrating on more representative images.
    """
    folded = _check_model(model)
    calibration_data = calibration_batches(folded, calibration)
    evaluation = (calibration_data if images is None
                  else calibration_batches(folded, images))
    simulated = calibrated_fake_quant(folded, calibration_data)
    layers = {name: m for name, m in simulated.named_modules() if isinstance(m, FakeQuantLayer)}
    names = list(layers)
    float_inputs, float_outputs, float_logits = _layer_outputs(folded, names, evaluation)
    _, quant_outputs, quant_logits = _layer_outputs(simulated, names, evaluation)
    rows = []
    with torch.no_grad():
        for name, wrapper in layers.items():
            alone = wrapper(float_inputs[name])  # this layer's rounding on the float input
            rows.append(LayerQuantError(name, _kind(wrapper.layer),
                                        _sqnr_db(float_outputs[name], quant_outputs[name]),
                                        _sqnr_db(float_outputs[name], alone)))
    agreement = (quant_logits.argmax(1) == float_logits.argmax(1)).float().mean().item()
    return QuantizationReport(rows, _sqnr_db(float_logits, quant_logits), agreement)
