"""Decoding one image file into 8-bit RGB, as an image viewer shows it.

:func:`decode_rgb` is the one decoder of the library: the data sets, the decoded cache and
``mobilecnn predict`` all use it. Every mode Pillow opens either converts to what a viewer
shows or is refused with a :class:`CorruptImageError` naming the file:

- 8-bit RGB, grayscale, bilevel, palette, CMYK and YCbCr: Pillow's conversion to RGB;
- transparency (grayscale+alpha ``LA``, ``RGBA``, palette with a transparent colour): the
  image over a white background;
- 16-bit grayscale (PNG, TIFF): scaled to 8 bits, ``round(value / 257)`` (65535 is white);
  16-bit RGB PNGs are reduced to 8 bits by Pillow itself;
- 32-bit float grayscale (TIFF): values in 0..1 scaled to 0..255; NaN, infinite or
  out-of-range values are refused (there is no single way to show them);
- 32-bit integer images and modes without an RGB conversion (such as LAB) are refused;
- images of more than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels (about 89 million: decompression
  bombs) are refused before they are decoded.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch

from ._deps import require_pil_image

__all__ = ["CorruptImageError", "decode_rgb", "read_image"]


class CorruptImageError(ValueError):
    """An image file that cannot be decoded (or is refused); the message names the file."""


_DIRECT = frozenset({"RGB", "L", "1", "CMYK", "YCbCr", "P"})
_ALPHA = frozenset({"LA", "La", "RGBA", "RGBa", "PA"})
_SIXTEEN_BIT = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})


def _over_white(image_module: Any, image: Any) -> Any:
    rgba = image.convert("RGBA")
    background = image_module.new("RGBA", rgba.size, (255, 255, 255, 255))
    return image_module.alpha_composite(background, rgba).convert("RGB")


def _sixteen_bit_to_rgb(image: Any, path: Path) -> Any:
    gray = image if image.mode == "I" else image.convert("I")
    low, high = gray.getextrema()
    if low < 0 or high > 65535:
        raise CorruptImageError(f"cannot decode image {path}: 16-bit values outside 0..65535 "
                                f"(found {low}..{high}); save it with 8 bits per channel")
    return gray.point(lambda value: value * (1 / 257) + 0.5).convert("L").convert("RGB")


def _float_to_rgb(image: Any, path: Path) -> Any:
    values = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.float32)
    if values.numel() and not bool(torch.isfinite(values).all()):
        raise CorruptImageError(f"cannot decode image {path}: a float image with NaN or "
                                "infinite pixels; save it with 8 bits per channel")
    low, high = (float(values.min()), float(values.max())) if values.numel() else (0.0, 0.0)
    if low < 0 or high > 1:
        raise CorruptImageError(
            f"cannot decode image {path}: a float image with values {low:g}..{high:g}, "
            "outside the 0..1 a viewer shows as black..white; save it with 8 bits per channel")
    return image.point(lambda value: value * 255 + 0.5).convert("L").convert("RGB")


def _to_rgb(image_module: Any, image: Any, path: Path) -> Any:
    mode = image.mode
    if mode in _ALPHA or (mode in ("P", "L", "RGB") and "transparency" in image.info):
        return _over_white(image_module, image)
    if mode in _DIRECT:
        return image.convert("RGB")
    if mode in _SIXTEEN_BIT or (mode == "I" and image.format == "PNG"):
        return _sixteen_bit_to_rgb(image, path)
    if mode == "F":
        return _float_to_rgb(image, path)
    if mode == "I":
        raise CorruptImageError(f"cannot decode image {path}: 32-bit integer pixels have no "
                                "standard brightness scale; save it with 8 or 16 bits per "
                                "channel")
    try:
        return image.convert("RGB")
    except ValueError:
        raise CorruptImageError(f"cannot decode image {path}: image mode {mode} has no RGB "
                                "conversion; save it as RGB or grayscale") from None


def decode_rgb(path: str | os.PathLike[str], size: int | None = None) -> Any:
    """The image file at ``path`` as a Pillow RGB image, 8 bits per channel; ``size`` resizes
    it to ``size x size`` (bilinear).

    Raises :class:`CorruptImageError` naming the file for a corrupt, truncated, unsupported or
    oversized (decompression bomb) image, ``FileNotFoundError`` for a missing one.
    """
    image_module = require_pil_image()
    rgb = _decode(image_module, Path(path))
    if size is not None and rgb.size != (size, size):
        rgb = rgb.resize((size, size), image_module.Resampling.BILINEAR, reducing_gap=3.0)
    return rgb


def _decode(image_module: Any, path: Path) -> Any:
    limit = image_module.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", image_module.DecompressionBombWarning)
            opened = image_module.open(path)
        with opened as image:
            width, height = image.size
            if limit and width * height > limit:
                raise image_module.DecompressionBombError(
                    f"{width}x{height} is {width * height:,} pixels")
            return _to_rgb(image_module, image, path)
    except (FileNotFoundError, CorruptImageError):
        raise
    except image_module.DecompressionBombError as error:
        raise CorruptImageError(
            f"cannot decode image {path}: too large ({error}; the limit is "
            f"PIL.Image.MAX_IMAGE_PIXELS): a decompression bomb, or far larger than a model "
            "needs; shrink it first") from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        detail = " ".join(str(error).split()) or type(error).__name__
        raise CorruptImageError(f"cannot decode image {path}: {detail}") from None


def read_image(path: str | os.PathLike[str], size: int | None = None) -> torch.Tensor:
    """Decode one image file into a ``uint8`` tensor ``3 x H x W`` (RGB, see
    :func:`decode_rgb`). ``size`` resizes to ``size x size`` (bilinear). A corrupt, truncated
    or refused file raises :class:`CorruptImageError` naming it.
    """
    rgb = decode_rgb(path, size)
    width, height = rgb.size
    pixels = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8)
    return pixels.view(height, width, 3).permute(2, 0, 1).contiguous()
