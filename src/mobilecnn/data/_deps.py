"""Lazy imports of the optional dependencies, with an error that names the extra to install."""

from __future__ import annotations

from types import ModuleType
from typing import Any

__all__ = ["require_pil_image", "tqdm_bar"]


def require_pil_image() -> ModuleType:
    """``PIL.Image``, or an ImportError telling how to install Pillow."""
    try:
        from PIL import Image
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            'reading and writing images needs Pillow: pip install "mobilecnn[data]"'
        ) from error
    return Image


def tqdm_bar(enabled: bool, **kwargs: Any) -> Any:
    """A tqdm progress bar when ``enabled`` (tqdm imported lazily), else a silent stand-in."""
    if not enabled:
        return _SilentBar()
    try:
        from tqdm.auto import tqdm
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            'progress bars need tqdm: pip install "mobilecnn[data]" (or pass progress=False)'
        ) from error
    return tqdm(**kwargs)


class _SilentBar:
    """The part of tqdm's interface used here, doing nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _SilentBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass
