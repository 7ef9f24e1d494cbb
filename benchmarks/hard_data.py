"""The generated data the training benchmarks share: ``make_demo_dataset`` data (hard or easy)
built once under a folder with its decoded caches, and its splits read back in a worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def make_generated_data(out: Path, classes: int, per_class: int, val_per_class: int,
                        size: int, difficulty: str = "hard") -> Path:
    """``out/<difficulty>-<classes>x<per_class>-<size>px`` with both splits decoded (one
    worker: the caches are the same on every machine)."""
    from mobilecnn.data import make_demo_dataset, prepare_cache

    root = make_demo_dataset(
        out / f"{difficulty}-{classes}x{per_class}-{size}px", num_classes=classes,
        train_per_class=per_class, val_per_class=val_per_class, test_per_class=0,
        image_size=size, difficulty=difficulty)
    for split in ("train", "val"):
        prepare_cache(root, split, num_workers=1, progress=False)
    return root


def load_generated_splits(root: str | Path) -> tuple[Any, Any]:
    """The decoded ``(train, val)`` splits of :func:`make_generated_data`'s folder."""
    from mobilecnn.data import cache_path, load_cache

    return load_cache(cache_path(root, "train")), load_cache(cache_path(root, "val"))
