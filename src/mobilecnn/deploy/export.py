"""Files for other runtimes: ONNX (onnxruntime) and TorchScript (LibTorch)."""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from ..counting import InputSize, input_batch_shape
from .fold import optimize_for_inference

__all__ = ["export_onnx", "export_torchscript"]


def _example_input(model: nn.Module, input_size: InputSize, batch_size: int) -> torch.Tensor:
    shape = input_batch_shape(model, input_size, batch_size)
    parameter = next(model.parameters())
    dtype = parameter.dtype if parameter.is_floating_point() else torch.float32
    return torch.randn(shape, device=parameter.device, dtype=dtype)


def _prepare_output_path(path: str | os.PathLike[str]) -> Path:
    out = Path(path)
    if out.is_dir():
        raise ValueError(f"{str(out)!r} is a directory; give a file name such as model.onnx")
    if not out.parent.exists():
        raise FileNotFoundError(f"the folder of {str(out)!r} does not exist; create it first")
    return out


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    input_size: InputSize = 224,
    *,
    dynamic_batch: bool = True,
    opset_version: int | None = None,
) -> Path:
    """Write ``model`` (in eval mode) to an ONNX file with input ``images`` and output ``logits``.

    Uses PyTorch's ``torch.export``-based exporter (``dynamo=True``, which needs ``onnxscript``).
    The batch axis is dynamic unless ``dynamic_batch=False``; height and width are fixed at
    ``input_size``. BatchNorm is folded first (onnxruntime would do the same). Needs
    ``pip install "mobilecnn[onnx]"``. Returns the path written.
    """
    try:
        import onnxscript  # noqa: F401  (the dynamo exporter needs it)
    except ImportError:
        raise ImportError(
            'ONNX export needs onnx and onnxscript: pip install "mobilecnn[onnx]"'
        ) from None
    out = _prepare_output_path(path)
    exported = optimize_for_inference(model, channels_last=False)
    example = _example_input(exported, input_size, batch_size=2)  # 2: a size export won't fix
    dynamic_shapes = ({0: torch.export.Dim("batch")},) if dynamic_batch else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        program = torch.onnx.export(
            exported,
            (example,),
            dynamo=True,
            input_names=["images"],
            output_names=["logits"],
            dynamic_shapes=dynamic_shapes,
            opset_version=opset_version,
            verbose=False,
        )
    if program is None:  # pragma: no cover - only the legacy exporter returns None
        raise RuntimeError("torch.onnx.export returned no program")
    program.save(str(out))
    return out


def export_torchscript(
    model: nn.Module,
    path: str | os.PathLike[str],
    input_size: InputSize = 224,
    *,
    optimize: bool = True,
) -> Path:
    """Trace ``model`` (after :func:`optimize_for_inference` when ``optimize``) to TorchScript.

    The traced module is frozen (weights become constants) and saved with ``torch.jit.save``;
    load it with ``torch.jit.load(path)``, also from C++ (LibTorch). The batch size stays free;
    height and width are fixed at ``input_size``. PyTorch marks TorchScript as deprecated in
    favour of ``torch.export``; it still works and is what LibTorch runtimes load.
    """
    out = _prepare_output_path(path)
    prepared = (optimize_for_inference(model) if optimize
                else copy.deepcopy(model).eval().requires_grad_(False))
    example = _example_input(prepared, input_size, batch_size=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=FutureWarning)  # "torch.jit is deprecated"
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)  # the input check
        with torch.no_grad():
            traced = torch.jit.trace(prepared, example)
            frozen = torch.jit.freeze(traced)
        torch.jit.save(frozen, str(out))
    return out
