"""Batch loaders: from a decoded cache (fast) or from JPEG files with DataLoader workers."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

__all__ = ["CachedBatchLoader", "JPEGLoader", "jpeg_loader", "shard_indices"]


def _check_rank(rank: int, world_size: int) -> None:
    if not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size must be an integer >= 1, got {world_size!r}")
    if not isinstance(rank, int) or not 0 <= rank < world_size:
        raise ValueError(f"rank must be an integer in [0, {world_size}), got {rank!r}")


def shard_indices(
    count: int, shuffle: bool, seed: int, epoch: int, rank: int = 0, world_size: int = 1,
    drop_last: bool = False,
) -> torch.Tensor:
    """The sample indices of one rank for one epoch, as ``DistributedSampler`` picks them.

    A permutation from ``seed + epoch`` (or ``0..count-1`` without shuffle) is cut into
    ``world_size`` equal strided shards: with ``drop_last`` the tail that does not divide evenly
    is dropped, otherwise the first indices are repeated to fill the last round.
    """
    _check_rank(rank, world_size)
    if shuffle:
        generator = torch.Generator().manual_seed(seed + epoch)
        order = torch.randperm(count, generator=generator)
    else:
        order = torch.arange(count)
    if world_size == 1:
        return order
    if drop_last:
        total = (count // world_size) * world_size
        order = order[:total]
    else:
        total = math.ceil(count / world_size) * world_size
        if total > count:
            repeats = math.ceil((total - count) / count)
            order = torch.cat([order, order.repeat(repeats)[:total - count]])
    return order[rank:total:world_size]


class CachedBatchLoader:
    """Shuffled (and sharded) batches ``(uint8 images, int64 labels)`` gathered from tensors.

    ``images`` is typically :attr:`DecodedSplit.images` (memory-mapped); each batch is one
    ``index_select`` into a fresh (optionally pinned) CPU tensor. The order depends only on
    ``seed`` and the epoch set with :meth:`set_epoch`. With ``world_size > 1`` each rank gets a
    disjoint, equally long shard (see :func:`shard_indices`; ``drop_last`` then also drops the
    uneven tail instead of repeating samples). ``drop_last`` drops the last incomplete batch.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pin_memory: bool = False,
    ) -> None:
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"images and labels differ in length: {images.shape[0]} vs "
                             f"{labels.shape[0]}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        _check_rank(rank, world_size)
        if images.shape[0] == 0:
            raise ValueError("images is empty: nothing to load")
        if pin_memory and not torch.cuda.is_available():
            warnings.warn("pin_memory=True but CUDA is not available; not pinning", stacklevel=2)
            pin_memory = False
        self.images = images
        self.labels = labels.to(torch.int64)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.pin_memory = pin_memory
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the shuffle of ``epoch`` for the next iteration."""
        self.epoch = int(epoch)

    def indices(self) -> torch.Tensor:
        """This rank's sample indices for the current epoch, in order."""
        return shard_indices(self.images.shape[0], self.shuffle, self.seed, self.epoch,
                             self.rank, self.world_size, self.drop_last)

    @property
    def num_samples(self) -> int:
        """Samples this rank visits per epoch (before dropping an incomplete last batch)."""
        count = self.images.shape[0]
        if self.world_size == 1:
            return count
        if self.drop_last:
            return count // self.world_size
        return math.ceil(count / self.world_size)

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.indices()
        for batch in range(len(self)):
            index = order[batch * self.batch_size:(batch + 1) * self.batch_size]
            shape = (index.numel(), *self.images.shape[1:])
            images = torch.empty(shape, dtype=self.images.dtype, pin_memory=self.pin_memory)
            torch.index_select(self.images, 0, index, out=images)
            labels = self.labels.index_select(0, index)
            if self.pin_memory:
                labels = labels.pin_memory()
            yield images, labels

    def __repr__(self) -> str:
        return (f"CachedBatchLoader({self.images.shape[0]} samples, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, rank={self.rank}/{self.world_size}, "
                f"{len(self)} batches)")


class JPEGLoader(DataLoader):
    """A standard DataLoader with :meth:`set_epoch` forwarding to its DistributedSampler."""

    def set_epoch(self, epoch: int) -> None:
        """Use the shuffle of ``epoch`` for the next iteration."""
        sampler = self.sampler
        assert isinstance(sampler, DistributedSampler)
        sampler.set_epoch(epoch)


def jpeg_loader(
    dataset: Dataset[Any],
    batch_size: int,
    shuffle: bool = True,
    num_workers: int | None = None,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    drop_last: bool = False,
    pin_memory: bool = False,
) -> JPEGLoader:
    """A DataLoader decoding images in ``num_workers`` processes (default: all cores), yielding
    the same ``(uint8 N x 3 x H x W, int64 labels)`` batches as :class:`CachedBatchLoader`.

    ``dataset`` must return uint8 ``3 x H x W`` images of one size (a :class:`TinyImageNet`
    without transform). Shuffling and sharding use ``DistributedSampler(num_replicas=world_size,
    rank=rank, seed=seed)``, also for one process, so :meth:`JPEGLoader.set_epoch` works alike.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    _check_rank(rank, world_size)
    if num_workers is None:
        try:
            num_workers = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - not Linux
            num_workers = os.cpu_count() or 1
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers!r}")
    sampler: DistributedSampler[Any] = DistributedSampler(
        dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed,
        drop_last=drop_last)
    return JPEGLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
        drop_last=drop_last, pin_memory=pin_memory and torch.cuda.is_available(),
        persistent_workers=num_workers > 0,
    )
