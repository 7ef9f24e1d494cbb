"""Post-training static int8 quantization: :func:`quantize` (per-channel int8 weights, activation
ranges calibrated on sample images, BatchNorm folded first).

Two backends, chosen by measurement (``docs/deployment.md``):

* ``"onnxruntime"``: ``onnxruntime.quantization.quantize_static`` on mobilecnn's ONNX export, as
  QDQ with uint8 activations and per-channel int8 weights in 7 bits (``reduce_range``: the fast
  u8s8 kernels of x86 CPUs saturate with 8-bit weights). The fastest int8 path on x86; extra
  ``onnx``.
* ``"xnnpack"``: PT2E (``torch.export`` + ExecuTorch's ``XNNPACKQuantizer``, int8 symmetric
  per-channel weights) lowered to an ExecuTorch program with the XNNPACK delegate: what Android
  and iOS phones run. Extra ``edge``.
* ``"litert"``: PT2E with litert-torch's quantizer (int8 symmetric per-channel weights, int8
  activations), converted to a fully int8 LiteRT ``.tflite`` model for Android apps. Extra
  ``litert``.

The result is a :class:`~mobilecnn.deploy.RuntimeModel`: call it on float images, ``.save()`` it,
read it back with :func:`~mobilecnn.deploy.load_runtime_model`.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import runtimes
from .fold import fold_batchnorm
from .runtimes import RuntimeModel, require_executorch, require_litert, require_onnxruntime

__all__ = ["QUANTIZATION_BACKENDS", "available_quantization_backends", "calibration_batches",
           "quantize", "tflite_bytes"]

QUANTIZATION_BACKENDS = {
    "onnxruntime": 'ONNX Runtime QDQ (u8 activations, s8 per-channel weights): pip install '
                   '"mobilecnn[onnx]"',
    "xnnpack": 'ExecuTorch + XNNPACK (s8 symmetric, per-channel weights), what phones run: '
               'pip install "mobilecnn[edge]"',
    "litert": 'LiteRT (TensorFlow Lite) + XNNPACK, fully int8 .tflite for Android apps: '
              'pip install "mobilecnn[litert]"',
}
"""Backend name -> what it is and how to install it."""

# Fastest first, as measured on x86 (docs/deployment.md): backend=None takes the first installed.
_PREFERENCE = ("onnxruntime", "xnnpack", "litert")


def available_quantization_backends() -> list[str]:
    """The :data:`QUANTIZATION_BACKENDS` whose packages are installed, fastest first."""
    installed = {"onnxruntime": runtimes.onnxruntime_installed(),
                 "xnnpack": runtimes.executorch_installed(),
                 "litert": runtimes.litert_installed()}
    return [name for name in _PREFERENCE if installed[name]]


def _resolve_backend(backend: str | None) -> str:
    if backend is None:
        available = available_quantization_backends()
        if not available:
            raise ImportError('int8 quantization needs ONNX Runtime or ExecuTorch: pip install '
                              '"mobilecnn[onnx]" (x86 servers) or "mobilecnn[edge]" (phones)')
        return available[0]
    if backend not in QUANTIZATION_BACKENDS:
        raise ValueError(f"unknown quantization backend {backend!r}; choose one of "
                         f"{', '.join(QUANTIZATION_BACKENDS)}")
    if backend == "onnxruntime":
        require_onnxruntime()
    elif backend == "litert":
        require_litert()
    else:
        require_executorch()
    return backend


def calibration_batches(model: nn.Module, calibration: Iterable[Any]) -> list[torch.Tensor]:
    """Check and collect calibration data: float ``(N, C, H, W)`` batches (or ``(images, labels)``
    pairs, as a data loader yields), all of one image size, as contiguous CPU float32 tensors.

    Raises ``ValueError`` (one line) for empty data or a batch of the wrong type or shape.
    """
    if isinstance(calibration, torch.Tensor):
        calibration = [calibration]
    channels = getattr(model, "in_channels", None)
    batches: list[torch.Tensor] = []
    for index, item in enumerate(calibration):
        images = item[0] if isinstance(item, (tuple, list)) and item else item
        if not isinstance(images, torch.Tensor) or not images.is_floating_point():
            kind = (f"a {images.dtype} tensor" if isinstance(images, torch.Tensor)
                    else type(images).__name__)
            raise ValueError(f"calibration batch {index}: expected a float tensor of images "
                             f"(N, C, H, W), got {kind}; normalize images as for training")
        if images.dim() != 4 or images.shape[0] == 0 or (
                channels is not None and images.shape[1] != channels):
            expected = f"(N, {channels}, H, W)" if channels is not None else "(N, C, H, W)"
            raise ValueError(f"calibration batch {index}: expected shape {expected}, got "
                             f"{list(images.shape)}")
        if batches and images.shape[1:] != batches[0].shape[1:]:
            raise ValueError(f"calibration batch {index} has images of shape "
                             f"{list(images.shape[1:])} but batch 0 has "
                             f"{list(batches[0].shape[1:])}; the quantized model has one fixed "
                             "image size: resize all calibration images to it")
        batches.append(images.detach().to("cpu", torch.float32).contiguous())
    if not batches:
        raise ValueError("calibration data is empty: give at least one batch of float images "
                         "(N, C, H, W), e.g. a few hundred training or validation images")
    return batches


def _check_model(model: Any) -> nn.Module:
    if isinstance(model, RuntimeModel):
        raise ValueError("this model is already an exported runtime model; quantize the "
                         "PyTorch model it came from")
    if not isinstance(model, nn.Module):
        raise ValueError(f"cannot quantize a {type(model).__name__}: expected a torch.nn.Module "
                         "classifier such as mobilecnn.create_model('mobilenet_v2')")
    if not any(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules()):
        raise ValueError(f"cannot quantize {type(model).__name__}: it has no Conv2d or Linear "
                         "layer, so int8 would gain nothing")
    if any(not p.is_floating_point() for p in model.parameters()):
        raise ValueError(f"cannot quantize {type(model).__name__}: it is already quantized")
    return fold_batchnorm(model.to("cpu").float(), inplace=False).requires_grad_(False)


def quantize(
    model: nn.Module,
    calibration: Iterable[Any],
    *,
    backend: str | None = None,
    threads: int | None = None,
) -> RuntimeModel:
    """Post-training static int8 quantization of a float classifier.

    ``calibration`` is an iterable of float image batches ``(N, C, H, W)`` (or ``(images,
    labels)`` pairs), normalized as for training: a few hundred images from the training or
    validation data are enough. All batches share one image size, which the result is fixed
    to (any batch size). BatchNorm is folded first; weights are int8 per output channel,
    activations int8/uint8 per tensor with ranges taken from the calibration data.

    ``backend``: ``"onnxruntime"`` (fastest on x86), ``"xnnpack"`` (ExecuTorch, phones),
    ``"litert"`` (LiteRT ``.tflite``, Android apps), or ``None`` for the fastest one installed
    (:func:`available_quantization_backends`). ``threads`` sets ONNX Runtime's and LiteRT's
    threads (default ``torch.get_num_threads()``).

    Returns a :class:`~mobilecnn.deploy.RuntimeModel`: ``q(images)`` gives float logits of the
    float model's shape; ``q.save("model.onnx")`` (``.pte``, ``.tflite``) writes it and
    :func:`~mobilecnn.deploy.load_runtime_model` loads it back. Raises ``ValueError`` for empty
    or ill-shaped calibration data and models that cannot be quantized, ``ImportError``
    (naming the extra) for a backend that is not installed.
    """
    name = _resolve_backend(backend)
    folded = _check_model(model)
    batches = calibration_batches(folded, calibration)
    with torch.inference_mode():
        try:
            expected = folded(batches[0][:1])
        except Exception as error:  # noqa: BLE001 - report the model's own complaint
            raise ValueError(f"the model cannot run on the calibration images "
                             f"{list(batches[0].shape)}: {str(error).splitlines()[0]}") from None
    if name == "onnxruntime":
        quantized = _quantize_onnxruntime(folded, batches, threads)
    elif name == "litert":
        quantized = _quantize_litert(folded, batches, threads)
    else:
        quantized = _quantize_xnnpack(folded, batches)
    logits = quantized(batches[0][:1])
    if logits.shape != expected.shape:  # pragma: no cover - a backend bug, not user input
        raise RuntimeError(f"the {name} int8 model returned shape {list(logits.shape)}, "
                           f"the float model {list(expected.shape)}")
    return quantized


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over our batches."""

    def __init__(self, batches: list[torch.Tensor], input_name: str) -> None:
        self._feeds = iter([{input_name: b.numpy()} for b in batches])

    def get_next(self) -> dict[str, Any] | None:
        return next(self._feeds, None)

    def __iter__(self) -> Any:  # some onnxruntime versions iterate the reader
        return iter(self.get_next, None)


def _quantize_onnxruntime(folded: nn.Module, batches: list[torch.Tensor],
                          threads: int | None) -> RuntimeModel:
    require_onnxruntime()
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from .export import export_onnx

    reader = type("CalibrationReader", (_Reader, CalibrationDataReader), {})
    with tempfile.TemporaryDirectory(prefix="mobilecnn-quantize-") as folder:
        fp32 = Path(folder) / "fp32.onnx"
        prepared = Path(folder) / "prepared.onnx"
        int8 = Path(folder) / "int8.onnx"
        height, width = batches[0].shape[2:]
        export_onnx(folded, fp32, (int(height), int(width)))
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_static(
                str(prepared), str(int8), reader(batches, "images"),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,  # u8 x s8: the fast kernel without VNNI
                weight_type=QuantType.QInt8,
                # 7-bit weights: AVX2's u8 x s8 instruction (vpmaddubsw) adds pairs of
                # products into int16 and saturates with full 8-bit weights (-20 points of
                # top-1 on the demo model); with 7 bits it cannot overflow.
                reduce_range=True,
            )
        program = int8.read_bytes()
    return RuntimeModel(program, "onnx", "int8", threads=threads)


def _quantize_xnnpack(folded: nn.Module, batches: list[torch.Tensor]) -> RuntimeModel:
    require_executorch()
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from .export import executorch_program, exported_program

    quantizer = XNNPACKQuantizer()
    quantizer.set_global(get_symmetric_quantization_config(is_per_channel=True))
    two = batches[0][:1].expand(2, *batches[0].shape[1:]).contiguous()  # 1 would specialize
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = exported_program(folded, two, dynamic_batch=True).module()
        prepared = prepare_pt2e(graph, quantizer)
        with torch.no_grad():
            for batch in batches:
                prepared(batch)
        converted = convert_pt2e(prepared)
        # ExecuTorch plans memory for one fixed shape: the first calibration batch's
        program = executorch_program(exported_program(converted, batches[0]))
    return RuntimeModel(program, "pte", "int8")


def _quantize_litert(folded: nn.Module, batches: list[torch.Tensor],
                     threads: int | None) -> RuntimeModel:
    """litert-torch's documented int8 route: PT2E with its ``PT2EQuantizer`` (per-channel
    symmetric weights, histogram-calibrated int8 activations), then ``litert_torch.convert``."""
    require_litert()
    from litert_torch.quantize.pt2e_quantizer import (
        PT2EQuantizer,
        get_symmetric_quantization_config,
    )
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from .export import exported_program

    quantizer = PT2EQuantizer().set_global(
        get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
    two = batches[0][:1].expand(2, *batches[0].shape[1:]).contiguous()  # 1 would specialize
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_pt2e(exported_program(folded, two, dynamic_batch=True).module(),
                                quantizer)
        with torch.no_grad():
            for batch in batches:
                prepared(batch)
        converted = convert_pt2e(prepared, fold_quantize=False)
    program = tflite_bytes(converted, batches[0][:1], QuantConfig(pt2e_quantizer=quantizer))
    return RuntimeModel(program, "tflite", "int8", threads=threads)


def tflite_bytes(module: nn.Module, example: torch.Tensor, quant_config: Any = None) -> bytes:
    """Convert ``module`` (a float model, or a PT2E-converted int8 graph with its
    ``quant_config``) to ``.tflite`` bytes for input ``example``'s shape, with litert-torch.
    Raises ``ValueError`` (one line) when the converter cannot take the model."""
    require_litert()
    import litert_torch

    shown = litert_torch.config.show_progress
    try:
        litert_torch.config.show_progress = False  # its progress log goes to stdout
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            converted = litert_torch.convert(module, (example,), quant_config=quant_config)
            return bytes(converted.model_content())
    except Exception as error:  # noqa: BLE001 - the converter raises many types
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"litert-torch cannot convert {type(module).__name__}: "
                         f"{first[:300]}") from None
    finally:
        litert_torch.config.show_progress = shown
