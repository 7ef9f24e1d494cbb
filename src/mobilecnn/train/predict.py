"""Classify image files with a trained checkpoint, or with an ImageNet-pretrained model
(decoded with Pillow)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..models import MobileNetBase

__all__ = ["Prediction", "load_image", "predict_images", "predict_imagenet"]


@dataclass(frozen=True)
class Prediction:
    """The ``k`` most likely classes of one image, most likely first."""

    path: Path
    class_indices: list[int]
    classes: list[str]
    class_names: list[str]
    probabilities: list[float]


def load_image(path: str | os.PathLike[str], image_size: int) -> torch.Tensor:
    """Decode an image file to a ``uint8 (3, image_size, image_size)`` RGB tensor.

    Decoded as the data sets decode (:func:`mobilecnn.data.images.decode_rgb`: 16-bit, float,
    palette, CMYK and transparent images as a viewer shows them, decompression bombs refused),
    then resized (bilinear, whole image, aspect ratio not kept) to the size the model was
    trained on. A bad image is a ``CorruptImageError`` (a ``ValueError``) naming the file.
    """
    from ..data.images import decode_rgb

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist")
    rgb = decode_rgb(path)
    if rgb.size != (image_size, image_size):
        from ..data._deps import require_pil_image

        rgb = rgb.resize((image_size, image_size), require_pil_image().Resampling.BILINEAR)
    data = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8)
    return data.view(image_size, image_size, 3).permute(2, 0, 1).contiguous()


@torch.no_grad()
def predict_images(
    model: MobileNetBase,
    checkpoint: dict[str, Any],
    paths: Sequence[str | os.PathLike[str]],
    top_k: int = 5,
) -> list[Prediction]:
    """Top-``k`` classes of each image for a model loaded with ``load_model``."""
    image_size = int(checkpoint.get("image_size") or 64)  # 0.1.0 files without it: 64x64
    mean = torch.tensor(checkpoint["mean"], dtype=torch.float32)
    std = torch.tensor(checkpoint["std"], dtype=torch.float32)
    device = next(model.parameters()).device
    batch = torch.stack([load_image(path, image_size) for path in paths]).to(device)
    inputs = (batch.float() / 255.0 - mean.to(device).view(1, 3, 1, 1)) / std.to(device).view(
        1, 3, 1, 1)
    model.eval()
    probabilities = model(inputs).float().softmax(dim=1)
    k = min(top_k, probabilities.shape[1])
    values, indices = probabilities.topk(k, dim=1)
    classes = list(checkpoint["classes"])
    names = list(checkpoint["class_names"])
    return [
        Prediction(
            path=Path(path),
            class_indices=row.tolist(),
            classes=[classes[i] for i in row.tolist()],
            class_names=[names[i] for i in row.tolist()],
            probabilities=[float(v) for v in probs],
        )
        for path, row, probs in zip(paths, indices.cpu(), values.cpu(), strict=False)
    ]


@torch.no_grad()
def predict_imagenet(
    model: torch.nn.Module,
    paths: Sequence[str | os.PathLike[str]],
    top_k: int = 5,
) -> list[Prediction]:
    """Top-``k`` ImageNet classes of each image for a model with ImageNet weights (e.g.
    ``create_model("mobilenet_v2", pretrained=True)``), preprocessed as its
    ``pretrained_cfg`` says. ``classes`` holds the class indices as text."""
    from ..data.imagenet import imagenet_class_names
    from ..data.transforms import create_transform, resolve_data_config

    transform = create_transform(resolve_data_config(model))
    device = next(model.parameters()).device
    batch = torch.stack([transform(path) for path in paths]).to(device)
    model.eval()
    probabilities = model(batch).float().softmax(dim=1)
    if probabilities.shape[1] != 1000:
        raise ValueError(f"the model has {probabilities.shape[1]} classes, not ImageNet's "
                         "1000; use a checkpoint (--checkpoint) for other classes")
    values, indices = probabilities.topk(min(top_k, 1000), dim=1)
    names = imagenet_class_names()
    return [
        Prediction(path=Path(path), class_indices=row.tolist(),
                   classes=[str(i) for i in row.tolist()],
                   class_names=[names[i] for i in row.tolist()],
                   probabilities=[float(v) for v in probs])
        for path, row, probs in zip(paths, indices.cpu(), values.cpu(), strict=True)
    ]
