"""The data a run trains on: the decoded train and val splits of ``config.data``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import torch

from .config import TrainConfig
from .distributed import DistContext

__all__ = ["DataSplit", "load_splits"]


class DataSplit(Protocol):
    """What training needs of a split (``mobilecnn.data.DecodedSplit`` has it)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    class_names: list[str]


def load_splits(
    config: TrainConfig, ctx: DistContext | None = None, progress: bool = False,
    build_caches: bool = True,
) -> tuple[Any, Any, Path]:
    """Decoded ``(train, val, root)`` for ``config.data`` (``"demo"`` generates the data).

    Rank 0 builds the caches first; the other processes wait, then read them. With
    ``build_caches=False`` (``config.data`` came from a checkpoint, not from the user) the
    caches must already exist: nothing is written where a file's contents say.
    """
    from ..data import CacheError, load_cache, make_demo_dataset, prepare_cache

    if config.data == "demo":
        root = Path(config.out_dir) / "demo-data"
    else:
        root = Path(config.data)
        if not root.exists():
            raise FileNotFoundError(
                f"data folder {root} does not exist; download TinyImageNet first "
                "(see docs/training.md) or use --data demo"
            )

    def build() -> tuple[Path, Path]:
        data_root = root
        if config.data == "demo":
            data_root = make_demo_dataset(
                root, num_classes=config.demo_classes,
                train_per_class=config.demo_train_per_class,
                val_per_class=config.demo_val_per_class, image_size=64, seed=0,
            )
        try:
            return tuple(  # type: ignore[return-value]
                prepare_cache(data_root, split, cache_dir=config.cache_dir, progress=progress,
                              skip_bad=config.skip_bad, image_size=config.image_size,
                              build=build_caches)
                for split in ("train", "val"))
        except CacheError as error:
            if build_caches:
                raise
            raise CacheError(f"{error}, and a resume builds no cache at a path read from its "
                             f"checkpoint: pass --data {root} (and --cache-dir DIR if the "
                             "cache should go elsewhere) to build it") from None

    import torch.distributed as dist

    distributed = ctx is not None and ctx.distributed
    if distributed and not (ctx is not None and ctx.is_main):
        dist.barrier()
    paths = build()
    if distributed and ctx is not None and ctx.is_main:
        dist.barrier()
    # prepare_cache verified the checksums just now
    return load_cache(paths[0], verify=False), load_cache(paths[1], verify=False), root
