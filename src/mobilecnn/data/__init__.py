"""TinyImageNet data: the data set, download, a decoded uint8 cache, batch loaders and
augmentation, and a procedurally drawn demo data set.

Typical fast path::

    path = prepare_cache(root, "train")            # once: decode JPEGs into one uint8 file
    split = load_cache(path)                        # memory-mapped
    loader = CachedBatchLoader(split.images, split.labels, batch_size=256, seed=0)
    augment = BatchAugment(train=True, crop="pad")
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        for images, labels in loader:
            inputs = augment(images.to(device, non_blocking=True))
"""

from __future__ import annotations

from .augment import TINYIMAGENET_MEAN, TINYIMAGENET_STD, BatchAugment, compute_mean_std
from .cache import (
    CACHE_DIRNAME,
    CacheError,
    CacheRebuiltWarning,
    DecodedSplit,
    cache_path,
    load_cache,
    prepare_cache,
    read_cache_info,
)
from .demo import DEMO_CLASSES, DIFFICULTIES, HARD_DEMO_CLASSES, make_demo_dataset
from .download import (
    OFFICIAL_MD5,
    OFFICIAL_URL,
    DownloadError,
    download_tiny_imagenet,
    safe_extract_zip,
)
from .imagenet import imagenet_class_names
from .loader import CachedBatchLoader, JPEGLoader, jpeg_loader, shard_indices
from .randaugment import AUGMENT_OPS, RandAugment, RandomErasing, TrivialAugmentWide, apply_op
from .tinyimagenet import (
    IMAGE_EXTENSIONS,
    CorruptImageError,
    ImageFolderSplit,
    TinyImageNet,
    read_image,
    resolve_root,
)
from .transforms import (
    DEFAULT_DATA_CONFIG,
    EvalTransform,
    create_transform,
    resolve_data_config,
)

__all__ = [
    "DEFAULT_DATA_CONFIG",
    "EvalTransform",
    "create_transform",
    "imagenet_class_names",
    "resolve_data_config",
    "AUGMENT_OPS",
    "CACHE_DIRNAME",
    "DEMO_CLASSES",
    "DIFFICULTIES",
    "HARD_DEMO_CLASSES",
    "IMAGE_EXTENSIONS",
    "OFFICIAL_MD5",
    "OFFICIAL_URL",
    "RandAugment",
    "RandomErasing",
    "TINYIMAGENET_MEAN",
    "TINYIMAGENET_STD",
    "BatchAugment",
    "CacheError",
    "CacheRebuiltWarning",
    "CachedBatchLoader",
    "CorruptImageError",
    "DecodedSplit",
    "DownloadError",
    "ImageFolderSplit",
    "JPEGLoader",
    "TinyImageNet",
    "TrivialAugmentWide",
    "apply_op",
    "cache_path",
    "compute_mean_std",
    "download_tiny_imagenet",
    "jpeg_loader",
    "load_cache",
    "make_demo_dataset",
    "prepare_cache",
    "read_cache_info",
    "read_image",
    "resolve_root",
    "safe_extract_zip",
    "shard_indices",
]
