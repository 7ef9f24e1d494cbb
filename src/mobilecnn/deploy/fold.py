"""BatchNorm folding and :func:`optimize_for_inference`: an eval-mode copy made for speed."""

from __future__ import annotations

import copy
import warnings
from typing import Any

import torch
from torch import nn

from ..devices import cpu_has_fast_bfloat16
from ..models.freeze import FrozenBatchNorm2d

__all__ = ["fold_batchnorm", "optimize_for_inference"]


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


def _affine_conv(bn: nn.BatchNorm2d | FrozenBatchNorm2d, where: str) -> nn.Conv2d:
    """An eval-mode BatchNorm that follows no convolution as the 1x1 depthwise conv (with bias)
    computing the same per-channel affine map."""
    conv = nn.Conv2d(bn.num_features, bn.num_features, 1, groups=bn.num_features, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    conv.to(device=bn.running_mean.device if bn.running_mean is not None else None)
    _fold_pair(conv, bn, where)
    return conv


def _replace_lone_batchnorms(model: nn.Module) -> None:
    """Every BatchNorm left after folding (e.g. the pre-norm of an attention block, which feeds
    several convolutions) becomes the equivalent per-channel conv (:func:`_affine_conv`)."""
    for parent_name, parent in list(model.named_modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, (nn.BatchNorm2d, FrozenBatchNorm2d)) and (
                    child.running_var is not None):  # batch statistics cannot be folded
                where = f"{parent_name}.{name}" if parent_name else name
                setattr(parent, name, _affine_conv(child, where))


def fold_batchnorm(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Fold every ``Conv2d -> BatchNorm2d`` pair into the convolution (which gains a bias).

    Pairs are consecutive children of an ``nn.Sequential`` (:class:`~mobilecnn.ConvNormAct`'s
    ``conv``/``bn``, and torchvision's ``Conv2dNormActivation`` alike); the BatchNorm (or
    :class:`~mobilecnn.models.freeze.FrozenBatchNorm2d`) is removed. A BatchNorm that follows
    no convolution (the pre-norm of :class:`~mobilecnn.MobileMQA`) becomes the equivalent 1x1
    depthwise conv; other norms (RMSNorm, LayerNorm) stay as they are.
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
    _replace_lone_batchnorms(folded)
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
