"""Model EMA: an exponential moving average of the weights and BatchNorm buffers.

The averaged copy is what gets evaluated beside the raw model each epoch and, when chosen,
saved as ``best.pt`` and exported. The decay warms up as in timm's ``ModelEmaV3``: early in
training, when the weights still move fast, a long average would only lag behind, so step
``t`` uses ``min(decay, 1 - (1 + t / warmup_gamma) ** -warmup_power)``.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

__all__ = ["ModelEma", "ema_decay_at"]


def ema_decay_at(step: int, decay: float, warmup: bool = True, warmup_gamma: float = 1.0,
                 warmup_power: float = 2 / 3, min_decay: float = 0.0) -> float:
    """The decay the EMA uses for its update number ``step`` (0-based).

    Without warmup it is ``decay``; with warmup ``1 - (1 + step / warmup_gamma) **
    -warmup_power``, clamped to ``[min_decay, decay]`` (``warmup_power`` 2/3 suits runs of
    about a million steps, 3/4 shorter ones; the first update then copies the model).
    """
    if not warmup:
        return decay
    value = 1.0 - (1.0 + step / warmup_gamma) ** -warmup_power
    return max(min_decay, min(decay, value))


class ModelEma:
    """An averaged copy of ``model``: ``ema = decay * ema + (1 - decay) * model`` per update.

    Every floating-point tensor of ``model.state_dict()`` (weights and BatchNorm running
    statistics) is averaged; integer buffers (``num_batches_tracked``) are copied. The copy
    lives in :attr:`module` (eval mode, no gradients) on ``model``'s device. Call
    :meth:`update` after each optimizer step with the unwrapped model (not the DDP or
    ``torch.compile`` wrapper). :meth:`state_dict` / :meth:`load_state_dict` make it resumable
    bit-exactly.

    Args:
        model: the model being trained; it is deep-copied.
        decay: the decay after warmup (timm's and torchvision's recipes use 0.9998-0.99998
            per step for ImageNet; shorter runs need a shorter average, e.g. 0.999).
        warmup: ramp the decay up as :func:`ema_decay_at` says.
        warmup_power: the exponent of the warmup (2/3 long runs, 3/4 short ones).
    """

    def __init__(self, model: nn.Module, decay: float = 0.9998, warmup: bool = True,
                 warmup_power: float = 2 / 3) -> None:
        if not 0.0 <= decay < 1.0 or not math.isfinite(decay):
            raise ValueError(f"ema decay must be in [0, 1), got {decay!r}")
        if not warmup_power > 0:
            raise ValueError(f"ema warmup_power must be > 0, got {warmup_power!r}")
        self.decay = float(decay)
        self.warmup = bool(warmup)
        self.warmup_power = float(warmup_power)
        self.updates = 0
        self.module = copy.deepcopy(model)
        self.module.eval()
        self.module.requires_grad_(False)

    def current_decay(self) -> float:
        """The decay the next :meth:`update` will use."""
        return ema_decay_at(self.updates, self.decay, self.warmup, warmup_power=self.warmup_power)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model``'s current weights and buffers."""
        decay = self.current_decay()
        averaged, copied_to, copied_from = [], [], []
        sources = model.state_dict()
        targets = self.module.state_dict()
        if sources.keys() != targets.keys():
            raise ValueError("ModelEma.update got a model with other state_dict keys than the "
                             "one it copied; pass the unwrapped model (model.module for DDP)")
        model_values = []
        for name, target in targets.items():
            source = sources[name]
            if target.is_floating_point():
                averaged.append(target)
                model_values.append(source.detach())
            else:
                copied_to.append(target)
                copied_from.append(source)
        if averaged:
            # lerp(ema, model, 1 - decay) = decay * ema + (1 - decay) * model
            torch._foreach_lerp_(averaged, model_values, 1.0 - decay)
        for target, source in zip(copied_to, copied_from, strict=True):
            target.copy_(source)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        """``{"module": weights, "updates": n, "decay": d, "warmup": bool, "warmup_power": p}``."""
        return {"module": self.module.state_dict(), "updates": self.updates,
                "decay": self.decay, "warmup": self.warmup, "warmup_power": self.warmup_power}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (the settings come from the state)."""
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
        self.decay = float(state.get("decay", self.decay))
        self.warmup = bool(state.get("warmup", self.warmup))
        self.warmup_power = float(state.get("warmup_power", self.warmup_power))
