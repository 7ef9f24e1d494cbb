"""CachedBatchLoader and jpeg_loader: coverage, determinism, sharding, same batches."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DistributedSampler

from data_helpers import make_official
from mobilecnn.data import (
    CachedBatchLoader,
    TinyImageNet,
    jpeg_loader,
    load_cache,
    prepare_cache,
    shard_indices,
)


def _tensors(count: int = 23) -> tuple[torch.Tensor, torch.Tensor]:
    # image i is filled with i, so a batch's images can be checked against its labels
    images = torch.arange(count, dtype=torch.uint8).view(count, 1, 1, 1).expand(
        count, 3, 2, 2).contiguous()
    return images, torch.arange(count) * 10


def _epoch(loader: CachedBatchLoader) -> tuple[list[int], list[int]]:
    sizes, seen = [], []
    for images, labels in loader:
        assert images.dtype == torch.uint8 and labels.dtype == torch.int64
        assert torch.equal(images[:, 0, 0, 0].long() * 10, labels)
        sizes.append(len(labels))
        seen += (labels // 10).tolist()
    return sizes, seen


def test_one_epoch_visits_every_sample_once() -> None:
    loader = CachedBatchLoader(*_tensors(23), batch_size=5, seed=1)
    sizes, seen = _epoch(loader)
    assert sizes == [5, 5, 5, 5, 3] and len(loader) == 5
    assert sorted(seen) == list(range(23)) and seen != list(range(23))


def test_drop_last_and_no_shuffle() -> None:
    loader = CachedBatchLoader(*_tensors(23), batch_size=5, shuffle=False, drop_last=True)
    sizes, seen = _epoch(loader)
    assert sizes == [5, 5, 5, 5] and len(loader) == 4 and seen == list(range(20))


def test_set_epoch_changes_the_order_deterministically() -> None:
    first = CachedBatchLoader(*_tensors(), batch_size=4, seed=3)
    second = CachedBatchLoader(*_tensors(), batch_size=4, seed=3)
    epoch0 = _epoch(first)[1]
    assert _epoch(first)[1] == epoch0  # same epoch, same order
    first.set_epoch(1)
    second.set_epoch(1)
    assert _epoch(first)[1] == _epoch(second)[1] != epoch0
    assert _epoch(CachedBatchLoader(*_tensors(), batch_size=4, seed=4))[1] != epoch0


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_shards_are_disjoint_equal_and_match_distributed_sampler(
    world_size: int, drop_last: bool
) -> None:
    count = 23
    shards = []
    for rank in range(world_size):
        loader = CachedBatchLoader(*_tensors(count), batch_size=4, seed=7, rank=rank,
                                   world_size=world_size, drop_last=drop_last)
        loader.set_epoch(2)
        sampler = DistributedSampler(range(count), num_replicas=world_size, rank=rank,
                                     shuffle=True, seed=7, drop_last=drop_last)
        sampler.set_epoch(2)
        assert loader.indices().tolist() == list(sampler)
        shards.append(_epoch(loader)[1])
        assert len(loader) == (len(sampler) // 4 if drop_last else -(-len(sampler) // 4))
    lengths = {len(shard) for shard in shards}
    assert len(lengths) == 1
    union = [index for shard in shards for index in shard]
    if drop_last:
        assert len(set(union)) == len(union) == (count // world_size // 4) * 4 * world_size
    else:
        assert set(union) == set(range(count))
        assert len(union) - len(set(union)) == -count % world_size  # only the padding repeats


def test_shard_indices_without_shuffle() -> None:
    padded = shard_indices(10, shuffle=False, seed=0, epoch=0, rank=1, world_size=3)
    assert padded.tolist() == [1, 4, 7, 0]  # 10 -> 12 by repeating the first two
    dropped = shard_indices(10, shuffle=False, seed=0, epoch=0, rank=1, world_size=3,
                            drop_last=True)
    assert dropped.tolist() == [1, 4, 7]


def test_bad_arguments() -> None:
    images, labels = _tensors()
    with pytest.raises(ValueError, match="batch_size"):
        CachedBatchLoader(images, labels, batch_size=0)
    with pytest.raises(ValueError, match="rank"):
        CachedBatchLoader(images, labels, batch_size=2, rank=2, world_size=2)
    with pytest.raises(ValueError, match="differ in length"):
        CachedBatchLoader(images, labels[:-1], batch_size=2)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA fallback")
def test_pin_memory_without_cuda_warns_and_works() -> None:
    with pytest.warns(UserWarning, match="pin_memory"):
        loader = CachedBatchLoader(*_tensors(), batch_size=4, pin_memory=True)
    assert len(_epoch(loader)[1]) == 23


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available on this machine")
def test_pin_memory_with_cuda() -> None:
    images, labels = next(iter(CachedBatchLoader(*_tensors(), batch_size=4, pin_memory=True)))
    assert images.is_pinned() and labels.is_pinned()


@pytest.mark.parametrize("workers", [0, 2])
def test_jpeg_loader_yields_the_cache_loader_batches(tmp_path: Path, workers: int) -> None:
    root = make_official(tmp_path, num_classes=3, train_per_class=5, val_per_class=1,
                         gray_every=3)
    dataset = TinyImageNet(root, "train")
    decoded = load_cache(prepare_cache(root, "train", progress=False, num_workers=1))
    for rank in range(2):
        jpeg = jpeg_loader(dataset, batch_size=4, num_workers=workers, seed=5, rank=rank,
                           world_size=2)
        cached = CachedBatchLoader(decoded.images, decoded.labels, batch_size=4, seed=5,
                                   rank=rank, world_size=2)
        for epoch in (0, 1):
            jpeg.set_epoch(epoch)
            cached.set_epoch(epoch)
            assert len(jpeg) == len(cached)
            for (jpeg_images, jpeg_labels), (images, labels) in zip(jpeg, cached, strict=True):
                assert jpeg_images.dtype == torch.uint8
                assert torch.equal(jpeg_images, images) and torch.equal(jpeg_labels, labels)
