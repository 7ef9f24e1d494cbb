"""prepare_cache / load_cache: equality with per-image decoding, idempotence, staleness,
truncation, corrupt images and where things are written."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import torch

from data_helpers import corrupt, make_class_folders, make_official, snapshot, write_image
from mobilecnn.data import (
    CACHE_DIRNAME,
    CacheError,
    CacheRebuiltWarning,
    CorruptImageError,
    TinyImageNet,
    compute_mean_std,
    load_cache,
    prepare_cache,
    read_cache_info,
)


def _official(tmp_path: Path, **kwargs: int) -> Path:
    settings = {"num_classes": 3, "train_per_class": 5, "val_per_class": 2, "gray_every": 4}
    settings.update(kwargs)
    return make_official(tmp_path, **settings)


@pytest.mark.parametrize("workers", [1, 2])
def test_cache_equals_per_image_decoding(tmp_path: Path, workers: int) -> None:
    # a few hundred tiny JPEGs, every 7th grayscale
    root = _official(tmp_path, num_classes=10, train_per_class=25, gray_every=7)
    path = prepare_cache(root, "train", num_workers=workers, progress=False)
    assert path.parent == root / CACHE_DIRNAME
    decoded = load_cache(path)
    dataset = TinyImageNet(root, "train")
    assert decoded.images.dtype == torch.uint8 and decoded.images.shape == (250, 3, 16, 16)
    assert decoded.labels.dtype == torch.int64
    assert decoded.labels.tolist() == dataset.targets
    assert decoded.classes == dataset.classes and decoded.class_names == dataset.class_names
    assert decoded.split == "train" and decoded.skipped == []
    for index in range(len(dataset)):
        assert torch.equal(decoded.images[index], dataset[index][0])


def test_val_and_class_folder_caches(tmp_path: Path) -> None:
    root = make_class_folders(tmp_path / "folders", gray_every=2)
    decoded = load_cache(prepare_cache(root, "val", num_workers=1, progress=False))
    dataset = TinyImageNet(root, "val")
    assert decoded.labels.tolist() == dataset.targets
    assert torch.equal(decoded.images[3], dataset[3][0])


def test_prepare_is_idempotent(tmp_path: Path) -> None:
    root = _official(tmp_path)
    path = prepare_cache(root, "val", progress=False, num_workers=1)
    stamp = path.stat().st_mtime_ns
    assert prepare_cache(root, "val", progress=False, num_workers=1) == path
    assert path.stat().st_mtime_ns == stamp


def test_changed_source_rebuilds(tmp_path: Path) -> None:
    root = _official(tmp_path)
    path = prepare_cache(root, "val", progress=False, num_workers=1)
    first = load_cache(path)
    image_path = TinyImageNet(root, "val").samples[0][0]
    write_image(image_path, 16, random.Random(99), tint=7)
    with pytest.warns(CacheRebuiltWarning, match=f"cache file {path} is out of date"):
        again = load_cache(prepare_cache(root, "val", progress=False, num_workers=1))
    assert again.fingerprint != first.fingerprint
    assert torch.equal(again.images[0], TinyImageNet(root, "val")[0][0])
    assert not torch.equal(again.images[0], first.images[0])


def test_build_false_only_looks(tmp_path: Path) -> None:
    """``build=False`` returns an up-to-date cache and otherwise raises, writing nothing."""
    root = _official(tmp_path)
    before = snapshot(root)
    with pytest.raises(CacheError, match="no up-to-date decoded cache of split 'val' at "):
        prepare_cache(root, "val", progress=False, num_workers=1, build=False)
    assert snapshot(root) == before and not (root / CACHE_DIRNAME).exists()
    path = prepare_cache(root, "val", progress=False, num_workers=1)
    assert prepare_cache(root, "val", progress=False, num_workers=1, build=False) == path
    write_image(TinyImageNet(root, "val").samples[0][0], 16, random.Random(99), tint=7)
    stale = path.read_bytes()
    with pytest.raises(CacheError, match="no up-to-date decoded cache"):
        prepare_cache(root, "val", progress=False, num_workers=1, build=False)
    assert path.read_bytes() == stale  # a stale cache is not rebuilt either


def test_truncated_cache_is_reported_and_rebuilt(tmp_path: Path) -> None:
    root = _official(tmp_path)
    path = prepare_cache(root, "val", progress=False, num_workers=1)
    expected = load_cache(path).images.clone()
    with path.open("r+b") as file:
        file.truncate(path.stat().st_size - 100)
    with pytest.raises(CacheError, match=f"{path.name} is truncated"):
        load_cache(path)
    with pytest.warns(UserWarning, match="rebuilding"):
        assert prepare_cache(root, "val", progress=False, num_workers=1) == path
    assert torch.equal(load_cache(path).images, expected)


def test_not_a_cache_and_missing_cache(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.mcache"
    bogus.write_bytes(b"x" * 100)
    with pytest.raises(CacheError, match="not a mobilecnn cache"):
        load_cache(bogus)
    with pytest.raises(FileNotFoundError, match="mobilecnn prepare"):
        load_cache(tmp_path / "missing.mcache")


def test_loaded_images_never_write_back(tmp_path: Path) -> None:
    root = _official(tmp_path)
    path = prepare_cache(root, "val", progress=False, num_workers=1)
    content = path.read_bytes()
    decoded = load_cache(path)
    decoded.images[0].fill_(7)
    del decoded
    assert path.read_bytes() == content
    assert load_cache(path).images[0].ne(7).any()


@pytest.mark.parametrize("workers", [1, 2])
def test_corrupt_image_is_named_and_can_be_skipped(tmp_path: Path, workers: int) -> None:
    root = _official(tmp_path)
    dataset = TinyImageNet(root, "train")
    broken = corrupt(dataset.samples[6][0])
    with pytest.raises(CorruptImageError, match=broken.name):
        prepare_cache(root, "train", progress=False, num_workers=workers)
    assert not any((root / CACHE_DIRNAME).glob("*.tmp-*"))
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        path = prepare_cache(root, "train", skip_bad=True, progress=False, num_workers=workers)
    decoded = load_cache(path)
    keep = [i for i in range(len(dataset)) if i != 6]
    assert len(decoded) == len(keep) == 14
    assert decoded.skipped == [str(broken.relative_to(root))]
    assert decoded.labels.tolist() == [dataset.targets[i] for i in keep]
    for row, index in enumerate(keep):
        assert torch.equal(decoded.images[row], dataset[index][0])
    # the cached result keeps reporting the bad file unless skipping is asked for
    with pytest.raises(CorruptImageError, match=broken.name):
        prepare_cache(root, "train", progress=False, num_workers=workers)


def test_cache_dir_keeps_data_root_untouched(tmp_path: Path) -> None:
    root = _official(tmp_path / "data")
    before = snapshot(root)
    path = prepare_cache(root, "train", cache_dir=tmp_path / "elsewhere", progress=False,
                         num_workers=1)
    assert path.parent == tmp_path / "elsewhere"
    assert snapshot(root) == before


def test_default_cache_writes_only_the_cache_folder(tmp_path: Path) -> None:
    root = _official(tmp_path / "data")
    before = snapshot(root)
    prepare_cache(root, "train", progress=False, num_workers=1)
    after = snapshot(root)
    added = set(after) - set(before)
    assert added and all(name.startswith(CACHE_DIRNAME + os.sep) for name in added)
    assert {name: after[name] for name in before} == before


def test_mixed_sizes_need_image_size(tmp_path: Path) -> None:
    root = make_class_folders(tmp_path / "d", train_per_class=2)
    write_image(root / "train" / "moth" / "big.jpg", 24, random.Random(1))
    with pytest.raises(ValueError, match="image_size"):
        prepare_cache(root, "train", progress=False, num_workers=1)
    decoded = load_cache(prepare_cache(root, "train", progress=False, num_workers=1,
                                       image_size=12))
    assert decoded.images.shape == (7, 3, 12, 12)
    assert decoded.path is not None and read_cache_info(decoded.path)["height"] == 12


def test_bad_arguments(tmp_path: Path) -> None:
    root = _official(tmp_path)
    with pytest.raises(ValueError, match="split"):
        prepare_cache(root, "dev")
    with pytest.raises(ValueError, match="num_workers"):
        prepare_cache(root, "val", num_workers=0)
    with pytest.raises(FileNotFoundError, match="mobilecnn download"):
        prepare_cache(tmp_path / "none", "val")


def test_compute_mean_std_matches_direct_computation() -> None:
    images = torch.randint(0, 256, (10, 3, 5, 7), dtype=torch.uint8)
    mean, std = compute_mean_std(images, batch_size=3)
    scaled = images.double() / 255
    expected_mean = scaled.mean(dim=(0, 2, 3))
    expected_std = scaled.permute(1, 0, 2, 3).reshape(3, -1).std(dim=1, unbiased=False)
    assert torch.allclose(torch.tensor(mean, dtype=torch.float64), expected_mean)
    assert torch.allclose(torch.tensor(std, dtype=torch.float64), expected_std)
    with pytest.raises(ValueError, match="uint8"):
        compute_mean_std(images.float())
