"""Tiny generated data sets in the TinyImageNet layouts, for the tests (any test may use them),
and in-memory splits with a tiny training config to train on them.

Every image is random noise with a class-dependent tint; ``gray_every=k`` saves every k-th image
as a grayscale JPEG, as some real TinyImageNet images are.
"""

from __future__ import annotations

import io
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from mobilecnn.train import TrainConfig, TrainResult, train


def write_image(path: Path, size: int, rng: random.Random, tint: int = 0,
                gray: bool = False) -> None:
    """A noisy ``size x size`` JPEG (grayscale when ``gray``), tinted by ``tint``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = Image.frombytes("RGB", (size, size), rng.randbytes(3 * size * size))
    colour = ((tint * 70) % 256, (tint * 130) % 256, (tint * 200) % 256)
    image = Image.blend(noise, Image.new("RGB", (size, size), colour), 0.6)
    if gray:
        image = image.convert("L")
    image.save(path, quality=95)


def corrupt(path: Path, mode: str = "truncated") -> Path:
    """Break an image file in place: ``truncated`` keeps its first third, ``garbage`` replaces
    it with bytes that are no image."""
    if mode == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    else:
        path.write_bytes(b"this is not a JPEG" * 10)
    return path


def make_official(
    parent: Path, num_classes: int = 3, train_per_class: int = 4, val_per_class: int = 2,
    test_images: int = 2, size: int = 16, gray_every: int = 0, seed: int = 0,
) -> Path:
    """``parent/tiny-imagenet-200`` in the official layout; returns that folder.

    wnids are ``n0000000<i>``, listed in wnids.txt in *reverse* order (the data set sorts them);
    words.txt also names a class that is not in the data set, as the real one does.
    """
    rng = random.Random(seed)
    root = parent / "tiny-imagenet-200"
    wnids = [f"n{index:08d}" for index in range(num_classes)]
    root.mkdir(parents=True)
    (root / "wnids.txt").write_text("".join(f"{w}\n" for w in reversed(wnids)))
    words = [f"{w}\tclass {i} name, synonym\n" for i, w in enumerate(wnids)]
    (root / "words.txt").write_text("n99999999\tnot in the data set\n" + "".join(words))
    count = 0
    for index, wnid in enumerate(wnids):
        for number in range(train_per_class):
            gray = gray_every > 0 and count % gray_every == 0
            write_image(root / "train" / wnid / "images" / f"{wnid}_{number}.JPEG", size, rng,
                        index, gray)
            count += 1
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
    lines = []
    for number in range(num_classes * val_per_class):
        index = number % num_classes
        gray = gray_every > 0 and number % gray_every == 1
        write_image(root / "val" / "images" / f"val_{number}.JPEG", size, rng, index, gray)
        lines.append(f"val_{number}.JPEG\t{wnids[index]}\t0\t0\t{size - 1}\t{size - 1}\n")
    (root / "val" / "val_annotations.txt").write_text("".join(lines))
    for number in range(test_images):
        write_image(root / "test" / "images" / f"test_{number}.JPEG", size, rng, 0)
    return root


def make_class_folders(
    root: Path, classes: Sequence[str] = ("zebra", "ant", "moth"), train_per_class: int = 3,
    val_per_class: int = 2, size: int = 16, gray_every: int = 0, seed: int = 0,
    nested: bool = False,
) -> Path:
    """``root/train/<class>/*.jpg`` and ``root/val/<class>/*.jpg``; ``nested`` puts the images
    in ``<class>/images/`` instead. Returns ``root``."""
    rng = random.Random(seed)
    count = 0
    for split, per_class in (("train", train_per_class), ("val", val_per_class)):
        for index, name in enumerate(classes):
            folder = root / split / name / ("images" if nested else "")
            for number in range(per_class):
                gray = gray_every > 0 and count % gray_every == 0
                write_image(folder / f"{name}_{number}.jpg", size, rng, index, gray)
                count += 1
    return root


def jpeg_bytes(size: int = 8, seed: int = 0) -> bytes:
    """The bytes of one small JPEG."""
    buffer = io.BytesIO()
    rng = random.Random(seed)
    Image.frombytes("RGB", (size, size), rng.randbytes(3 * size * size)).save(buffer, "JPEG")
    return buffer.getvalue()


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """``relative path -> (size, mtime_ns)`` of every file under ``root``."""
    return {str(path.relative_to(root)): (path.stat().st_size, path.stat().st_mtime_ns)
            for path in sorted(root.rglob("*")) if path.is_file()}


# ---------------------------------------------------------------- in-memory splits and runs

@dataclass
class Split:
    """Decoded images (uint8, N x 3 x H x W) and labels, as ``train(train_split=...)`` takes."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    class_names: list[str]


def make_split(per_class: int, seed: int, num_classes: int = 3, size: int = 16) -> Split:
    """Noisy images whose mean colour gives the class: learnable in a few steps."""
    generator = torch.Generator().manual_seed(seed)
    colours = torch.tensor([[200, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 40]])
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    noise = torch.randint(0, 90, (labels.numel(), 3, size, size), generator=generator)
    images = (colours[labels].view(-1, 3, 1, 1) * 0.6 + noise).clamp(0, 255).to(torch.uint8)
    classes = [f"n{i:08d}" for i in range(num_classes)]
    return Split(images, labels, classes, [f"colour {i}" for i in range(num_classes)])


TRAIN = make_split(16, seed=1)  # 48 images: 4 steps of 12 per epoch
VAL = make_split(8, seed=2)
TIMING_KEYS = {"epoch_seconds", "images_per_second"}


def tiny_config(out_dir: Path, **changes: object) -> TrainConfig:
    """3 epochs of a width-0.25 MobileNetV2 at batch 12 on the CPU, in fp32."""
    values: dict = {"data": "in-memory", "out_dir": str(out_dir), "width": 0.25,
                    "epochs": 3, "batch_size": 12, "lr": 0.05, "warmup_epochs": 0.5, "crop": "none",
                    "precision": "fp32", "device": "cpu", "eval_batch_size": 32,
                    "dropout": 0.2, "progress": False}
    values.update(changes)
    return TrainConfig(**values)


def train_on_splits(config: TrainConfig, **kwargs: Any) -> TrainResult:
    """``train(config)`` on :data:`TRAIN` and :data:`VAL`."""
    return train(config, train_split=TRAIN, val_split=VAL, **kwargs)


def without_timing(history: list[dict]) -> list[dict]:
    """The metric rows without their wall-clock entries (which differ between runs)."""
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in history]
