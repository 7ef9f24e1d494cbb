"""Gradient checkpointing of a chain of blocks, with BatchNorm statistics updated once.

:func:`checkpoint_layers` runs each block under :func:`torch.utils.checkpoint.checkpoint`
(non-reentrant): only the blocks' inputs are kept for the backward pass, and each block is run
again there to rebuild its activations. That second run would update the running statistics of
the block's BatchNorms a second time; they are restored after it, so a checkpointed training
step leaves the model exactly as an ordinary one does.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

__all__ = ["checkpoint_layers", "checkpoint_taps"]


@contextmanager
def _norm_statistics_kept(module: nn.Module) -> Iterator[None]:
    """Restore the running statistics of ``module``'s norm layers on exit."""
    saved = [(buffer, buffer.clone()) for child in module.modules()
             if isinstance(child, nn.modules.batchnorm._NormBase)
             for buffer in child.buffers(recurse=False)]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)


def _contexts(module: nn.Module) -> tuple[Any, Any]:
    return nullcontext(), _norm_statistics_kept(module)


def checkpoint_layers(layers: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``layers(x)``, storing only each layer's input for the backward pass."""
    for layer in layers:
        x = checkpoint(layer, x, use_reentrant=False, context_fn=partial(_contexts, layer))
    return x


def checkpoint_taps(layers: nn.Sequential, x: torch.Tensor, taps: list[int]
                    ) -> list[torch.Tensor]:
    """The outputs of ``layers[i]`` for each ``i`` in ``taps`` (increasing), checkpointed as
    :func:`checkpoint_layers`; the layers after the last tap are not run."""
    outputs: list[torch.Tensor] = []
    start = 0
    for tap in taps:
        x = checkpoint_layers(layers[start: tap + 1], x)
        outputs.append(x)
        start = tap + 1
    return outputs
