"""Eval preprocessing for real images, from a model's ``pretrained_cfg`` (timm's names).

:func:`resolve_data_config` reads ``input_size``, ``crop_pct``, ``interpolation``, ``mean``
and ``std`` (the published weights' own, once ``pretrained=`` loaded them);
:func:`create_transform` turns them into a callable: resize the shorter side to
``floor(size / crop_pct)``, center-crop ``size``, scale to [0, 1], normalize. It uses
``torchvision.transforms.v2`` where installed and the same steps in Pillow/torch otherwise
(identical results on PIL images: torchvision resizes those with Pillow too).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["DEFAULT_DATA_CONFIG", "EvalTransform", "create_transform", "resolve_data_config"]

DEFAULT_DATA_CONFIG: dict[str, Any] = {
    "input_size": (3, 224, 224), "crop_pct": 0.875, "interpolation": "bilinear",
    "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225),
}
"""ImageNet's usual eval preprocessing, for models without a ``pretrained_cfg``."""

_INTERPOLATIONS = ("nearest", "bilinear", "bicubic")


def resolve_data_config(model: nn.Module | Mapping[str, Any] | None = None,
                        **overrides: Any) -> dict[str, Any]:
    """The eval config of ``model`` (its ``pretrained_cfg``) or of a config mapping, with
    ``overrides`` (e.g. ``input_size=256``) applied; keys a model lacks take
    :data:`DEFAULT_DATA_CONFIG`'s values. Bad values raise a one-line ``ValueError``."""
    if isinstance(model, nn.Module):
        source: Mapping[str, Any] = getattr(model, "pretrained_cfg", None) or {}
    else:
        source = model or {}
    config = {key: source.get(key, default) for key, default in DEFAULT_DATA_CONFIG.items()}
    config.update({key: value for key, value in overrides.items() if value is not None})
    unknown = sorted(set(overrides) - set(DEFAULT_DATA_CONFIG))
    if unknown:
        raise ValueError(f"unknown data config keys {unknown}; known: "
                         f"{', '.join(DEFAULT_DATA_CONFIG)}")
    size = config["input_size"]
    if isinstance(size, int):
        size = (3, size, size)
    size = tuple(int(v) for v in size)
    if len(size) != 3 or min(size) < 1:
        raise ValueError(f"input_size must be (channels, height, width) or one int, got "
                         f"{config['input_size']!r}")
    config["input_size"] = size
    if not 0.0 < float(config["crop_pct"]) <= 1.0:
        raise ValueError(f"crop_pct must be in (0, 1], got {config['crop_pct']!r}")
    if config["interpolation"] not in _INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {', '.join(_INTERPOLATIONS)}, got "
                         f"{config['interpolation']!r}")
    for key in ("mean", "std"):
        config[key] = tuple(float(v) for v in config[key])
        if len(config[key]) != size[0]:
            raise ValueError(f"{key} has {len(config[key])} values for {size[0]} channels")
    return config


class EvalTransform:
    """Image (a PIL image, a file path or a ``uint8 (C, H, W)`` tensor) -> normalized float
    ``(C, height, width)`` tensor: resize, center crop, scale, normalize."""

    def __init__(self, config: Mapping[str, Any], backend: str = "auto") -> None:
        self.config = resolve_data_config(config)
        _, self.height, self.width = self.config["input_size"]
        self.scale_size = math.floor(min(self.height, self.width) / self.config["crop_pct"])
        if backend == "auto":
            backend = "torchvision" if _has_transforms_v2() else "pil"
        if backend not in ("torchvision", "pil"):
            raise ValueError(f"backend must be 'auto', 'torchvision' or 'pil', got {backend!r}")
        self.backend = backend
        self._pipeline = _torchvision_pipeline(self) if backend == "torchvision" else None

    def __repr__(self) -> str:
        c = self.config
        return (f"EvalTransform(resize={self.scale_size}, crop=({self.height}, {self.width}), "
                f"interpolation={c['interpolation']!r}, mean={c['mean']}, std={c['std']}, "
                f"backend={self.backend!r})")

    def __call__(self, image: Any) -> torch.Tensor:
        """The preprocessed image, ready to be stacked into a batch."""
        if isinstance(image, (str, os.PathLike)):
            image = _open_rgb(Path(image))
        elif isinstance(image, torch.Tensor):  # through Pillow where there is one
            image = _tensor_to_pil(image) or image
        if self._pipeline is not None:
            return self._pipeline(image)
        tensor = (_resize_crop_tensor(self, image) if isinstance(image, torch.Tensor)
                  else _resize_crop_pil(self, image))
        mean = torch.tensor(self.config["mean"]).view(-1, 1, 1)
        std = torch.tensor(self.config["std"]).view(-1, 1, 1)
        return (tensor - mean) / std


def create_transform(config: Mapping[str, Any] | None = None, *, backend: str = "auto"
                     ) -> EvalTransform:
    """The eval transform of ``config`` (from :func:`resolve_data_config`; ImageNet's defaults
    when None). ``backend="pil"`` forces the Pillow/torch path."""
    return EvalTransform(config if config is not None else DEFAULT_DATA_CONFIG, backend)


def _has_transforms_v2() -> bool:
    try:
        from torchvision.transforms import v2  # noqa: F401
    except ImportError:
        return False
    return True


def _torchvision_pipeline(transform: EvalTransform) -> Any:
    from torchvision.transforms import InterpolationMode, v2

    c = transform.config
    return v2.Compose([  # resize and crop first: a PIL image is then resized by Pillow
        v2.Resize(transform.scale_size, interpolation=InterpolationMode(c["interpolation"]),
                  antialias=True),
        v2.CenterCrop((transform.height, transform.width)),
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(list(c["mean"]), list(c["std"])),
    ])


def _open_rgb(path: Path) -> Any:
    """Decoded as the data sets decode (16-bit, palette, transparent images; bombs refused)."""
    from .images import decode_rgb

    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist")
    return decode_rgb(path)


def _tensor_to_pil(image: torch.Tensor) -> Any:
    """A uint8 RGB tensor as a PIL image (None without Pillow: the torch path is used)."""
    _check_image_tensor(image)
    try:
        from PIL import Image

        data = image.permute(1, 2, 0).contiguous().numpy().tobytes()
    except (ImportError, RuntimeError):  # pragma: no cover - no Pillow or no numpy
        return None
    height, width = image.shape[1:]
    return Image.frombytes("RGB", (width, height), data)


def _check_image_tensor(image: torch.Tensor) -> None:
    if image.dim() != 3 or image.shape[0] != 3 or image.dtype != torch.uint8:
        raise ValueError(f"expected a uint8 (3, height, width) RGB image tensor, got "
                         f"{image.dtype} {list(image.shape)}")


def _resized_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """The shorter side becomes ``size``, the longer keeps the aspect ratio (truncated)."""
    if height <= width:
        return size, int(size * width / height)
    return int(size * height / width), size


def _crop_box(height: int, width: int, crop_h: int, crop_w: int) -> tuple[int, int]:
    if crop_h > height or crop_w > width:
        raise ValueError(f"the resized image ({height}x{width}) is smaller than the crop "
                         f"({crop_h}x{crop_w}); lower crop_pct")
    return int(round((height - crop_h) / 2.0)), int(round((width - crop_w) / 2.0))


def _resize_crop_pil(transform: EvalTransform, image: Any) -> torch.Tensor:
    from ._deps import require_pil_image

    pil = require_pil_image()
    resample = {"nearest": pil.Resampling.NEAREST, "bilinear": pil.Resampling.BILINEAR,
                "bicubic": pil.Resampling.BICUBIC}[transform.config["interpolation"]]
    image = image.convert("RGB") if image.mode != "RGB" else image
    height, width = _resized_shape(image.height, image.width, transform.scale_size)
    image = image.resize((width, height), resample)
    top, left = _crop_box(height, width, transform.height, transform.width)
    image = image.crop((left, top, left + transform.width, top + transform.height))
    data = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    return data.view(transform.height, transform.width, 3).permute(2, 0, 1).float() / 255.0


def _resize_crop_tensor(transform: EvalTransform, image: torch.Tensor) -> torch.Tensor:
    _check_image_tensor(image)
    height, width = _resized_shape(image.shape[1], image.shape[2], transform.scale_size)
    mode = transform.config["interpolation"]
    resized = nn.functional.interpolate(
        image[None].float(), size=(height, width), mode=mode,
        antialias=mode != "nearest", **({} if mode == "nearest" else {"align_corners": False}))
    resized = resized.round().clamp(0, 255)[0]
    top, left = _crop_box(height, width, transform.height, transform.width)
    return resized[:, top:top + transform.height, left:left + transform.width] / 255.0
