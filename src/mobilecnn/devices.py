"""What the hardware can do, asked once in one place (used by training and deployment)."""

from __future__ import annotations

import torch

__all__ = ["cpu_has_fast_bfloat16"]


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
