"""One call to write any export format, fp32 or int8: :func:`export_model`.

Each format is one entry of :data:`EXPORT_FORMATS`: its fp32 writer, the :func:`quantize`
backend of its int8 version (None: no int8), a line of help and what the file does with the
batch size. ``mobilecnn export --format`` offers exactly these entries, so adding a format
is adding an entry.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..counting import InputSize

__all__ = ["EXPORT_FORMATS", "ExportFormat", "export_model"]


@dataclass(frozen=True)
class ExportFormat:
    """How :func:`export_model` writes one format.

    ``writer`` names the fp32 writer, ``"module:function"`` in :mod:`mobilecnn.deploy`
    (imported when used, so that listing the formats stays cheap); :meth:`write` calls it as
    ``function(model, path, input_size)``; ``int8_backend`` is
    the :func:`~mobilecnn.deploy.quantize` backend of the int8 file (None: fp32 only);
    ``help`` is what ``--format`` says; ``batch`` says how the file treats the batch size;
    ``calibrate_batch_one``: the int8 program takes the shape of its first calibration batch,
    so it is calibrated one image at a time (a runtime splits larger batches).
    """

    writer: str
    int8_backend: str | None
    help: str
    batch: str = "dynamic batch"
    calibrate_batch_one: bool = False

    def write(self, model: nn.Module, path: str | os.PathLike[str], input_size: InputSize
              ) -> Path:
        """Write ``model`` in fp32 with this format's writer; returns the path written."""
        module, function = self.writer.split(":")
        writer = getattr(importlib.import_module(f".{module}", __package__), function)
        return writer(model, path, input_size)


EXPORT_FORMATS: dict[str, ExportFormat] = {
    "onnx": ExportFormat("export:export_onnx", "onnxruntime",
                         "ONNX for onnxruntime (the [onnx] extra); int8 is QDQ"),
    "pte": ExportFormat("export:export_executorch", "xnnpack",
                        "ExecuTorch program with the XNNPACK delegate (the [edge] extra)",
                        batch="batch 1 (larger batches are split)", calibrate_batch_one=True),
    "tflite": ExportFormat("litert:export_tflite", "litert",
                           "LiteRT model (the [litert] extra); int8 is fully int8",
                           batch="batch 1 (LiteRT can resize it)"),
    "torchscript": ExportFormat("export:export_torchscript", None,
                                "TorchScript for LibTorch (fp32 only)"),
}
"""Format name -> :class:`ExportFormat`; the formats :func:`export_model` writes."""


def export_model(
    model: nn.Module,
    path: str | os.PathLike[str],
    format: str,
    input_size: InputSize = 224,
    *,
    int8_calibration: Iterable[torch.Tensor] | None = None,
) -> Path:
    """Write ``model`` to ``path`` as ``format`` (a key of :data:`EXPORT_FORMATS`).

    fp32 unless ``int8_calibration`` is given: then post-training static int8
    (:func:`~mobilecnn.deploy.quantize`) calibrated on those float image batches, normalized as
    for training, at ``input_size``. Returns the path written. Raises ``ValueError`` for an
    unknown format or int8 of a format without it, ``ImportError`` naming the extra when the
    format's package is missing.
    """
    spec = EXPORT_FORMATS.get(format)
    if spec is None:
        raise ValueError(f"format must be one of {', '.join(EXPORT_FORMATS)}; got {format!r}")
    if int8_calibration is None:
        return spec.write(model, path, input_size)
    if spec.int8_backend is None:
        with_int8 = [name for name, item in EXPORT_FORMATS.items() if item.int8_backend]
        raise ValueError(f"{format} has no int8 export; int8 works with "
                         f"{', '.join(with_int8)}")
    from .quantize import quantize

    batches = list(int8_calibration)
    if spec.calibrate_batch_one:  # the program's input shape is the first calibration batch's
        batches = [image.unsqueeze(0) for batch in batches for image in batch]
    return quantize(model, batches, backend=spec.int8_backend).save(path)
