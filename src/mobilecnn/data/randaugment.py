"""RandAugment, TrivialAugmentWide and random erasing on whole batches, on their own device.

Each image gets its own operations and magnitudes, as with the per-image transforms of
torchvision (``transforms.v2.RandAugment`` / ``TrivialAugmentWide`` / ``RandomErasing``), but the
work is vectorized over the batch: all geometric operations of one round (shear, translate,
rotate) become one ``grid_sample`` with a per-image affine grid, and each colour operation runs
once on the images that drew it. The operations, their magnitude ranges and the fill (0) follow
torchvision's; pixel values are truncated to integers after every operation as torchvision does
on uint8 images. Random numbers come from a ``torch.Generator`` (a CPU generator gives the same
choices on every device), so the same generator state gives the same batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["AUGMENT_OPS", "RandAugment", "RandomErasing", "TrivialAugmentWide", "apply_op"]

AUGMENT_OPS = ("identity", "shear_x", "shear_y", "translate_x", "translate_y", "rotate",
               "brightness", "color", "contrast", "sharpness", "posterize", "solarize",
               "autocontrast", "equalize")
"""The operations, in torchvision's order; an op id is an index into this tuple."""

GEOMETRIC = frozenset(range(1, 6))
SIGNED = frozenset(range(1, 10))
GREY_WEIGHTS = (0.2989, 0.587, 0.114)


def _draw(generator: torch.Generator | None, kind: str, count: int, high: int = 0) -> torch.Tensor:
    """``count`` uniform floats (``kind="rand"``) or ints in ``[0, high)`` on the CPU, drawn
    on the generator's device."""
    device = generator.device if generator is not None else torch.device("cpu")
    if kind == "rand":
        return torch.rand(count, generator=generator, device=device).cpu()
    return torch.randint(0, high, (count,), generator=generator, device=device).cpu()


def _magnitude_table(wide: bool, bins: int, height: int, width: int) -> torch.Tensor:
    """``(len(AUGMENT_OPS), bins)`` magnitudes (unsigned) of every op at every bin."""
    table = torch.zeros(len(AUGMENT_OPS), bins, dtype=torch.float64)
    steps = torch.arange(bins, dtype=torch.float64)

    def ramp(high: float) -> torch.Tensor:
        return torch.linspace(0.0, high, bins, dtype=torch.float64)

    table[1] = table[2] = ramp(0.99 if wide else 0.3)
    table[3] = ramp(32.0 if wide else 150.0 / 331.0 * width)
    table[4] = ramp(32.0 if wide else 150.0 / 331.0 * height)
    table[5] = ramp(135.0 if wide else 30.0)
    table[6] = table[7] = table[8] = table[9] = ramp(0.99 if wide else 0.9)
    table[10] = 8 - (steps / ((bins - 1) / (6 if wide else 4))).round()
    table[11] = torch.linspace(1.0, 0.0, bins, dtype=torch.float64) * 255.0
    return table


class _BatchPolicy:
    """Shared machinery: draw one op and magnitude per image, apply them by group."""

    wide = False

    def __init__(self, num_magnitude_bins: int) -> None:
        if not isinstance(num_magnitude_bins, int) or num_magnitude_bins < 2:
            raise ValueError(f"num_magnitude_bins must be an integer >= 2, got "
                             f"{num_magnitude_bins!r}")
        self.num_magnitude_bins = num_magnitude_bins

    def _bins(self, count: int, generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError

    def _rounds(self) -> int:
        raise NotImplementedError

    def __call__(self, images: torch.Tensor,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """The augmented batch, same dtype (uint8, or float in 0..255), shape and device."""
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"{type(self).__name__} expects a batch N x C x H x W with 1 or 3 "
                             f"channels, got shape {tuple(images.shape)}")
        if images.dtype != torch.uint8 and not images.is_floating_point():
            raise ValueError(f"{type(self).__name__} expects uint8 (or float 0..255) images, "
                             f"got {images.dtype}")
        count, _, height, width = images.shape
        table = _magnitude_table(self.wide, self.num_magnitude_bins, height, width)
        integer = images.dtype == torch.uint8
        batch = images.to(torch.float32, copy=True)  # a private copy: changed in place below
        for _ in range(self._rounds()):
            ops = _draw(generator, "int", count, len(AUGMENT_OPS))
            bins = self._bins(count, generator)
            signs = torch.where(_draw(generator, "rand", count) < 0.5, -1.0, 1.0).double()
            magnitudes = table[ops, bins]
            signed = torch.tensor([int(op) in SIGNED for op in ops.tolist()])
            magnitudes = torch.where(signed, magnitudes * signs, magnitudes)
            batch = _apply_round(batch, ops, magnitudes, integer)
        if integer:
            return batch.clamp_(0, 255).to(torch.uint8)
        return batch


class RandAugment(_BatchPolicy):
    """RandAugment (Cubuk et al. 2020) per image: ``num_ops`` rounds, each image drawing one
    of the 14 operations per round, at the fixed ``magnitude`` bin (of
    ``num_magnitude_bins``), with a random sign for the signed ones; torchvision's ranges
    (shear 0.3, translate 150/331 of the side, rotate 30 degrees, enhance 0.9, posterize to 4
    bits, solarize from 255 to 0)."""

    def __init__(self, num_ops: int = 2, magnitude: int = 9,
                 num_magnitude_bins: int = 31) -> None:
        super().__init__(num_magnitude_bins)
        if not isinstance(num_ops, int) or num_ops < 1:
            raise ValueError(f"num_ops must be an integer >= 1, got {num_ops!r}")
        if not isinstance(magnitude, int) or not 0 <= magnitude < num_magnitude_bins:
            raise ValueError(f"magnitude must be an integer in [0, {num_magnitude_bins}), got "
                             f"{magnitude!r}")
        self.num_ops = num_ops
        self.magnitude = magnitude

    def __repr__(self) -> str:
        return (f"RandAugment(num_ops={self.num_ops}, magnitude={self.magnitude}, "
                f"num_magnitude_bins={self.num_magnitude_bins})")

    def _rounds(self) -> int:
        return self.num_ops

    def _bins(self, count: int, generator: torch.Generator | None) -> torch.Tensor:
        return torch.full((count,), self.magnitude, dtype=torch.long)


class TrivialAugmentWide(_BatchPolicy):
    """TrivialAugment (Mueller & Hutter 2021), wide ranges, per image: one operation and one
    magnitude bin drawn uniformly for every image (shear 0.99, translate 32 px, rotate 135
    degrees, enhance 0.99, posterize to 2 bits, solarize from 255 to 0)."""

    wide = True

    def __init__(self, num_magnitude_bins: int = 31) -> None:
        super().__init__(num_magnitude_bins)

    def __repr__(self) -> str:
        return f"TrivialAugmentWide(num_magnitude_bins={self.num_magnitude_bins})"

    def _rounds(self) -> int:
        return 1

    def _bins(self, count: int, generator: torch.Generator | None) -> torch.Tensor:
        return _draw(generator, "int", count, self.num_magnitude_bins)


def apply_op(images: torch.Tensor, op: str, magnitude: float | torch.Tensor) -> torch.Tensor:
    """One operation of :data:`AUGMENT_OPS` on every image of a uint8 batch (``magnitude`` a
    number or one per image; signed ops take the sign from it). Returns uint8."""
    if op not in AUGMENT_OPS:
        raise ValueError(f"op must be one of {', '.join(AUGMENT_OPS)}; got {op!r}")
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError(f"apply_op expects a uint8 batch N x C x H x W, got {images.dtype} "
                         f"{tuple(images.shape)}")
    count = images.shape[0]
    ops = torch.full((count,), AUGMENT_OPS.index(op), dtype=torch.long)
    magnitudes = torch.as_tensor(magnitude, dtype=torch.float64).expand(count).clone()
    batch = images.to(torch.float32, copy=True)
    return _apply_round(batch, ops, magnitudes, True).clamp_(0, 255).to(torch.uint8)


def _apply_round(batch: torch.Tensor, ops: torch.Tensor, magnitudes: torch.Tensor,
                 integer: bool) -> torch.Tensor:
    """Apply ``ops[i]`` with ``magnitudes[i]`` to image ``i`` of the float 0..255 ``batch``,
    in place."""
    device = batch.device
    geometric = torch.tensor([int(op) in GEOMETRIC for op in ops.tolist()])
    groups: list[tuple[int | str, torch.Tensor]] = []
    if geometric.any():
        groups.append(("geometric", geometric.nonzero().flatten()))
    for op in sorted(set(ops.tolist()) - GEOMETRIC - {0}):
        groups.append((op, (ops == op).nonzero().flatten()))
    for op, index in groups:
        index_device = index.to(device)
        subset = batch.index_select(0, index_device)
        if op == "geometric":
            result = _geometric(subset, ops[index], magnitudes[index])
        else:
            result = _colour(subset, int(op), magnitudes[index].to(device, torch.float32))
            if integer:
                result = result.floor_()
        batch.index_copy_(0, index_device, result.clamp_(0, 255))
    return batch


def _geometric(images: torch.Tensor, ops: torch.Tensor, magnitudes: torch.Tensor) -> torch.Tensor:
    """Shear/translate/rotate each image by its own affine map (nearest, fill 0), as
    torchvision's ``affine``: shears about the top-left corner, rotations about the centre."""
    count, _, height, width = images.shape
    zero = torch.zeros(count, dtype=torch.float64)
    angle = torch.where(ops == 5, magnitudes, zero)
    shear_x = torch.where(ops == 1, torch.atan(magnitudes), zero)
    shear_y = torch.where(ops == 2, torch.atan(magnitudes), zero)
    translate_x = torch.where(ops == 3, magnitudes.trunc(), zero)
    translate_y = torch.where(ops == 4, magnitudes.trunc(), zero)
    shears = (ops == 1) | (ops == 2)
    # centre of the map in coordinates relative to the image centre: the corner for shears
    centre_x = torch.where(shears, torch.full_like(zero, -width / 2), zero)
    centre_y = torch.where(shears, torch.full_like(zero, -height / 2), zero)
    rot = torch.deg2rad(-angle)  # counter-clockwise for positive angles, as torchvision
    a = torch.cos(rot - shear_y) / torch.cos(shear_y)
    b = -torch.cos(rot - shear_y) * torch.tan(shear_x) / torch.cos(shear_y) - torch.sin(rot)
    c = torch.sin(rot - shear_y) / torch.cos(shear_y)
    d = -torch.sin(rot - shear_y) * torch.tan(shear_x) / torch.cos(shear_y) + torch.cos(rot)
    # inverse map (output -> input) [[d, -b, e], [-c, a, f]] in centred pixel coordinates
    e = d * (-centre_x - translate_x) - b * (-centre_y - translate_y) + centre_x
    f = -c * (-centre_x - translate_x) + a * (-centre_y - translate_y) + centre_y
    # the grid in grid_sample's [-1, 1] coordinates: one batched matrix product
    theta = torch.stack([torch.stack([d, -b, e], 1) / (width / 2),
                         torch.stack([-c, a, f], 1) / (height / 2)], 1)  # N x 2 x 3
    xs = torch.arange(width, dtype=torch.float64) - width / 2 + 0.5
    ys = torch.arange(height, dtype=torch.float64) - height / 2 + 0.5
    points = torch.stack([xs.view(1, -1).expand(height, width), ys.view(-1, 1).expand(
        height, width), torch.ones(height, width, dtype=torch.float64)], -1)  # H x W x 3
    device = images.device
    grid = torch.matmul(points.to(device, torch.float32).view(1, height * width, 3),
                        theta.to(device, torch.float32).transpose(1, 2))
    return F.grid_sample(images, grid.view(count, height, width, 2), mode="nearest",
                         padding_mode="zeros", align_corners=False)


def _grey(images: torch.Tensor) -> torch.Tensor:
    """``N x 1 x H x W`` luminance (ITU-R 601-2, as torchvision), truncated to integers."""
    if images.shape[1] == 1:
        return images
    red, green, blue = images.unbind(1)
    grey = red * GREY_WEIGHTS[0] + green * GREY_WEIGHTS[1] + blue * GREY_WEIGHTS[2]
    return grey.floor_().unsqueeze(1)


def _blend(images: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (images * factor + other * (1.0 - factor)).clamp_(0, 255)


def _colour(images: torch.Tensor, op: int, magnitude: torch.Tensor) -> torch.Tensor:
    """Colour operation ``op`` (an index of AUGMENT_OPS) with one magnitude per image."""
    factor = (1.0 + magnitude).view(-1, 1, 1, 1)
    name = AUGMENT_OPS[op]
    if name == "brightness":
        return _blend(images, torch.zeros_like(images), factor)
    if name == "color":
        return _blend(images, _grey(images), factor)
    if name == "contrast":
        return _blend(images, _grey(images).mean(dim=(1, 2, 3), keepdim=True), factor)
    if name == "sharpness":
        return _blend(images, _smoothed(images), factor)
    if name == "posterize":
        step = torch.pow(2.0, 8.0 - magnitude).view(-1, 1, 1, 1)
        return torch.floor(images / step) * step
    if name == "solarize":
        return torch.where(images >= magnitude.view(-1, 1, 1, 1), 255.0 - images, images)
    if name == "autocontrast":
        low = images.amin(dim=(2, 3), keepdim=True)
        high = images.amax(dim=(2, 3), keepdim=True)
        flat = high == low
        low = torch.where(flat, torch.zeros_like(low), low)
        high = torch.where(flat, torch.full_like(high, 255.0), high)
        return ((images - low) * (255.0 / (high - low))).clamp_(0, 255)
    if name == "equalize":
        return _equalize(images)
    raise AssertionError(f"not a colour op: {name}")  # pragma: no cover


def _smoothed(images: torch.Tensor) -> torch.Tensor:
    """PIL's SMOOTH filter (centre 5, neighbours 1, /13), rounded; border pixels unchanged."""
    channels = images.shape[1]
    kernel = torch.ones(3, 3, device=images.device, dtype=images.dtype)
    kernel[1, 1] = 5.0
    kernel = (kernel / kernel.sum()).expand(channels, 1, 3, 3)
    inner = F.conv2d(images, kernel, groups=channels).round_()
    out = images.clone()
    out[..., 1:-1, 1:-1] = inner
    return out


def _equalize(images: torch.Tensor) -> torch.Tensor:
    """Histogram equalization of each channel of each image (PIL's algorithm)."""
    count, channels, height, width = images.shape
    values = images.reshape(count * channels, height * width).clamp(0, 255).long()
    hist = torch.zeros(count * channels, 256, device=images.device, dtype=torch.float32)
    hist.scatter_add_(1, values, torch.ones_like(values, dtype=torch.float32))
    last = hist.gather(1, values.amax(dim=1, keepdim=True))  # count of the highest value
    step = torch.div(height * width - last, 255, rounding_mode="floor")
    safe = step.clamp_min(1)
    lut = torch.div(hist.cumsum(1) + torch.div(safe, 2, rounding_mode="floor"), safe,
                    rounding_mode="floor")
    lut = torch.cat([torch.zeros_like(lut[:, :1]), lut[:, :-1]], dim=1).clamp_(0, 255)
    equalized = lut.gather(1, values)
    flat = values.to(torch.float32)
    result = torch.where(step > 0, equalized, flat)
    return result.view(count, channels, height, width)


class RandomErasing:
    """Random erasing (Zhong et al. 2020) of a *normalized* float batch, per image.

    With probability ``prob`` an image gets one rectangle of area ``scale`` (fraction of the
    image) and aspect ratio ``ratio`` (log-uniform; 10 tries, as torchvision) replaced by 0
    (``mode="const"``: the mean after normalization) or by per-pixel standard normal noise
    (``mode="pixel"``, timm's default in its training script).
    """

    def __init__(self, prob: float = 0.25, scale: tuple[float, float] = (0.02, 1 / 3),
                 ratio: tuple[float, float] = (0.3, 3.3), mode: str = "pixel") -> None:
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"random erasing prob must be in [0, 1], got {prob!r}")
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"scale must be (low, high) with 0 < low <= high <= 1, got {scale!r}")
        if not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio must be (low, high) with 0 < low <= high, got {ratio!r}")
        if mode not in ("const", "pixel"):
            raise ValueError(f"mode must be 'const' or 'pixel', got {mode!r}")
        self.prob = float(prob)
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.mode = mode

    def __repr__(self) -> str:
        return (f"RandomErasing(prob={self.prob}, scale={self.scale}, ratio={self.ratio}, "
                f"mode={self.mode!r})")

    def __call__(self, inputs: torch.Tensor,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """The batch with the chosen rectangles erased (a new tensor)."""
        if inputs.dim() != 4 or not inputs.is_floating_point():
            raise ValueError(f"RandomErasing expects a normalized float batch N x C x H x W, "
                             f"got {inputs.dtype} {tuple(inputs.shape)}")
        count, channels, height, width = inputs.shape
        tries = 10
        chosen = _draw(generator, "rand", count) < self.prob
        area = height * width * (self.scale[0] + (self.scale[1] - self.scale[0])
                                 * _draw(generator, "rand", count * tries)).view(count, tries)
        log_low, log_high = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = torch.exp(log_low + (log_high - log_low)
                           * _draw(generator, "rand", count * tries)).view(count, tries)
        box_h = torch.sqrt(area * aspect).round().long()
        box_w = torch.sqrt(area / aspect).round().long()
        fits = (box_h < height) & (box_w < width) & (box_h > 0) & (box_w > 0)
        pick = fits.float().argmax(1, keepdim=True)
        box_h, box_w = box_h.gather(1, pick).squeeze(1), box_w.gather(1, pick).squeeze(1)
        chosen &= fits.any(1)
        top = (_draw(generator, "rand", count) * (height - box_h + 1)).long()
        left = (_draw(generator, "rand", count) * (width - box_w + 1)).long()
        device = inputs.device
        rows = torch.arange(height, device=device).view(1, -1, 1)
        cols = torch.arange(width, device=device).view(1, 1, -1)
        top, left = top.to(device).view(-1, 1, 1), left.to(device).view(-1, 1, 1)
        box_h, box_w = box_h.to(device).view(-1, 1, 1), box_w.to(device).view(-1, 1, 1)
        mask = ((rows >= top) & (rows < top + box_h) & (cols >= left) & (cols < left + box_w)
                & chosen.to(device).view(-1, 1, 1)).unsqueeze(1)
        if self.mode == "pixel":
            noise_device = generator.device if generator is not None else torch.device("cpu")
            fill = torch.randn((count, channels, height, width), generator=generator,
                               device=noise_device).to(device, inputs.dtype)
        else:
            fill = torch.zeros((), device=device, dtype=inputs.dtype)
        return torch.where(mask, fill, inputs)
