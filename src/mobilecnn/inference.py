"""Shipping a trained model: fast inference, torchvision weights, ONNX and TorchScript.

* :func:`fold_batchnorm` / :func:`optimize_for_inference` - BatchNorm folded into the
  convolutions, channels_last memory format, optional bfloat16; the original is untouched.
* :func:`load_torchvision_state_dict` / :func:`to_torchvision_state_dict` - move weights between
  ``torchvision.models.mobilenet_v2`` and :class:`~mobilecnn.MobileNetV2` (explicit key rules).
* :func:`export_onnx` / :func:`export_torchscript` - files for onnxruntime and C++/mobile runtimes.
* :class:`FeatureExtractor`, :func:`freeze_backbone` (re-exported from
  :mod:`mobilecnn.models.features`) - multi-scale backbones and fine-tuning.

See ``docs/deployment.md`` for a guide and measured speed-ups.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .counting import InputSize, input_batch_shape
from .layers import ConvNormAct, InvertedResidual
from .models import MobileNetV2
from .models.features import (
    FeatureExtractor,
    FrozenBatchNorm2d,
    create_feature_extractor,
    freeze_backbone,
    unfreeze_backbone,
)

__all__ = [
    "FeatureExtractor",
    "FrozenBatchNorm2d",
    "cpu_has_fast_bfloat16",
    "create_feature_extractor",
    "export_onnx",
    "export_torchscript",
    "fold_batchnorm",
    "load_torchvision_state_dict",
    "optimize_for_inference",
    "to_torchvision_state_dict",
    "torchvision_key_map",
    "freeze_backbone",
    "unfreeze_backbone",
]

StateDict = Mapping[str, torch.Tensor]

# --------------------------------------------------------------------------------------------
# BatchNorm folding and optimize_for_inference
# --------------------------------------------------------------------------------------------


def _fold_pair(conv: nn.Conv2d, bn: nn.BatchNorm2d | FrozenBatchNorm2d, where: str) -> None:
    """Rewrite ``conv`` in place so that ``conv(x) == bn(conv(x))`` in eval mode."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(
            f"cannot fold the BatchNorm2d at {where!r}: it has no running statistics "
            "(track_running_stats=False), so it normalizes with batch statistics even in eval "
            "mode; train with track_running_stats=True or keep the model unfolded"
        )
    if conv.out_channels != bn.num_features:
        raise ValueError(
            f"cannot fold {where!r}: the convolution has {conv.out_channels} output channels "
            f"but the BatchNorm2d has {bn.num_features} features"
        )
    # Do the arithmetic in float64 so folding adds no rounding of its own.
    weight = conv.weight.detach().double()
    running_var = bn.running_var.detach().double()
    running_mean = bn.running_mean.detach().double()
    gamma = bn.weight.detach().double() if bn.weight is not None else torch.ones_like(running_var)
    beta = bn.bias.detach().double() if bn.bias is not None else torch.zeros_like(running_mean)
    scale = gamma * torch.rsqrt(running_var + bn.eps)
    bias = conv.bias.detach().double() if conv.bias is not None else torch.zeros_like(scale)
    new_weight = weight * scale.reshape(-1, *([1] * (weight.dim() - 1)))
    new_bias = (bias - running_mean) * scale + beta
    conv.weight = nn.Parameter(new_weight.to(conv.weight.dtype), requires_grad=False)
    conv.bias = nn.Parameter(new_bias.to(conv.weight.dtype), requires_grad=False)


def fold_batchnorm(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Fold every ``Conv2d -> BatchNorm2d`` pair into the convolution (which gains a bias).

    Pairs are consecutive children of an ``nn.Sequential`` (:class:`~mobilecnn.ConvNormAct`'s
    ``conv``/``bn``, and torchvision's ``Conv2dNormActivation`` alike); the BatchNorm (or
    :class:`~mobilecnn.models.features.FrozenBatchNorm2d`) is removed.
    The result is in eval mode, where it computes the same function as ``model.eval()``.
    Returns a deep copy unless ``inplace``. Raises ``ValueError`` for a BatchNorm without
    running statistics, which cannot be folded.
    """
    folded = model if inplace else copy.deepcopy(model)
    folded.eval()
    for parent_name, parent in list(folded.named_modules()):
        if not isinstance(parent, nn.Sequential):
            continue
        children = list(parent.named_children())
        to_remove: list[str] = []
        for (_, conv), (bn_name, bn) in zip(children, children[1:], strict=False):
            if type(conv) is nn.Conv2d and isinstance(bn, (nn.BatchNorm2d, FrozenBatchNorm2d)):
                where = f"{parent_name}.{bn_name}" if parent_name else bn_name
                _fold_pair(conv, bn, where)
                to_remove.append(bn_name)
        for bn_name in to_remove:
            delattr(parent, bn_name)
    return folded


def _cast_input(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """Forward pre-hook: floating inputs take the dtype of the module's parameters."""
    if not args or not isinstance(args[0], torch.Tensor) or not args[0].is_floating_point():
        return None
    dtype = next(module.parameters()).dtype
    if args[0].dtype == dtype:
        return None
    return (args[0].to(dtype), *args[1:])


_REDUCED_PRECISION = (torch.bfloat16, torch.float16)


def _cast_output(module: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
    """Forward hook: bfloat16/float16 outputs are returned as float32."""
    if isinstance(output, torch.Tensor) and output.dtype in _REDUCED_PRECISION:
        return output.float()
    if isinstance(output, list):  # feature extractors return one map per level
        return [o.float() if isinstance(o, torch.Tensor) and o.dtype in _REDUCED_PRECISION
                else o for o in output]
    return output


def cpu_has_fast_bfloat16() -> bool:
    """Whether this CPU runs bfloat16 natively (oneDNN with AVX512-BF16 or AMX).

    Without it bfloat16 is emulated and many times slower than float32, so the library only
    chooses bfloat16 on such a CPU when asked to.
    """
    checker = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(checker()) if checker is not None else False
    except RuntimeError:
        return False


def optimize_for_inference(
    model: nn.Module,
    *,
    dtype: torch.dtype | None = None,
    channels_last: bool = True,
) -> nn.Module:
    """An eval-mode copy of ``model`` made for fast inference; ``model`` itself is untouched.

    * every BatchNorm is folded into the preceding convolution (:func:`fold_batchnorm`);
    * parameters stop requiring gradients (run it under ``torch.inference_mode()``);
    * weights use the channels_last memory format (``channels_last=True``), which the
      oneDNN/cuDNN convolutions prefer; inputs may stay in either format;
    * ``dtype=torch.bfloat16`` (or ``torch.float16`` on GPUs) stores the weights in that type
      (on a CPU without AVX512-BF16/AMX this is emulated and slow: a ``RuntimeWarning`` says so);
      floating inputs are cast on the way in and outputs come back as float32, so callers
      see no difference except speed and precision (about 3 significant digits).

    The copy stays the same class (a :class:`~mobilecnn.MobileNetBase` stays one), so
    ``forward_features`` and ``feature_info`` keep working (with ``dtype``, only ``forward``
    casts: give ``forward_features`` inputs of that dtype).
    """
    optimized = fold_batchnorm(model, inplace=False)
    optimized.requires_grad_(False)
    if dtype is not None:
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating point type such as torch.bfloat16, "
                             f"got {dtype}")
        on_cpu = all(p.device.type == "cpu" for p in optimized.parameters())
        if dtype == torch.bfloat16 and on_cpu and not cpu_has_fast_bfloat16():
            warnings.warn(
                "this CPU has no native bfloat16 support (AVX512-BF16 or AMX), so bfloat16 "
                "inference is emulated and much slower than float32; use dtype=None here",
                RuntimeWarning,
                stacklevel=2,
            )
        optimized.to(dtype)
        optimized.register_forward_pre_hook(_cast_input)
        optimized.register_forward_hook(_cast_output)
    if channels_last:
        optimized.to(memory_format=torch.channels_last)
    return optimized


# --------------------------------------------------------------------------------------------
# torchvision weights
# --------------------------------------------------------------------------------------------


def _conv_norm_keys(ours: str, theirs: str, unit: nn.Module) -> dict[str, str]:
    """Key map of one ConvNormAct: ``conv`` -> ``<theirs>.0``, ``bn`` -> ``<theirs>.1``."""
    mapping: dict[str, str] = {}
    for name, _ in unit.state_dict().items():
        child, _, tensor = name.partition(".")
        index = {"conv": "0", "bn": "1"}.get(child)
        if index is None:
            raise ValueError(f"{ours}.{name} has no torchvision counterpart")
        mapping[f"{ours}.{name}"] = f"{theirs}.{index}.{tensor}"
    return mapping


def _project_keys(ours: str, theirs: str, position: int, unit: nn.Module) -> dict[str, str]:
    """The linear projection is flattened in torchvision: ``conv.<p>`` conv, ``conv.<p+1>`` bn."""
    mapping: dict[str, str] = {}
    for name, _ in unit.state_dict().items():
        child, _, tensor = name.partition(".")
        offset = {"conv": 0, "bn": 1}.get(child)
        if offset is None:
            raise ValueError(f"{ours}.{name} has no torchvision counterpart")
        mapping[f"{ours}.{name}"] = f"{theirs}.conv.{position + offset}.{tensor}"
    return mapping


def torchvision_key_map(model: MobileNetV2) -> dict[str, str]:
    """``{mobilecnn key: torchvision key}`` for every tensor of ``model.state_dict()``, in order.

    The rules (torchvision ``mobilenet_v2`` on the right)::

        features.0.conv / .bn                 features.0.0 / .1        (stem, and features.18)
        features.i.expand.conv / .bn          features.i.conv.0.0 / .0.1
        features.i.depthwise.conv / .bn       features.i.conv.1.0 / .1.1   (conv.0.* when t == 1)
        features.i.project.conv / .bn         features.i.conv.2 / .3       (conv.1 / .2 when t == 1)
        classifier.1                          classifier.1
    """
    if not isinstance(model, MobileNetV2):
        raise TypeError(
            "torchvision weights exist only for MobileNetV2 (torchvision has no MobileNetV1); "
            f"got {type(model).__name__}"
        )
    mapping: dict[str, str] = {}
    for index, block in enumerate(model.features):
        prefix = f"features.{index}"
        if isinstance(block, ConvNormAct):
            mapping.update(_conv_norm_keys(prefix, prefix, block))
        elif isinstance(block, InvertedResidual):
            stages = [block.expand] if isinstance(block.expand, ConvNormAct) else []
            stages.append(block.depthwise)
            names = ["expand"] if len(stages) == 2 else []
            names.append("depthwise")
            for position, (name, stage) in enumerate(zip(names, stages, strict=True)):
                mapping.update(
                    _conv_norm_keys(f"{prefix}.{name}", f"{prefix}.conv.{position}", stage)
                )
            mapping.update(_project_keys(f"{prefix}.project", prefix, len(stages), block.project))
        else:
            raise ValueError(f"{prefix} is a {type(block).__name__}, which torchvision lacks")
    for name in model.classifier.state_dict():
        mapping[f"classifier.{name}"] = f"classifier.{name}"
    return mapping


def _read_state_dict(source: StateDict | str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """A flat ``{key: tensor}`` from a mapping or a ``.pth`` file (loaded with weights_only)."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no state_dict file at {str(path)!r}")
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # pickle errors come in many types
            raise ValueError(
                f"{str(path)!r} is not a loadable PyTorch state_dict: {error}"
            ) from None
    else:
        loaded = source
    if not isinstance(loaded, Mapping):
        raise ValueError(f"expected a state_dict (a mapping of names to tensors), got "
                         f"{type(loaded).__name__}")
    # Training checkpoints often wrap the weights; DataParallel prefixes them with "module.".
    for wrapper in ("state_dict", "model"):
        if isinstance(loaded.get(wrapper), Mapping):
            loaded = loaded[wrapper]
            break
    state = {
        (key[len("module."):] if key.startswith("module.") else key): value
        for key, value in loaded.items()
    }
    not_tensors = [key for key, value in state.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise ValueError(f"expected a state_dict of tensors, but {not_tensors[0]!r} is a "
                         f"{type(state[not_tensors[0]]).__name__}")
    return state


def load_torchvision_state_dict(
    model: MobileNetV2,
    state_dict: StateDict | str | os.PathLike[str],
    *,
    include_classifier: bool = True,
) -> MobileNetV2:
    """Load torchvision ``mobilenet_v2`` weights (a state_dict or a ``.pth`` path) into ``model``.

    Every tensor is checked before anything is copied, so a failed load leaves ``model``
    unchanged. A different width, number of classes or block table raises ``ValueError``
    naming the first mismatched tensor with both shapes, or the missing/unexpected keys.
    ``include_classifier=False`` loads only the backbone (for fine-tuning on other classes).
    ``num_batches_tracked`` counters are optional (old checkpoints lack them). Returns ``model``.
    """
    mapping = torchvision_key_map(model)
    source = _read_state_dict(state_dict)
    if not include_classifier:
        mapping = {ours: theirs for ours, theirs in mapping.items()
                   if not ours.startswith("classifier.")}
        source = {key: value for key, value in source.items()
                  if not key.startswith("classifier.")}
    target = model.state_dict()
    missing = [theirs for ours, theirs in mapping.items()
               if theirs not in source and not ours.endswith("num_batches_tracked")]
    unexpected = sorted(set(source) - set(mapping.values()))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (first: {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (first: {', '.join(unexpected[:3])})")
        raise ValueError(
            "the state_dict is not a torchvision mobilenet_v2 with this model's block table: "
            + "; ".join(parts)
        )
    converted: dict[str, torch.Tensor] = {}
    for ours, theirs in mapping.items():
        if theirs not in source:
            continue
        expected = target[ours].shape
        found = source[theirs].shape
        if expected != found:
            raise ValueError(
                f"shape mismatch at torchvision tensor {theirs!r} (mobilecnn {ours!r}): "
                f"state_dict has {tuple(found)}, model expects {tuple(expected)}; check that "
                f"width_mult (model: {model.width_mult}) and num_classes (model: "
                f"{model.num_classes}) match the weights, or pass include_classifier=False"
            )
        converted[ours] = source[theirs]
    model.load_state_dict(converted, strict=False)
    return model


def to_torchvision_state_dict(model: MobileNetV2) -> dict[str, torch.Tensor]:
    """``model``'s weights under torchvision ``mobilenet_v2`` key names (tensors are detached)."""
    mapping = torchvision_key_map(model)
    state = model.state_dict()
    return {mapping[key]: value.detach().clone() for key, value in state.items()}


# --------------------------------------------------------------------------------------------
# ONNX and TorchScript
# --------------------------------------------------------------------------------------------


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
