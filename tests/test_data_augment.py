"""BatchAugment: exact normalization, crops that are real crops, determinism, devices."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mobilecnn.data import TINYIMAGENET_MEAN, TINYIMAGENET_STD, BatchAugment


def _batch(count: int = 6, size: int = 10) -> torch.Tensor:
    return torch.randint(0, 256, (count, 3, size, size), dtype=torch.uint8)


def _normalize(images: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(TINYIMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(TINYIMAGENET_STD).view(1, 3, 1, 1)
    return (images.float() / 255 - mean) / std


def test_eval_only_normalizes() -> None:
    images = _batch()
    out = BatchAugment(train=False)(images)
    assert out.dtype == torch.float32 and out.shape == images.shape
    torch.testing.assert_close(out, _normalize(images))


def test_custom_mean_std() -> None:
    images = _batch()
    out = BatchAugment(train=False, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))(images)
    torch.testing.assert_close(out, (images.float() / 255 - 0.5) / 0.25)


def test_pad_crop_flip_outputs_are_crops_of_the_padded_image() -> None:
    images = _batch(count=16, size=8)
    padding = 2
    augment = BatchAugment(crop="pad", padding=padding, flip=True)
    out = augment(images, torch.Generator().manual_seed(3))
    padded = _normalize(F.pad(images, (padding,) * 4))
    flips = 0
    for index in range(len(images)):
        matches = []
        for dy in range(2 * padding + 1):
            for dx in range(2 * padding + 1):
                crop = padded[index, :, dy:dy + 8, dx:dx + 8]
                for flip in (False, True):
                    if torch.allclose(out[index], crop.flip(-1) if flip else crop, atol=1e-5):
                        matches.append(flip)
        assert matches, f"image {index} is not a (flipped) crop of its padded input"
        flips += any(matches)
    assert 0 < flips < len(images)


def test_flip_only_and_identity() -> None:
    images = _batch(count=20)
    out = BatchAugment(crop="none", flip=True)(images, torch.Generator().manual_seed(0))
    reference = _normalize(images)
    pairs = list(zip(out, reference, strict=True))
    flipped = [torch.allclose(o, r.flip(-1), atol=1e-5) for o, r in pairs]
    same = [torch.allclose(o, r, atol=1e-5) for o, r in pairs]
    assert all(f or s for f, s in zip(flipped, same, strict=True))
    assert any(flipped) and any(same)
    torch.testing.assert_close(BatchAugment(crop="none", flip=False)(images), reference)
    torch.testing.assert_close(BatchAugment(crop="pad", padding=0, flip=False)(images), reference)


def test_resized_crop_at_full_scale_is_the_identity_or_its_flip() -> None:
    images = _batch(count=12)
    reference = _normalize(images)
    exact = BatchAugment(crop="resized", scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=False)
    torch.testing.assert_close(exact(images), reference, atol=1e-4, rtol=0)
    flipping = BatchAugment(crop="resized", scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=True)
    out = flipping(images, torch.Generator().manual_seed(1))
    for o, r in zip(out, reference, strict=True):
        assert torch.allclose(o, r, atol=1e-4) or torch.allclose(o, r.flip(-1), atol=1e-4)


def test_resized_crop_zooms_in() -> None:
    # a half-black, half-white image: small crops are often all one colour, the input never is
    images = torch.zeros(64, 3, 16, 16, dtype=torch.uint8)
    images[..., 8:] = 255
    out = BatchAugment(crop="resized", scale=(0.05, 0.1), flip=False, mean=(0, 0, 0),
                       std=(1, 1, 1))(images, torch.Generator().manual_seed(0))
    uniform = (out.amax(dim=(1, 2, 3)) - out.amin(dim=(1, 2, 3))) < 1e-6
    assert uniform.any()
    assert out.min() >= 0 and out.max() <= 255


def test_output_size() -> None:
    images = _batch(size=12)
    assert BatchAugment(crop="resized", output_size=20)(images).shape == (6, 3, 20, 20)
    assert BatchAugment(crop="pad", output_size=(6, 8))(images).shape == (6, 3, 6, 8)
    assert BatchAugment(train=False, output_size=6)(images).shape == (6, 3, 6, 6)


@pytest.mark.parametrize("crop", ["pad", "resized"])
def test_deterministic_under_a_seed(crop: str) -> None:
    images = _batch(count=32)
    augment = BatchAugment(crop=crop)
    first = augment(images, torch.Generator().manual_seed(5))
    second = augment(images, torch.Generator().manual_seed(5))
    other = augment(images, torch.Generator().manual_seed(6))
    assert torch.equal(first, second)
    assert not torch.equal(first, other)
    torch.manual_seed(11)
    default_first = augment(images)
    torch.manual_seed(11)
    assert torch.equal(augment(images), default_first)


@pytest.mark.parametrize("crop", ["pad", "resized", "none"])
def test_runs_on_the_batch_device(device: torch.device, crop: str) -> None:
    images = _batch(count=8)
    augment = BatchAugment(crop=crop)
    expected = augment(images, torch.Generator().manual_seed(2))
    out = augment(images.to(device), torch.Generator().manual_seed(2))
    assert out.device.type == device.type
    torch.testing.assert_close(out.cpu(), expected, atol=1e-4, rtol=1e-4)


def test_bad_input_is_explained() -> None:
    augment = BatchAugment()
    with pytest.raises(ValueError, match="uint8 batch"):
        augment(torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match="uint8 batch"):
        augment(torch.zeros(3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="channels"):
        augment(torch.zeros(2, 1, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="crop must be"):
        BatchAugment(crop="random")
    with pytest.raises(ValueError, match="scale"):
        BatchAugment(scale=(0.0, 1.0))
    with pytest.raises(ValueError, match="std"):
        BatchAugment(std=(0.0, 1.0, 1.0))
