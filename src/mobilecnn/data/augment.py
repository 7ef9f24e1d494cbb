"""Batch augmentation on uint8 image tensors, on whatever device the batch is on."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from .cache import DecodedSplit
    from .randaugment import RandAugment, RandomErasing, TrivialAugmentWide

__all__ = ["TINYIMAGENET_MEAN", "TINYIMAGENET_STD", "BatchAugment", "compute_mean_std"]

TINYIMAGENET_MEAN = (0.4802, 0.4481, 0.3975)
"""Per-channel RGB mean of the TinyImageNet train split (pixels scaled to [0, 1])."""
TINYIMAGENET_STD = (0.2302, 0.2265, 0.2262)
"""Per-channel RGB standard deviation of the TinyImageNet train split."""

CropMode = Literal["pad", "resized", "none"]


def compute_mean_std(
    images: torch.Tensor | DecodedSplit, batch_size: int = 2048
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 images ``N x C x H x W`` (or a
    :class:`DecodedSplit`), with pixels scaled to [0, 1]; reads the data in batches."""
    tensor = images if isinstance(images, torch.Tensor) else images.images
    if tensor.dim() != 4 or tensor.dtype != torch.uint8 or tensor.shape[0] == 0:
        raise ValueError(f"expected a non-empty uint8 tensor N x C x H x W, got "
                         f"{tensor.dtype} of shape {tuple(tensor.shape)}")
    channels = tensor.shape[1]
    total = torch.zeros(channels, dtype=torch.float64, device=tensor.device)
    squares = torch.zeros(channels, dtype=torch.float64, device=tensor.device)
    for start in range(0, tensor.shape[0], batch_size):
        batch = tensor[start:start + batch_size].to(torch.float64).div_(255.0)
        total += batch.sum(dim=(0, 2, 3))
        squares += batch.square().sum(dim=(0, 2, 3))
    pixels = tensor.shape[0] * tensor.shape[2] * tensor.shape[3]
    mean = total / pixels
    std = (squares / pixels - mean.square()).clamp_min(0).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())


class BatchAugment:
    """Augment and normalize a uint8 batch ``N x C x H x W`` in one call, on its own device.

    ``train=True``: a random crop (``crop="pad"``: zero-pad by ``padding`` and crop back to
    ``H x W``; ``"resized"``: a random area in ``scale`` of the image with aspect ratio in
    ``ratio``, resized bilinearly to the output size; ``"none"``), a random horizontal flip
    (``flip``), then ``auto_augment`` (a :class:`RandAugment` or :class:`TrivialAugmentWide`,
    each image its own operations, on uint8), then ``(x / 255 - mean) / std``, then ``erasing``
    (a :class:`RandomErasing`, on the normalized batch). ``train=False`` only converts and
    normalizes (and resizes when ``output_size`` differs from the input size). Random numbers
    come from ``generator`` (a CPU generator gives identical results on every device) or
    torch's default CPU generator; every step is vectorized over the batch.
    """

    def __init__(
        self,
        train: bool = True,
        crop: CropMode | str = "pad",
        padding: int = 4,
        scale: tuple[float, float] = (0.35, 1.0),
        flip: bool = True,
        mean: Sequence[float] = TINYIMAGENET_MEAN,
        std: Sequence[float] = TINYIMAGENET_STD,
        output_size: int | tuple[int, int] | None = None,
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        auto_augment: RandAugment | TrivialAugmentWide | None = None,
        erasing: RandomErasing | None = None,
    ) -> None:
        if crop not in ("pad", "resized", "none"):
            raise ValueError(f"crop must be 'pad', 'resized' or 'none', got {crop!r}")
        if not isinstance(padding, int) or padding < 0:
            raise ValueError(f"padding must be an integer >= 0, got {padding!r}")
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"scale must be (low, high) with 0 < low <= high <= 1, got {scale!r}")
        if not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio must be (low, high) with 0 < low <= high, got {ratio!r}")
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise ValueError(f"mean and std need one value per channel and std > 0, got "
                             f"mean={tuple(mean)}, std={tuple(std)}")
        if isinstance(output_size, int):
            output_size = (output_size, output_size)
        if output_size is not None and (len(output_size) != 2 or min(output_size) < 1):
            raise ValueError(f"output_size must be a positive int or (height, width), got "
                             f"{output_size!r}")
        self.train = train
        self.crop = crop
        self.padding = padding
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.flip = flip
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.output_size: tuple[int, int] | None = (
            (int(output_size[0]), int(output_size[1])) if output_size is not None else None)
        self.auto_augment = auto_augment
        self.erasing = erasing

    def __repr__(self) -> str:
        return (f"BatchAugment(train={self.train}, crop={self.crop!r}, padding={self.padding}, "
                f"scale={self.scale}, flip={self.flip}, mean={self.mean}, std={self.std}, "
                f"output_size={self.output_size}"
                + (f", auto_augment={self.auto_augment!r}" if self.auto_augment else "")
                + (f", erasing={self.erasing!r}" if self.erasing else "") + ")")

    def __call__(self, images: torch.Tensor,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """The augmented, normalized float32 batch ``N x C x H' x W'`` on ``images.device``."""
        if images.dim() != 4 or images.dtype != torch.uint8:
            raise ValueError(
                f"BatchAugment expects a uint8 batch N x C x H x W (pixels 0..255), got "
                f"{images.dtype} of shape {tuple(images.shape)}; stack images with torch.stack "
                "and keep them uint8 until here")
        if images.shape[1] != len(self.mean):
            raise ValueError(f"the batch has {images.shape[1]} channels but mean/std have "
                             f"{len(self.mean)} values")
        height, width = images.shape[-2:]
        out_size = self.output_size or (height, width)
        if self.train and self.crop == "resized" and self.auto_augment is None:
            # normalizing first is exact: bilinear weights sum to 1 and borders are replicated
            batch = self._resized_crop(self._normalize(images), out_size, generator)
            return self._erase(batch, generator)
        if self.train and self.crop == "resized":
            # the policy works on pixels: crop on 0..255, back to uint8 as a per-image pipeline
            cropped = self._resized_crop(images.float(), out_size, generator)
            images = cropped.round_().clamp_(0, 255).to(torch.uint8)
            height, width = images.shape[-2:]
        elif self.train and (self.crop == "pad" or self.flip):
            images = self._pad_crop_flip(images, generator)
        if self.train and self.auto_augment is not None:
            images = self.auto_augment(images, generator)
        batch = self._normalize(images)
        if out_size != (height, width):
            batch = F.interpolate(batch, size=out_size, mode="bilinear", align_corners=False,
                                  antialias=out_size[0] < height or out_size[1] < width)
        return self._erase(batch, generator)

    def _erase(self, batch: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if self.train and self.erasing is not None:
            return self.erasing(batch, generator)
        return batch

    def _random(self, count: int, generator: torch.Generator | None) -> torch.Tensor:
        """``count`` uniform numbers on the CPU, drawn on the generator's device."""
        device = generator.device if generator is not None else torch.device("cpu")
        return torch.rand(count, generator=generator, device=device).cpu()

    def _normalize(self, images: torch.Tensor) -> torch.Tensor:
        """``(x / 255 - mean) / std`` in float32, read from uint8 in one pass."""
        shape = (1, -1, 1, 1)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(shape)
        std = torch.tensor(self.std, dtype=torch.float32).view(shape)
        scale = (1.0 / (255.0 * std)).to(images.device)
        shift = (-mean / std).to(images.device)
        return torch.addcmul(shift, images, scale)

    def _pad_crop_flip(self, images: torch.Tensor,
                       generator: torch.Generator | None) -> torch.Tensor:
        """Random crops of the zero-padded batch (one indexing of a sliding-window view) and
        horizontal flips of a random half (one index_select/index_copy), all on uint8."""
        count, _, height, width = images.shape
        device = images.device
        pad = self.padding if self.crop == "pad" else 0
        if pad:
            offsets_y = (self._random(count, generator) * (2 * pad + 1)).long().to(device)
            offsets_x = (self._random(count, generator) * (2 * pad + 1)).long().to(device)
            padded = F.pad(images, (pad, pad, pad, pad))
            # windows[n, c, y, x] is the H x W crop of image n at offset (y, x): a view, no copy
            windows = padded.unfold(2, height, 1).unfold(3, width, 1)
            images = windows[torch.arange(count, device=device), :, offsets_y, offsets_x]
        if self.flip:
            chosen = (self._random(count, generator) < 0.5).nonzero().flatten().to(device)
            if pad == 0:
                images = images.clone()
            images.index_copy_(0, chosen, images.index_select(0, chosen).flip(-1))
        return images

    def _resized_crop(self, images: torch.Tensor, out_size: tuple[int, int],
                      generator: torch.Generator | None) -> torch.Tensor:
        """Random-resized crop (and flip) of every image via one ``grid_sample`` call."""
        count, _, height, width = images.shape
        tries = 10
        area = height * width
        log_low, log_high = math.log(self.ratio[0]), math.log(self.ratio[1])
        target = area * (self.scale[0] + (self.scale[1] - self.scale[0])
                         * self._random(count * tries, generator)).view(count, tries)
        aspect = torch.exp(log_low + (log_high - log_low)
                           * self._random(count * tries, generator)).view(count, tries)
        crop_w = torch.sqrt(target * aspect)
        crop_h = torch.sqrt(target / aspect)
        fits = (crop_w <= width) & (crop_h <= height)
        # the first try that fits, else the whole image (clamped to the ratio range)
        first = torch.where(fits.any(1), fits.float().argmax(1), torch.full((count,), -1))
        pick = first.clamp_min(0)[:, None]
        crop_w = crop_w.gather(1, pick).squeeze(1)
        crop_h = crop_h.gather(1, pick).squeeze(1)
        image_ratio = width / height
        fallback_w = width if image_ratio <= self.ratio[1] else height * self.ratio[1]
        fallback_h = height if image_ratio >= self.ratio[0] else width / self.ratio[0]
        crop_w = torch.where(first >= 0, crop_w, torch.full_like(crop_w, fallback_w))
        crop_h = torch.where(first >= 0, crop_h, torch.full_like(crop_h, fallback_h))
        left = (width - crop_w) * self._random(count, generator)
        top = (height - crop_h) * self._random(count, generator)
        sign = torch.ones(count)
        if self.flip:
            sign = torch.where(self._random(count, generator) < 0.5, -1.0, 1.0)
        # sampling grid in grid_sample's [-1, 1] coordinates, built per axis (the crop is
        # axis-aligned): output column j of image n reads x = scale_x[n] * base_x[j] + shift_x[n]
        out_h, out_w = out_size
        base_x = (torch.arange(out_w) * 2 + 1) / out_w - 1
        base_y = (torch.arange(out_h) * 2 + 1) / out_h - 1
        shift_x = (2 * left + crop_w) / width - 1
        shift_y = (2 * top + crop_h) / height - 1
        grid_x = ((sign * crop_w / width)[:, None] * base_x + shift_x[:, None]).to(images.device)
        grid_y = ((crop_h / height)[:, None] * base_y + shift_y[:, None]).to(images.device)
        grid = torch.stack([grid_x[:, None, :].expand(count, out_h, out_w),
                            grid_y[:, :, None].expand(count, out_h, out_w)], dim=-1)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="border",
                             align_corners=False)
