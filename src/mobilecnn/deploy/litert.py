"""LiteRT (TensorFlow Lite) files: :func:`export_tflite`, fp32 or int8, for Android and embedded
Linux apps that ship ``.tflite`` models.

fp32 goes through Google's ``litert-torch`` converter (``torch.export`` -> StableHLO -> TFLite);
int8 is :func:`~mobilecnn.quantize` with ``backend="litert"``: litert-torch's own PT2E quantizer
(int8 per-channel symmetric weights, int8 per-tensor activations, ranges calibrated on your
images), converted by the same tool into a fully int8 model (int8 input and output, with their
scales in the file). Both run in LiteRT's interpreter with the XNNPACK delegate. Needs
``pip install "mobilecnn[litert]"``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from torch import nn

from ..counting import InputSize
from ..fileio import atomic_path
from .export import _example_input, _prepare_output_path, _write_or_raise
from .fold import optimize_for_inference
from .quantize import quantize, tflite_bytes
from .runtimes import require_litert

__all__ = ["export_tflite"]


def export_tflite(
    model: nn.Module,
    path: str | os.PathLike[str],
    input_size: InputSize = 224,
    *,
    int8_calibration: Iterable[Any] | None = None,
    batch_size: int = 1,
) -> Path:
    """Write ``model`` as a LiteRT (TensorFlow Lite) ``.tflite`` file, fp32, or int8 when
    ``int8_calibration`` (float image batches ``(N, C, H, W)``, normalized as for training, as
    for :func:`~mobilecnn.quantize`) is given; the int8 image size is the calibration images'.

    BatchNorm is folded first. The input is NCHW float ``(batch_size, C, H, W)`` (an int8
    model's input and output are int8 with their scales in the file); LiteRT can resize the
    batch at run time, and :func:`~mobilecnn.deploy.load_runtime_model` does so. Run it with
    ``ai_edge_litert.interpreter.Interpreter`` (XNNPACK) or LiteRT on Android. Needs
    ``pip install "mobilecnn[litert]"``; converting takes tens of seconds.
    """
    require_litert()
    out = _prepare_output_path(path)
    if int8_calibration is not None:
        program = quantize(model, int8_calibration, backend="litert").program
    else:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        prepared = optimize_for_inference(model, channels_last=False)
        example = _example_input(prepared, input_size, batch_size=batch_size).float()
        program = tflite_bytes(prepared, example)
    with atomic_path(out) as temporary:
        _write_or_raise(lambda: temporary.write_bytes(program), out)
    return out
