"""What the hardware can do, asked once in one place (used by training and deployment).

:func:`pick_device` is the one rule for a requested device (``--device`` of every command,
``TrainConfig.device``): ``auto`` picks CUDA, then MPS, then the CPU; a named device that this
machine lacks is a one-line ``ValueError`` before anything is allocated.
"""

from __future__ import annotations

import torch

__all__ = ["DEVICE_CHOICES", "check_device_name", "cpu_has_fast_bfloat16", "pick_device"]

DEVICE_CHOICES = "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps"
"""What a device option accepts, in words (the help text of every ``--device``)."""

_HINT = "use --device cpu or auto"


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


def check_device_name(requested: str) -> str:
    """Return ``requested`` if it is ``auto`` or names a device that can hold a model.

    Only the spelling is checked (a config written on a GPU machine stays readable on a laptop);
    :func:`pick_device` checks that the device is present. Raises a one-line ``ValueError``.
    """
    if not isinstance(requested, str) or not requested.strip():
        raise ValueError(f"device must be {DEVICE_CHOICES}; got {requested!r}")
    if requested == "auto":
        return requested
    try:
        device = torch.device(requested)
    except (RuntimeError, ValueError):
        raise ValueError(f"device {requested!r} is not a device; use {DEVICE_CHOICES}") from None
    if device.type == "meta":
        raise ValueError("device 'meta' holds shapes but no data, so nothing can run on it; "
                         f"{_HINT}")
    return requested


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def pick_device(requested: str, local_rank: int = 0) -> torch.device:
    """The device to use for ``requested`` (see :func:`check_device_name`).

    ``"auto"``: CUDA (this process's ``local_rank`` GPU), then MPS, then CPU. A device this
    machine lacks (``cuda`` without CUDA, ``cuda:3`` with two GPUs, ``mps`` off a Mac, ``xpu``
    without one) is a one-line ``ValueError`` saying what to use instead.
    """
    check_device_name(requested)
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        if _mps_available() and local_rank == 0:
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(requested)
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {requested!r} asked for CUDA, which is not available here; "
                             f"{_HINT}")
        count = torch.cuda.device_count()
        if device.index is None:
            return torch.device("cuda", local_rank % count)
        if device.index >= count:
            raise ValueError(f"device {requested!r}: this machine has {count} CUDA device(s), "
                             f"cuda:0 to cuda:{count - 1}")
        return device
    if device.type == "mps":
        if not _mps_available():
            raise ValueError(f"device {requested!r} asked for Apple's MPS, which is not "
                             f"available here (it needs a Mac with Apple silicon); {_HINT}")
        return device
    backend = getattr(torch, device.type, None)
    available = getattr(backend, "is_available", None)
    if callable(available) and available():
        return device
    raise ValueError(f"device {requested!r} is not available on this machine; {_HINT}")
