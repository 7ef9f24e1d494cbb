"""Shipping a trained model: fast inference, int8, exported files and their runtimes.

One job per module:

* :mod:`~mobilecnn.deploy.fold` - :func:`fold_batchnorm` and :func:`optimize_for_inference`
  (BatchNorm folded, channels_last, optional bfloat16; the original is untouched);
* :mod:`~mobilecnn.deploy.export` - :func:`export_onnx` / :func:`export_executorch` /
  :func:`export_torchscript`;
* :mod:`~mobilecnn.deploy.litert` - :func:`export_tflite`, LiteRT (TensorFlow Lite) files;
* :mod:`~mobilecnn.deploy.formats` - :func:`export_model`, any format of
  :data:`EXPORT_FORMATS` in fp32 or int8 (what ``mobilecnn export`` calls);
* :mod:`~mobilecnn.deploy.calibration` - :func:`calibration_images` for int8;
* :mod:`~mobilecnn.deploy.runtimes` - :class:`RuntimeModel`, an ONNX Runtime, ExecuTorch or
  LiteRT file callable like a PyTorch model, and :func:`load_runtime_model`;
* :mod:`~mobilecnn.deploy.quantize` - :func:`quantize`, post-training static int8;
* :mod:`~mobilecnn.deploy.qat` - :func:`prepare_qat` / :func:`convert_qat`, quantization-aware
  training (on the fake quantization of :mod:`~mobilecnn.deploy.fake_quant`);
* :mod:`~mobilecnn.deploy.quant_report` - :func:`quantization_report`, int8 error per layer;
* :mod:`~mobilecnn.deploy.bench` - :func:`benchmark`, every inference backend timed side by side.

Feature extraction and freezing (:class:`FeatureExtractor`, :func:`freeze_backbone`) live in
:mod:`mobilecnn.models.features` and :mod:`mobilecnn.models.freeze` and are re-exported
here, as are the weight loaders of :mod:`mobilecnn.weights`. See ``docs/deployment.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# quantize is both a module and its function: imported now, so that importing the module
# (mobilecnn.deploy.quantize) can never shadow the function.
from .quantize import QUANTIZATION_BACKENDS, available_quantization_backends, quantize

# Each name is imported from its module on first use: exporting, quantizing and benchmarking
# pull in heavy modules that `import mobilecnn` and a CLI call should not pay for.
_SOURCES = {
    "cpu_has_fast_bfloat16": "..devices",
    "FeatureExtractor": "..models.features",
    "create_feature_extractor": "..models.registry",
    "FrozenBatchNorm2d": "..models.freeze",
    "freeze_backbone": "..models.freeze",
    "unfreeze_backbone": "..models.freeze",
    "load_timm_state_dict": "..weights",
    "load_torchvision_state_dict": "..weights",
    "timm_key_map": "..weights",
    "to_timm_state_dict": "..weights",
    "to_torchvision_state_dict": "..weights",
    "torchvision_key_map": "..weights",
    "BenchResult": ".bench",
    "benchmark": ".bench",
    "benchmark_backends": ".bench",
    "export_executorch": ".export",
    "export_onnx": ".export",
    "export_torchscript": ".export",
    "fold_batchnorm": ".fold",
    "optimize_for_inference": ".fold",
    "export_tflite": ".litert",
    "EXPORT_FORMATS": ".formats",
    "ExportFormat": ".formats",
    "export_model": ".formats",
    "calibration_images": ".calibration",
    "convert_qat": ".qat",
    "prepare_qat": ".qat",
    "LayerQuantError": ".quant_report",
    "QuantizationReport": ".quant_report",
    "quantization_report": ".quant_report",
    "RuntimeModel": ".runtimes",
    "load_runtime_model": ".runtimes",
}

if TYPE_CHECKING:
    from ..devices import cpu_has_fast_bfloat16
    from ..models.features import FeatureExtractor
    from ..models.freeze import FrozenBatchNorm2d, freeze_backbone, unfreeze_backbone
    from ..models.registry import create_feature_extractor

    # weight conversion lives in mobilecnn.weights since 0.3; the names stay importable here
    from ..weights import (
        load_timm_state_dict,
        load_torchvision_state_dict,
        timm_key_map,
        to_timm_state_dict,
        to_torchvision_state_dict,
        torchvision_key_map,
    )
    from .bench import BenchResult, benchmark, benchmark_backends
    from .calibration import calibration_images
    from .export import export_executorch, export_onnx, export_torchscript
    from .fold import fold_batchnorm, optimize_for_inference
    from .formats import EXPORT_FORMATS, ExportFormat, export_model
    from .litert import export_tflite
    from .qat import convert_qat, prepare_qat
    from .quant_report import LayerQuantError, QuantizationReport, quantization_report
    from .runtimes import RuntimeModel, load_runtime_model


def __getattr__(name: str) -> Any:
    module = _SOURCES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "EXPORT_FORMATS",
    "QUANTIZATION_BACKENDS",
    "BenchResult",
    "ExportFormat",
    "FeatureExtractor",
    "FrozenBatchNorm2d",
    "LayerQuantError",
    "QuantizationReport",
    "RuntimeModel",
    "available_quantization_backends",
    "benchmark",
    "benchmark_backends",
    "calibration_images",
    "convert_qat",
    "cpu_has_fast_bfloat16",
    "create_feature_extractor",
    "export_executorch",
    "export_model",
    "export_onnx",
    "export_tflite",
    "export_torchscript",
    "fold_batchnorm",
    "freeze_backbone",
    "load_timm_state_dict",
    "load_torchvision_state_dict",
    "optimize_for_inference",
    "timm_key_map",
    "to_timm_state_dict",
    "load_runtime_model",
    "prepare_qat",
    "quantization_report",
    "quantize",
    "to_torchvision_state_dict",
    "torchvision_key_map",
    "unfreeze_backbone",
]
