"""What the inference and int8 benchmarks share: a MobileNetV2 with non-trivial BatchNorm
statistics (random weights; folding has work to do) and ONNX Runtime's ``quantize_static`` on an
ONNX file, calibrated on given images."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from mobilecnn import MobileNetV2


def mobilenet_v2_with_statistics(generator: torch.Generator, num_classes: int = 1000,
                                 total_stride: int = 32) -> MobileNetV2:
    """An eval-mode MobileNetV2 whose BatchNorm means are N(0, 1) and variances U(0.5, 2),
    drawn from ``generator`` (which callers go on drawing calibration images from)."""
    model = MobileNetV2(num_classes=num_classes, total_stride=total_stride).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.copy_(torch.randn(module.num_features, generator=generator))
                module.running_var.uniform_(0.5, 2.0, generator=generator)
    return model


def ort_quantize_static(source: Path, out: Path, calibration: list[torch.Tensor],
                        input_name: str, **settings: Any) -> bytes:
    """``quantize_static(source -> out)`` in QDQ format with ``settings``, calibrated on
    ``calibration`` fed as ``input_name``; returns the int8 file's bytes."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = iter([{input_name: batch.numpy()} for batch in calibration])

        def get_next(self) -> dict[str, Any] | None:
            return next(self.feeds, None)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_static(str(source), str(out), Reader(), quant_format=QuantFormat.QDQ,
                        **settings)
    return out.read_bytes()
