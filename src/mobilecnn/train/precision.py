"""Mixed precision: which autocast dtype a ``precision`` setting means on a device."""

from __future__ import annotations

import contextlib

import torch

from ..devices import cpu_has_fast_bfloat16

__all__ = ["autocast", "autocast_dtype", "precision_name"]


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None = plain fp32).

    ``auto``: bf16 on CUDA when supported, else fp16 (with a GradScaler); bf16 on a CPU with
    native bf16 instructions (AVX-512 BF16 / AMX), else fp32; fp32 on MPS.
    """
    if precision == "fp32":
        return None
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "cpu" and cpu_has_fast_bfloat16():
            return torch.bfloat16
        return None
    if precision == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError("this GPU does not support bf16; use --precision fp16 or auto")
        return torch.bfloat16
    if precision == "fp16":
        if device.type == "cpu":
            raise ValueError("fp16 autocast is for GPUs; on CPU use --precision bf16 or fp32")
        return torch.float16
    raise ValueError(f"precision must be auto, fp32, bf16 or fp16; got {precision!r}")


def autocast(device: torch.device, dtype: torch.dtype | None
             ) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``dtype`` on ``device``; a no-op context for None (fp32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def precision_name(dtype: torch.dtype | None) -> str:
    """``"fp32"``, ``"bf16"`` or ``"fp16"`` for an autocast dtype."""
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
