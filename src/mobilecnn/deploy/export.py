"""Files for other runtimes: ONNX (onnxruntime), ExecuTorch (XNNPACK) and TorchScript (LibTorch).

Every file is written atomically (:mod:`mobilecnn.fileio`): a failed export leaves any previous
file at that path untouched.
"""

from __future__ import annotations

import copy
import io
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ..counting import InputSize, input_batch_shape
from ..fileio import atomic_path, atomic_write
from .fold import optimize_for_inference
from .runtimes import require_executorch

__all__ = ["executorch_program", "export_executorch", "export_onnx", "export_torchscript",
           "exported_program"]


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
    if out.exists() and not out.is_file():
        raise ValueError(f"{str(out)!r} exists and is not a regular file (a device or pipe); "
                         "give a file name")
    return out


def _write_or_raise(write: Callable[[], object], out: Path) -> None:
    """Run a library's file writer; its failures (a full disk, a C++ error) become OSError."""
    try:
        write()
    except OSError:
        raise
    except Exception as error:  # noqa: BLE001 - writers raise RuntimeError for I/O failures
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise OSError(f"could not write {str(out)!r}: {first}") from None


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
    with atomic_path(out) as temporary:
        _write_or_raise(lambda: program.save(str(temporary)), out)
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
        # Serialized in memory first: torch.jit.save writing to a file aborts the process
        # (C++ terminate) when the disk fills up. Python's write raises an OSError instead.
        buffer = io.BytesIO()
        _write_or_raise(lambda: torch.jit.save(frozen, buffer), out)
    with atomic_write(out) as handle:
        handle.write(buffer.getbuffer())
    return out


def exported_program(model: nn.Module, example: torch.Tensor, *, dynamic_batch: bool = False
                     ) -> torch.export.ExportedProgram:
    """``torch.export`` of ``model`` (in eval mode) for ``example``; the batch axis is dynamic
    with ``dynamic_batch``. Raises ``ValueError`` (one line) when the model cannot be exported."""
    dynamic_shapes = ({0: torch.export.Dim("batch", min=1, max=4096)},) if dynamic_batch else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if not isinstance(model, torch.fx.GraphModule):  # exported graphs refuse .eval()
                model.eval()
            return torch.export.export(model, (example,), dynamic_shapes=dynamic_shapes)
    except Exception as error:  # noqa: BLE001 - torch.export raises many types
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"torch.export cannot capture {type(model).__name__}: {first}") from None


def executorch_program(program: torch.export.ExportedProgram) -> bytes:
    """Lower an exported program to ExecuTorch with the XNNPACK delegate; the ``.pte`` bytes."""
    require_executorch()
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
        return bytes(edge.to_executorch().buffer)


def export_executorch(
    model: nn.Module,
    path: str | os.PathLike[str],
    input_size: InputSize = 224,
    *,
    batch_size: int = 1,
) -> Path:
    """Write ``model`` as an ExecuTorch program (``.pte``) with the XNNPACK delegate, fp32.

    BatchNorm is folded first. The program has a fixed input shape
    ``(batch_size, C, *input_size)`` (ExecuTorch plans its memory ahead of time); a
    :class:`~mobilecnn.deploy.RuntimeModel` loaded from it splits larger batches. Run it with
    ``executorch.runtime`` in Python, or the ExecuTorch C++/Android/iOS runtimes. For int8 use
    ``mobilecnn.quantize(model, calibration, backend="xnnpack").save(path)``. Needs
    ``pip install "mobilecnn[edge]"``; lowering takes tens of seconds to minutes.
    """
    require_executorch()
    out = _prepare_output_path(path)
    prepared = optimize_for_inference(model, channels_last=False)
    example = _example_input(prepared, input_size, batch_size=batch_size)
    program = executorch_program(exported_program(prepared, example.float()))
    with atomic_path(out) as temporary:
        _write_or_raise(lambda: temporary.write_bytes(program), out)
    return out
