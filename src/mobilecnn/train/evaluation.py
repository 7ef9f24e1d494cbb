"""Evaluation over a whole split: every image counted once, also under DDP."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .metrics import SplitMetrics
from .precision import autocast, autocast_dtype

__all__ = ["evaluate", "evaluate_during_training", "iterate_eval", "run_eval",
           "with_batch_statistics"]


def iterate_eval(
    images: torch.Tensor, labels: torch.Tensor, batch_size: int, rank: int, world_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of this rank's strided shard, every sample exactly once over all ranks.

    (``CachedBatchLoader`` pads shards with repeated samples, which would count some
    validation images twice.)
    """
    order = torch.arange(rank, images.shape[0], world_size)
    for start in range(0, order.numel(), batch_size):
        index = order[start:start + batch_size]
        yield images.index_select(0, index), labels.index_select(0, index).to(torch.int64)


@torch.no_grad()
def run_eval(
    model: nn.Module,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    normalize: Callable[[torch.Tensor], torch.Tensor],
    num_classes: int,
    device: torch.device,
    dtype: torch.dtype | None,
    channels_last: bool,
) -> SplitMetrics:
    """Sum the metrics of ``batches`` (this process's share; no all-reduce)."""
    metrics = SplitMetrics(num_classes)
    was_training = model.training
    model.eval()
    for images, labels in batches:
        images = images.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        inputs = normalize(images)
        if channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with autocast(device, dtype):
            logits = model(inputs)
        logits = logits.float()
        loss_sum = F.cross_entropy(logits, labels, reduction="sum")
        metrics.add(logits, labels, float(loss_sum))
    model.train(was_training)
    return metrics


def evaluate(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    num_classes: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    batch_size: int = 512,
    precision: str = "fp32",
    channels_last: bool = True,
) -> SplitMetrics:
    """Loss, top-1, top-5 and per-class accuracy of ``model`` over a whole split.

    ``images`` are ``uint8 (N, 3, H, W)`` and are normalized with ``mean``/``std`` (the
    TinyImageNet statistics by default) on the model's device. Under torch.distributed each
    process evaluates its shard and the counts are summed.
    """
    import torch.distributed as dist

    from ..data import TINYIMAGENET_MEAN, TINYIMAGENET_STD, BatchAugment

    if images.dim() != 4 or images.dtype != torch.uint8:
        raise ValueError(f"images must be uint8 (N, 3, H, W), got {images.dtype} "
                         f"{tuple(images.shape)}")
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels")
    device = next(model.parameters()).device
    if num_classes is None:
        num_classes = int(getattr(model, "num_classes", int(labels.max()) + 1))
    normalize = BatchAugment(train=False, crop="none", flip=False,
                             mean=tuple(mean or TINYIMAGENET_MEAN),
                             std=tuple(std or TINYIMAGENET_STD))
    distributed = dist.is_available() and dist.is_initialized()
    rank = dist.get_rank() if distributed else 0
    world_size = dist.get_world_size() if distributed else 1
    metrics = run_eval(
        model, iterate_eval(images, labels, batch_size, rank, world_size), normalize,
        num_classes, device, autocast_dtype(precision, device), channels_last,
    )
    metrics.all_reduce(device)
    return metrics


def evaluate_during_training(
    model: nn.Module, split: object, normalize: Callable[[torch.Tensor], torch.Tensor],
    num_classes: int, batch_size: int, rank: int, world_size: int, dtype: torch.dtype | None,
    channels_last: bool,
) -> SplitMetrics:
    """The per-epoch validation of a run: this rank's shard, then summed over all ranks."""
    device = next(model.parameters()).device
    images, labels = split.images, split.labels  # type: ignore[attr-defined]
    metrics = run_eval(model, iterate_eval(images, labels, max(1, batch_size // world_size),
                                           rank, world_size),
                       normalize, num_classes, device, dtype, channels_last)
    metrics.all_reduce(device)
    return metrics


def with_batch_statistics(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose BatchNorm layers normalize with each batch's own statistics
    in eval mode too (no running statistics): what the weights give when the running
    statistics are ignored. Compare its :func:`evaluate` accuracy (which depends on the batch
    size) with the model's to see whether the running statistics fit the weights."""
    twin = copy.deepcopy(model)
    for module in twin.modules():
        if isinstance(module, _BatchNorm):
            module.track_running_stats = False
            module.running_mean = None
            module.running_var = None
            module.num_batches_tracked = None
    return twin
