"""TinyImageNet / ImageFolderSplit on tiny generated data sets in both layouts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from data_helpers import corrupt, make_class_folders, make_official
from mobilecnn.data import CorruptImageError, ImageFolderSplit, TinyImageNet, read_image


@pytest.fixture(scope="module")
def official(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_official(tmp_path_factory.mktemp("official"), num_classes=3, train_per_class=4,
                         val_per_class=2, test_images=3, size=16, gray_every=3)


def test_official_train_classes_labels_and_images(official: Path) -> None:
    dataset = TinyImageNet(official, "train")
    assert dataset.layout == "official"
    assert dataset.classes == sorted(dataset.classes) == ["n00000000", "n00000001", "n00000002"]
    assert dataset.class_names == [f"class {i} name, synonym" for i in range(3)]
    assert len(dataset) == 12
    for path, label in dataset.samples:
        assert path.parent.parent.name == dataset.classes[label]
    image, label = dataset[5]
    assert image.dtype == torch.uint8 and image.shape == (3, 16, 16)
    assert label == dataset.samples[5][1]


def test_grayscale_images_come_out_rgb(official: Path) -> None:
    dataset = TinyImageNet(official, "train")
    gray_path, _ = dataset.samples[0]  # gray_every=3 made the first image grayscale
    from PIL import Image

    with Image.open(gray_path) as raw:
        assert raw.mode == "L"
    image, _ = dataset[0]
    assert image.shape == (3, 16, 16)
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])


def test_64px_grayscale_sample_is_3x64x64(tmp_path: Path) -> None:
    root = make_official(tmp_path, num_classes=2, train_per_class=1, val_per_class=1,
                         test_images=0, size=64, gray_every=1)
    image, _ = TinyImageNet(root, "train")[0]
    assert image.shape == (3, 64, 64)


def test_val_labels_come_from_annotations(official: Path) -> None:
    dataset = TinyImageNet(official, "val")
    assert len(dataset) == 6
    lines = (official / "val" / "val_annotations.txt").read_text().splitlines()
    for (path, label), line in zip(dataset.samples, lines, strict=True):
        name, wnid = line.split("\t")[:2]
        assert path.name == name and dataset.classes[label] == wnid


def test_test_split_is_unlabeled(official: Path) -> None:
    dataset = TinyImageNet(official, "test")
    assert len(dataset) == 3 and dataset.targets == [-1, -1, -1]


def test_parent_folder_and_transform(official: Path) -> None:
    dataset = TinyImageNet(official.parent, "val", transform=lambda image: image.float() / 255)
    assert dataset.root == official
    image, _ = dataset[0]
    assert image.dtype == torch.float32 and float(image.max()) <= 1.0


def test_download_flag_uses_present_copy_without_network(official: Path) -> None:
    assert len(TinyImageNet(official, "val", download=True)) == 6


def test_download_flag_fetches_into_the_parent_when_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mobilecnn.data import download

    calls: list[Path] = []

    def fake_download(root: Path) -> Path:
        calls.append(root)
        return make_official(root, num_classes=2, train_per_class=1, val_per_class=1)

    monkeypatch.setattr(download, "download_tiny_imagenet", fake_download)
    dataset = TinyImageNet(tmp_path / "tiny-imagenet-200", "train", download=True)
    assert calls == [tmp_path] and len(dataset) == 2
    assert len(TinyImageNet(tmp_path, "val", download=True)) == 2 and len(calls) == 1


def test_class_folder_layout(tmp_path: Path) -> None:
    root = make_class_folders(tmp_path / "pets", nested=True)
    train = TinyImageNet(root, "train")
    val = TinyImageNet(root, "val")
    assert train.layout == "folders"
    assert train.classes == ["ant", "moth", "zebra"] == train.class_names
    assert len(train) == 9 and len(val) == 6
    for dataset in (train, val):
        for path, label in dataset.samples:
            assert path.parent.parent.name == dataset.classes[label]
    image, _ = val[0]
    assert image.shape == (3, 16, 16)


def test_class_folder_val_uses_train_class_order(tmp_path: Path) -> None:
    root = make_class_folders(tmp_path / "d", classes=("b", "c"), train_per_class=1)
    # a val split missing class "b" must keep "c" at index 1
    for file in (root / "val" / "b").iterdir():
        file.unlink()
    (root / "val" / "b").rmdir()
    val = TinyImageNet(root, "val")
    assert val.classes == ["b", "c"] and set(val.targets) == {1}


def test_class_folder_unknown_val_class(tmp_path: Path) -> None:
    root = make_class_folders(tmp_path / "d")
    (root / "val" / "ant").rename(root / "val" / "spider")
    with pytest.raises(ValueError, match="spider"):
        TinyImageNet(root, "val")


def test_missing_root_names_download_command(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="mobilecnn download tiny-imagenet"):
        TinyImageNet(tmp_path / "nowhere")


def test_missing_wnids_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"wnids\.txt.*mobilecnn download"):
        TinyImageNet(tmp_path)


def test_missing_val_annotations(tmp_path: Path) -> None:
    root = make_official(tmp_path, num_classes=2, train_per_class=1, val_per_class=1)
    (root / "val" / "val_annotations.txt").unlink()
    assert len(TinyImageNet(root, "train")) == 2
    with pytest.raises(FileNotFoundError, match=r"val_annotations\.txt.*mobilecnn download"):
        TinyImageNet(root, "val")


def test_unknown_class_in_val_annotations_names_line_and_wnid(tmp_path: Path) -> None:
    root = make_official(tmp_path, num_classes=2, train_per_class=1, val_per_class=1)
    annotations = root / "val" / "val_annotations.txt"
    lines = annotations.read_text().splitlines()
    lines[1] = lines[1].replace("n00000001", "n12345678")
    annotations.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"line 2: unknown class 'n12345678'"):
        TinyImageNet(root, "val")


def test_missing_train_class_folder(tmp_path: Path) -> None:
    root = make_official(tmp_path, num_classes=2, train_per_class=1, val_per_class=1)
    (root / "wnids.txt").write_text("n00000000\nn00000001\nn00000005\n")
    with pytest.raises(FileNotFoundError, match="n00000005"):
        TinyImageNet(root, "train")


def test_bad_split() -> None:
    with pytest.raises(ValueError, match="split must be one of"):
        TinyImageNet("anywhere", "validation")


@pytest.mark.parametrize("mode", ["truncated", "garbage"])
def test_corrupt_image_error_names_file(tmp_path: Path, mode: str) -> None:
    root = make_official(tmp_path, num_classes=2, train_per_class=2, val_per_class=1)
    dataset = TinyImageNet(root, "train")
    broken = corrupt(dataset.samples[1][0], mode)
    assert dataset[0][0].shape == (3, 16, 16)
    with pytest.raises(CorruptImageError, match=broken.name):
        dataset[1]


def test_fingerprint_follows_the_files(tmp_path: Path) -> None:
    root = make_official(tmp_path, num_classes=2, train_per_class=2, val_per_class=1)
    before = TinyImageNet(root, "train").fingerprint()
    assert TinyImageNet(root, "train").fingerprint() == before
    path = TinyImageNet(root, "train").samples[0][0]
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert TinyImageNet(root, "train").fingerprint() != before


def test_image_folder_split_from_samples(official: Path) -> None:
    samples = TinyImageNet(official, "train").samples[:2]
    dataset = ImageFolderSplit(samples, classes=["a", "b", "c"])
    assert len(dataset) == 2 and dataset.class_names == ["a", "b", "c"]
    assert torch.equal(dataset[1][0], read_image(samples[1][0]))
    with pytest.raises(ValueError, match="class names"):
        ImageFolderSplit(samples, classes=["a"], class_names=["x", "y"])


def test_read_image_resizes(official: Path) -> None:
    path = TinyImageNet(official, "train").samples[0][0]
    assert read_image(path, size=8).shape == (3, 8, 8)
