"""Images to calibrate int8 on: a data set's training images, or random ones."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from ..limits import INPUT_SIZE, check_size

__all__ = ["calibration_images"]


def calibration_images(
    root: str | os.PathLike[str] | None,
    input_size: int,
    count: int = 256,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    batch_size: int = 64,
    seed: int = 0,
) -> list[torch.Tensor]:
    """``count`` normalized float images in batches of ``batch_size``, for
    :func:`~mobilecnn.deploy.quantize` or :func:`~mobilecnn.deploy.export_model`.

    ``root``: a data set (TinyImageNet layout or ``train/<class>/`` folders) whose train split
    is decoded (through the cache) at ``input_size`` and normalized with ``mean``/``std``
    (default: TinyImageNet's); a random sample chosen by ``seed``. ``None``: random images,
    for a model with random weights. Raises ``ValueError`` when ``root`` is not a folder.
    """
    check_size("input_size", input_size, INPUT_SIZE)
    check_size("count", count, 2**20)
    generator = torch.Generator().manual_seed(seed)
    if root is None:
        return list(torch.randn(count, 3, input_size, input_size, generator=generator)
                    .split(batch_size))
    if not os.path.isdir(root):
        raise ValueError(f"calibration data {str(root)!r} is not a folder")
    from ..data import TINYIMAGENET_MEAN, TINYIMAGENET_STD, BatchAugment, load_cache, prepare_cache

    split = load_cache(prepare_cache(root, "train", progress=False, image_size=input_size))
    normalize = BatchAugment(train=False, mean=mean or TINYIMAGENET_MEAN,
                             std=std or TINYIMAGENET_STD)
    pick = torch.randperm(len(split), generator=generator)
    return list(normalize(split.images[pick[:count]]).split(batch_size))
