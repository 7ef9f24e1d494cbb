"""BatchNorm running statistics that fit the weights ("precise BN").

A BatchNorm layer evaluates with running averages of the batch statistics it saw in training,
updated with ``momentum`` per step: they average over roughly the last ``1 / momentum`` steps.
MobileNetV3 uses momentum 0.01 (a 100-step window, as its reference trains it on ImageNet), so
after a short run the running statistics still remember the initial mean 0 / variance 1 and
the weights of many steps ago: the model is accurate with batch statistics and at chance in eval
mode. :func:`recalibrate_batchnorm` recomputes them for the current weights as an equal-weight
(cumulative) average over a bounded number of batches, the routine of
``torch.optim.swa_utils.update_bn`` and of "precise BN" (Wu & Johnson 2021, arXiv:2105.07576).

The trainer calls :func:`fit_batchnorm_to_weights` before every evaluation and checkpoint when
``recalibrate_bn`` says so (by default when :func:`run_needs_recalibration`). The images are
the training split's, without augmentation, chosen by a generator of their own; dropout and
drop-path are off while the statistics are measured and the global RNG state is restored, so
the run's random stream (and bit-exact resume) is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .precision import autocast

__all__ = [
    "AUTO_WINDOWS",
    "CALIBRATION_IMAGES",
    "batchnorm_layers",
    "batchnorm_warning",
    "calibration_batches",
    "fit_batchnorm_to_weights",
    "recalibrate_batchnorm",
    "recalibrate_checkpoint",
    "run_needs_recalibration",
    "smallest_momentum",
]

AUTO_WINDOWS = 100
"""``recalibrate_bn=None`` (auto) recalibrates runs of fewer than ``AUTO_WINDOWS / momentum``
steps (the smallest momentum of the model's BatchNorm layers): 10,000 steps for MobileNetV3
(momentum 0.01), 1,000 for the other models (0.1)."""

CALIBRATION_IMAGES = 1024
"""Default number of training images the statistics are recomputed over."""

STALE_WEIGHT = 0.05
"""``mobilecnn eval`` warns when the initial statistics (mean 0, variance 1) still weigh more
than this in the running averages, ``(1 - momentum) ** steps``."""


def batchnorm_layers(model: nn.Module) -> list[_BatchNorm]:
    """The model's BatchNorm layers that keep running statistics."""
    return [module for module in model.modules()
            if isinstance(module, _BatchNorm) and module.track_running_stats
            and module.running_mean is not None and module.running_var is not None]


def smallest_momentum(model: nn.Module) -> float | None:
    """The smallest BatchNorm momentum of ``model`` (0.0 for a cumulative average, None
    without BatchNorm layers)."""
    momenta = [module.momentum or 0.0 for module in batchnorm_layers(model)]
    return min(momenta) if momenta else None


def run_needs_recalibration(model: nn.Module, total_steps: int) -> bool:
    """The automatic rule: True when a run of ``total_steps`` is shorter than ``AUTO_WINDOWS``
    BatchNorm averaging windows (``1 / momentum`` steps) of the model's slowest layer."""
    momentum = smallest_momentum(model)
    if momentum is None:
        return False
    return total_steps * momentum < AUTO_WINDOWS


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor], *,
                          dtype: torch.dtype | None = None) -> int:
    """Recompute every BatchNorm layer's running statistics over ``batches``; returns the
    number of images seen.

    ``batches`` are model inputs (normalized, on the model's device). The statistics become
    the equal-weight average over the batches of each batch's mean and (unbiased) variance;
    ``num_batches_tracked`` counts the batches. Only the BatchNorm layers run in training
    mode (dropout and drop-path stay off), the global RNG state is restored afterwards, and
    the modules' modes and momenta are left as they were. ``dtype`` is an autocast dtype.
    """
    layers = batchnorm_layers(model)
    if not layers:
        return 0
    modes = {module: module.training for module in model.modules()}
    momenta = [layer.momentum for layer in layers]
    device = next(model.parameters()).device
    seen = 0
    try:
        model.eval()
        for layer in layers:
            layer.reset_running_stats()
            layer.momentum = None  # cumulative average
            layer.train()
        cuda = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda), autocast(device, dtype):
            for inputs in batches:
                model(inputs)
                seen += int(inputs.shape[0])
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
        for module, training in modes.items():
            module.training = training
    if seen == 0:
        raise ValueError("recalibrate_batchnorm got no batches; the BatchNorm statistics were "
                         "reset: pass at least one batch of images")
    return seen


def calibration_batches(images: torch.Tensor, normalize: Callable[[torch.Tensor], torch.Tensor],
                        device: torch.device, *, count: int = CALIBRATION_IMAGES,
                        batch_size: int = 64, seed: int = 0, channels_last: bool = False
                        ) -> Iterator[torch.Tensor]:
    """Normalized batches of ``count`` images drawn without replacement from ``images``
    (uint8 ``(N, 3, H, W)``) by a generator seeded with ``seed`` (the global RNG is not
    used). Batches are of equal size, at least 2 images (BatchNorm needs two values per
    channel); a short remainder is dropped unless it is all there is."""
    total = int(images.shape[0])
    count = min(count, total)
    batch_size = max(2, min(batch_size, count))
    if count >= batch_size:
        count -= count % batch_size
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(total, generator=generator)[:count]
    for start in range(0, count, batch_size):
        index = chosen[start:start + batch_size]
        inputs = normalize(images.index_select(0, index).to(device, non_blocking=True))
        if channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        yield inputs


def fit_batchnorm_to_weights(config: Any, models: Sequence[nn.Module | None],
                             images: torch.Tensor,
                             normalize: Callable[[torch.Tensor], torch.Tensor],
                             total_steps: int, dtype: torch.dtype | None) -> bool:
    """The trainer's call before evaluating and saving: recalibrate each model (the raw and
    the EMA model) when ``config.recalibrate_bn`` says so (None: :func:`run_needs_recalibration`
    on the first model). Never for ``--qat`` runs (their BatchNorm is folded into the fake
    quantized convolutions). Returns whether it recalibrated."""
    present = [model for model in models if model is not None]
    if not present or not resolve_recalibration(config, present[0], total_steps):
        return False
    from .distributed import broadcast_buffers

    device = next(present[0].parameters()).device
    per_process = max(2, config.batch_size // _world_size())
    for model in present:
        recalibrate_batchnorm(model, calibration_batches(
            images, normalize, device, count=config.bn_calibration_images,
            batch_size=per_process, seed=config.seed, channels_last=config.channels_last),
            dtype=dtype)
        broadcast_buffers(model)  # every process computed the same; keep them bit-equal
    return True


def resolve_recalibration(config: Any, model: nn.Module, total_steps: int) -> bool:
    """Whether a run with ``config`` recalibrates (``recalibrate_bn``, else the auto rule)."""
    if getattr(config, "qat", False):
        return False
    setting = getattr(config, "recalibrate_bn", False)
    if setting is None:
        return run_needs_recalibration(model, total_steps)
    return bool(setting)


def _world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def batchnorm_warning(model: nn.Module, checkpoint: Mapping[str, Any]) -> str | None:
    """One line saying the checkpoint's BatchNorm statistics look untrained or stale, or None.

    Untrained: some layer still holds running mean 0 and variance 1 everywhere. Stale: the
    run trained ``global_step`` steps and the initial statistics still weigh more than
    ``STALE_WEIGHT`` (``(1 - momentum) ** steps``), and the trainer did not recalibrate them
    (its config, or a :func:`recalibrate_checkpoint` record, says so).
    """
    layers = batchnorm_layers(model)
    if not layers:
        return None
    fix = ("recalibrate them: mobilecnn eval --checkpoint CKPT --data DIR --recalibrate-bn "
           "OUT.pt (or mobilecnn.train.recalibrate_checkpoint), see docs/training.md")
    untouched = sum(1 for layer in layers if _untrained(layer))
    if untouched:
        return (f"warning: {untouched} of {len(layers)} BatchNorm layers still hold their "
                f"initial statistics (mean 0, variance 1): eval-mode accuracy will be poor; {fix}")
    if _recalibrated(model, checkpoint):
        return None
    steps = int(checkpoint.get("global_step") or 0)
    momentum = smallest_momentum(model) or 0.0
    remaining = (1.0 - momentum) ** steps if steps else 1.0
    if remaining > STALE_WEIGHT:
        return (f"warning: the BatchNorm statistics may be stale: after {steps} training steps "
                f"at momentum {momentum:g} the initial statistics still weigh "
                f"{100 * remaining:.0f}% in them; {fix}")
    return None


def _untrained(layer: _BatchNorm) -> bool:
    assert layer.running_mean is not None and layer.running_var is not None
    return bool(torch.all(layer.running_mean == 0) and torch.all(layer.running_var == 1))


def _recalibrated(model: nn.Module, checkpoint: Mapping[str, Any]) -> bool:
    if checkpoint.get("batchnorm_recalibrated"):
        return True
    config = checkpoint.get("config")
    schedule = checkpoint.get("schedule") or {}
    if not isinstance(config, Mapping) or "recalibrate_bn" not in config:
        return False
    total = int(schedule.get("total_steps") or checkpoint.get("global_step") or 0)
    return resolve_recalibration(_Settings(config), model, total)


class _Settings:
    """Attribute access to a saved config dict (only what :func:`resolve_recalibration`
    reads)."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.qat = bool(values.get("qat", False))
        self.recalibrate_bn = values.get("recalibrate_bn")


def recalibrate_checkpoint(checkpoint: str | Path, data: str | Path, out: str | Path, *,
                           images: int = CALIBRATION_IMAGES, batch_size: int = 64,
                           device: str = "cpu", cache_dir: str | None = None) -> Path:
    """Recompute a checkpoint's BatchNorm statistics over ``images`` training images of
    ``data`` (a TinyImageNet-layout folder) and write the result to ``out``.

    The model (and the EMA weights, if any) get statistics that fit their weights; everything
    else is kept, and ``out`` records ``batchnorm_recalibrated``. ``out`` may not be
    ``checkpoint`` itself.
    """
    import dataclasses

    from ..data import BatchAugment, load_cache, prepare_cache
    from .checkpoints import Checkpoint

    source, target = Path(checkpoint), Path(out)
    if target.resolve() == source.resolve():
        raise ValueError(f"write the recalibrated checkpoint to another file than {source} "
                         "(the original stays as it was)")
    saved = Checkpoint.read(source)
    split = load_cache(prepare_cache(data, "train", cache_dir=cache_dir), verify=False)
    if list(split.classes) != list(saved.classes):
        raise ValueError(f"{data} has other classes than the checkpoint {source} was trained "
                         "on; recalibrate with the training data of the run")
    normalize = BatchAugment(train=False, crop="none", flip=False, mean=tuple(saved.mean),
                             std=tuple(saved.std))
    def recalibrated(ema: bool) -> dict[str, torch.Tensor]:
        model = saved.build_model(source, ema=ema).to(device)
        recalibrate_batchnorm(model, calibration_batches(
            split.images, normalize, torch.device(device), count=images,
            batch_size=batch_size))
        return {key: value.cpu() for key, value in model.state_dict().items()}

    record = {"images": min(images, int(split.images.shape[0])), "from": str(source)}
    return dataclasses.replace(
        saved, model=recalibrated(False),
        ema_state=recalibrated(True) if saved.ema_state is not None else None,
        extra={**saved.extra, "batchnorm_recalibrated": record}).save(target)
