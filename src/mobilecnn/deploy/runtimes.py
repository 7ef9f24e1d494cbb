"""The edge runtimes mobilecnn drives: ONNX Runtime, ExecuTorch (XNNPACK) and LiteRT (TensorFlow
Lite, XNNPACK), imported lazily.

Each ``require_*`` function imports its package or raises an ``ImportError`` that names the
extra to install; :func:`ort_session`, :func:`executorch_method` and :func:`litert_runner` open a
serialized model (bytes) for running on CPU tensors.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "RuntimeModel",
    "load_runtime_model",
    "executorch_installed",
    "executorch_method",
    "litert_installed",
    "litert_runner",
    "onnxruntime_installed",
    "ort_session",
    "require_executorch",
    "require_litert",
    "require_onnxruntime",
]


def onnxruntime_installed() -> bool:
    """Whether ``onnxruntime`` and ``onnx`` can be imported (the ``onnx`` extra)."""
    return all(importlib.util.find_spec(name) is not None
               for name in ("onnxruntime", "onnx", "onnxscript"))


def executorch_installed() -> bool:
    """Whether ``executorch`` (and the ``torchao`` it brings) can be imported (``edge`` extra)."""
    return all(importlib.util.find_spec(name) is not None for name in ("executorch", "torchao"))


def litert_installed() -> bool:
    """Whether ``litert_torch`` (the converter) and ``ai_edge_litert`` (the interpreter) can be
    imported (the ``litert`` extra)."""
    return all(importlib.util.find_spec(name) is not None
               for name in ("litert_torch", "ai_edge_litert", "torchao"))


def require_litert() -> None:
    """Raise ``ImportError`` naming the extra unless LiteRT's converter and interpreter import."""
    if not litert_installed():
        raise ImportError('this needs LiteRT (litert-torch, ai-edge-litert): '
                          'pip install "mobilecnn[litert]"')


def require_onnxruntime() -> Any:
    """Import and return ``onnxruntime``, or raise ``ImportError`` naming the extra."""
    if not onnxruntime_installed():
        raise ImportError('this needs onnx, onnxscript and onnxruntime: '
                          'pip install "mobilecnn[onnx]"')
    import onnxruntime

    return onnxruntime


def require_executorch() -> None:
    """Raise ``ImportError`` naming the extra unless ExecuTorch is importable."""
    if not executorch_installed():
        raise ImportError('this needs ExecuTorch (executorch, torchao): '
                          'pip install "mobilecnn[edge]"')


def ort_session(model_bytes: bytes, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session for ``model_bytes`` with ``threads`` intra-op threads
    (default: ``torch.get_num_threads()``) and thread spinning off, so that an idle session
    does not steal the CPU from whatever runs next."""
    onnxruntime = require_onnxruntime()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only
    return onnxruntime.InferenceSession(model_bytes, options,
                                        providers=["CPUExecutionProvider"])


def executorch_method(program_bytes: bytes) -> Callable[[torch.Tensor], torch.Tensor]:
    """Load an ExecuTorch program (``.pte`` bytes) and return its ``forward`` as a function."""
    require_executorch()
    from executorch.runtime import Runtime

    method = Runtime.get().load_program(program_bytes).load_method("forward")
    if method is None:  # pragma: no cover - a program we wrote always has forward
        raise ValueError("the ExecuTorch program has no 'forward' method")

    def forward(images: torch.Tensor) -> torch.Tensor:
        return method.execute([images.contiguous()])[0]

    return forward


def litert_runner(model_bytes: bytes, threads: int | None = None
                  ) -> tuple[Callable[[torch.Tensor], torch.Tensor], tuple[int, ...], bool]:
    """Open a ``.tflite`` model in LiteRT's interpreter (XNNPACK delegate, ``threads`` threads,
    default ``torch.get_num_threads()``). Returns ``(forward, input shape, quantized I/O)``:
    ``forward`` takes float images of any batch size and returns float outputs; a fully int8
    model's int8 input and output are quantized and dequantized with the file's own scales."""
    require_litert()
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=bytes(model_bytes),
                              num_threads=threads or torch.get_num_threads())
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]
    shape = tuple(int(v) for v in source["shape"])
    integer = np.issubdtype(source["dtype"], np.integer)
    fixed_batch = [shape[0]]

    def forward(images: torch.Tensor) -> torch.Tensor:
        feed = images.detach().to("cpu", torch.float32).contiguous().numpy()
        if feed.shape[0] != fixed_batch[0]:  # LiteRT re-plans its memory for the new batch
            interpreter.resize_tensor_input(source["index"], list(feed.shape))
            interpreter.allocate_tensors()
            fixed_batch[0] = feed.shape[0]
        if integer:
            scale, zero = source["quantization"]
            info = np.iinfo(source["dtype"])
            feed = np.clip(np.round(feed / scale) + zero, info.min, info.max)
            feed = feed.astype(source["dtype"])
        interpreter.set_tensor(source["index"], feed)
        interpreter.invoke()
        target = interpreter.get_output_details()[0]
        result = interpreter.get_tensor(target["index"])
        if np.issubdtype(target["dtype"], np.integer):
            scale, zero = target["quantization"]
            result = (result.astype(np.float32) - zero) * scale
        return torch.from_numpy(np.array(result, dtype=np.float32))

    return forward, shape, bool(integer)


RUNTIME_FORMATS = {"onnx": "ONNX Runtime", "pte": "ExecuTorch", "tflite": "LiteRT"}


class RuntimeModel(torch.nn.Module):
    """A model serialized for an edge runtime (an ONNX file, an ExecuTorch ``.pte`` program or a
    LiteRT ``.tflite`` model),
    callable like the PyTorch model it came from: float ``(N, C, H, W)`` images in, float
    logits ``(N, num_classes)`` out, on the CPU.

    :func:`~mobilecnn.quantize` returns one; :meth:`save` writes its file (atomically) and
    :func:`load_runtime_model` reads it back. ``precision`` is ``"int8"`` or ``"fp32"``.
    """

    def __init__(self, program: bytes, file_format: str, precision: str,
                 *, threads: int | None = None) -> None:
        super().__init__()
        if file_format not in RUNTIME_FORMATS:
            raise ValueError(f"file_format must be one of {sorted(RUNTIME_FORMATS)}, "
                             f"got {file_format!r}")
        self.program = bytes(program)
        self.file_format = file_format
        self.precision = precision
        self._batch: int | None = None  # fixed batch of a .pte program; None: any batch
        if file_format == "onnx":
            session = ort_session(self.program, threads)
            shape = session.get_inputs()[0].shape
            self._input_name = session.get_inputs()[0].name
            self._session = session
        elif file_format == "tflite":
            self._execute, shape, _ = litert_runner(self.program, threads)
        else:
            self._execute = executorch_method(self.program)
            shape = self._pte_input_shape()
            self._batch = int(shape[0])
        self.input_shape = tuple(int(v) for v in shape[1:])
        """``(channels, height, width)`` the file was exported for."""

    def _pte_input_shape(self) -> list[int]:
        from executorch.runtime import Runtime

        method = Runtime.get().load_program(self.program).load_method("forward")
        meta = method.metadata.input_tensor_meta(0)
        return list(meta.sizes())

    @property
    def runtime(self) -> str:
        """``"ONNX Runtime"``, ``"ExecuTorch"`` or ``"LiteRT"``."""
        return RUNTIME_FORMATS[self.file_format]

    @property
    def file_bytes(self) -> int:
        """Size of the serialized model in bytes (what :meth:`save` writes)."""
        return len(self.program)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Float logits for float images of shape ``(N, *input_shape)``."""
        if (not isinstance(images, torch.Tensor) or images.dim() != 4
                or tuple(images.shape[1:]) != self.input_shape):
            got = list(images.shape) if isinstance(images, torch.Tensor) else type(images)
            expected = ", ".join(map(str, self.input_shape))
            raise ValueError(f"expected images of shape (batch, {expected}), got {got}; this "
                             f"{self.runtime} model has a fixed image size")
        images = images.detach().to("cpu", torch.float32).contiguous()
        if self.file_format == "onnx":
            (logits,) = self._session.run(None, {self._input_name: images.numpy()})
            return torch.from_numpy(logits)
        if self.file_format == "tflite":
            return self._execute(images)
        assert self._batch is not None
        outputs = []
        for start in range(0, images.shape[0], self._batch):
            chunk = images[start:start + self._batch]
            short = self._batch - chunk.shape[0]
            if short:  # pad the last chunk up to the program's fixed batch size
                chunk = torch.cat([chunk, chunk.new_zeros(short, *chunk.shape[1:])])
            outputs.append(self._execute(chunk)[: self._batch - short])
        return torch.cat(outputs)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model file (``.onnx``, ``.pte`` or ``.tflite``) atomically; returns the
        path."""
        from ..fileio import atomic_write

        out = Path(path)
        with atomic_write(out) as handle:
            handle.write(self.program)
        return out

    def extra_repr(self) -> str:
        return (f"{self.runtime}, {self.precision}, input {self.input_shape}, "
                f"{self.file_bytes / 1e6:.2f} MB")


def load_runtime_model(path: str | os.PathLike[str], *, threads: int | None = None
                       ) -> RuntimeModel:
    """Load a file written by :meth:`RuntimeModel.save`, :func:`~mobilecnn.deploy.export_onnx`,
    :func:`~mobilecnn.deploy.export_executorch` or :func:`~mobilecnn.deploy.export_tflite`
    (``.onnx``, ``.pte`` or ``.tflite``); ``threads`` sets ONNX Runtime's and LiteRT's threads."""
    source = Path(path)
    file_format = source.suffix.lstrip(".").lower()
    if file_format not in RUNTIME_FORMATS:
        raise ValueError(f"{str(source)!r}: expected a .onnx, .pte or .tflite file")
    if not source.is_file():
        raise FileNotFoundError(f"{str(source)!r} does not exist")
    program = source.read_bytes()
    precision = "int8" if _looks_quantized(program, file_format) else "fp32"
    return RuntimeModel(program, file_format, precision, threads=threads)


def _looks_quantized(program: bytes, file_format: str) -> bool:
    if file_format == "onnx":
        return b"QuantizeLinear" in program
    if file_format == "tflite":
        return litert_runner(program, 1)[2]
    return b"scale_" in program  # XNNPACK's quantized tensors carry named scale constants
