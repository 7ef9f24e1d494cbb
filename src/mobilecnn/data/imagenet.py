"""The 1000 ImageNet-1k class names, in the order of the classifiers' outputs.

They ship with the package (``imagenet_classes.txt``, one name a line; the short English names
torchvision publishes with its weights), so a pretrained model's top-5 can be read without a
download.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

__all__ = ["imagenet_class_names"]


@lru_cache(maxsize=1)
def _names() -> tuple[str, ...]:
    text = resources.files(__package__).joinpath("imagenet_classes.txt").read_text("utf-8")
    names = tuple(line for line in text.splitlines() if line)
    if len(names) != 1000:  # pragma: no cover - a damaged installation
        raise ValueError(f"imagenet_classes.txt has {len(names)} names, expected 1000; "
                         "reinstall mobilecnn")
    return names


def imagenet_class_names() -> list[str]:
    """The ImageNet-1k class names; ``imagenet_class_names()[i]`` is output ``i``'s class."""
    return list(_names())
