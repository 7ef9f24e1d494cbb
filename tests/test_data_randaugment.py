"""RandAugment, TrivialAugmentWide and RandomErasing on batches: per-image, seeded, exact ops."""

from __future__ import annotations

import math

import pytest
import torch

from mobilecnn.data import (
    AUGMENT_OPS,
    BatchAugment,
    RandAugment,
    RandomErasing,
    TrivialAugmentWide,
    apply_op,
)


def batch(count: int = 16, size: int = 24, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, 3, size, size), dtype=torch.uint8, generator=generator)


@pytest.mark.parametrize("policy", [RandAugment(), TrivialAugmentWide()], ids=repr)
def test_shape_dtype_device_and_determinism(policy: RandAugment | TrivialAugmentWide) -> None:
    images = batch()
    first = policy(images, torch.Generator().manual_seed(3))
    again = policy(images, torch.Generator().manual_seed(3))
    other = policy(images, torch.Generator().manual_seed(4))
    assert first.shape == images.shape and first.dtype == torch.uint8
    assert first.device == images.device
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    floats = policy(images.float(), torch.Generator().manual_seed(3))
    assert floats.dtype == torch.float32 and floats.shape == images.shape


def test_each_image_gets_its_own_ops() -> None:
    # the same image repeated: a per-batch policy would change all copies alike
    images = batch(1).expand(32, -1, -1, -1).contiguous()
    out = TrivialAugmentWide()(images, torch.Generator().manual_seed(0))
    distinct = {tuple(image.flatten()[:200].tolist()) for image in out}
    assert len(distinct) > 8
    out = RandAugment(num_ops=2, magnitude=9)(images, torch.Generator().manual_seed(0))
    assert len({tuple(image.flatten()[:200].tolist()) for image in out}) > 8


@pytest.mark.parametrize("op", ["shear_x", "shear_y", "translate_x", "translate_y", "rotate",
                                "brightness", "color", "contrast", "sharpness", "identity"])
def test_magnitude_zero_is_identity(op: str) -> None:
    images = batch(4)
    assert torch.equal(apply_op(images, op, 0.0), images)


def test_randaugment_magnitude_zero_changes_only_magnitude_free_ops() -> None:
    # at bin 0 the signed ops are identities; posterize keeps 8 bits; solarize (threshold 255)
    # and autocontrast/equalize are the only ones left that change pixels
    images = batch(64)
    out = RandAugment(num_ops=1, magnitude=0)(images, torch.Generator().manual_seed(1))
    changed = (out != images).flatten(1).any(1)
    assert 0 < int(changed.sum()) < 64


def test_ops_match_torchvision_per_image() -> None:
    functional = pytest.importorskip("torchvision.transforms.v2.functional",
                                     reason="torchvision is the reference")
    images = batch(6, 20)
    cases = {
        "brightness": (0.5, lambda im: functional.adjust_brightness(im, 1.5)),
        "color": (0.5, lambda im: functional.adjust_saturation(im, 1.5)),
        "contrast": (-0.5, lambda im: functional.adjust_contrast(im, 0.5)),
        "posterize": (3, lambda im: functional.posterize(im, 3)),
        "solarize": (128, lambda im: functional.solarize(im, 128)),
        "equalize": (0, functional.equalize),
        "rotate": (20.0, lambda im: functional.rotate(im, 20.0)),
        "translate_x": (5.7, lambda im: functional.affine(im, angle=0.0, translate=[5, 0],
                                                          scale=1.0, shear=[0.0, 0.0])),
    }
    for op, (magnitude, reference) in cases.items():
        ours = apply_op(images, op, magnitude)
        theirs = torch.stack([reference(image) for image in images])
        assert torch.equal(ours, theirs), op
    # sharpness and autocontrast: the same up to rounding of one grey level
    for op, magnitude, reference in (
        ("sharpness", 0.7, lambda im: functional.adjust_sharpness(im, 1.7)),
        ("autocontrast", 0, functional.autocontrast),
    ):
        difference = apply_op(images, op, magnitude).int() - torch.stack(
            [reference(image) for image in images]).int()
        assert difference.abs().max() <= 1, op
    # shears: nearest-neighbour sampling may round the other way where a source coordinate
    # falls exactly between two pixels (float32 grids computed differently)
    for op, shear in (("shear_x", [math.degrees(math.atan(0.2)), 0.0]),
                      ("shear_y", [0.0, math.degrees(math.atan(0.2))])):
        theirs = torch.stack([functional.affine(image, angle=0.0, translate=[0, 0], scale=1.0,
                                                shear=shear, center=[0, 0]) for image in images])
        differing = (apply_op(images, op, 0.2) != theirs).float().mean()
        assert differing < 0.05, op


def test_per_image_magnitudes() -> None:
    images = batch(2)
    out = apply_op(images, "brightness", torch.tensor([0.0, -1.0]))
    assert torch.equal(out[0], images[0]) and int(out[1].max()) == 0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="magnitude"):
        RandAugment(magnitude=31)
    with pytest.raises(ValueError, match="num_ops"):
        RandAugment(num_ops=0)
    with pytest.raises(ValueError, match="op must be one of"):
        apply_op(batch(1), "blur", 1.0)
    with pytest.raises(ValueError, match="channels"):
        RandAugment()(torch.zeros(2, 4, 8, 8, dtype=torch.uint8))
    assert len(AUGMENT_OPS) == 14


def test_random_erasing() -> None:
    inputs = torch.randn(64, 3, 16, 16)
    erasing = RandomErasing(prob=0.5, mode="const")
    out = erasing(inputs, torch.Generator().manual_seed(0))
    assert torch.equal(out, erasing(inputs, torch.Generator().manual_seed(0)))
    erased = (out == 0).flatten(1).any(1)
    assert 15 < int(erased.sum()) < 50  # about half the images
    untouched = ~erased
    assert torch.equal(out[untouched], inputs[untouched])
    # each erased area is one rectangle covering all channels
    zeros = (out[erased] == 0).all(1)
    rows, cols = zeros.any(2), zeros.any(1)
    assert torch.equal(zeros.sum((1, 2)), rows.sum(1) * cols.sum(1))
    pixel = RandomErasing(prob=1.0, mode="pixel")(inputs, torch.Generator().manual_seed(0))
    assert (pixel != inputs).flatten(1).any(1).float().mean() > 0.9
    assert RandomErasing(prob=0.0)(inputs, torch.Generator()).equal(inputs)
    with pytest.raises(ValueError, match="normalized float"):
        erasing(batch(2))


@pytest.mark.parametrize("crop", ["pad", "resized"])
def test_batch_augment_with_policy_and_erasing(crop: str) -> None:
    images = batch(8, 32)
    plain = BatchAugment(train=True, crop=crop)
    strong = BatchAugment(train=True, crop=crop, auto_augment=TrivialAugmentWide(),
                          erasing=RandomErasing(prob=0.5))
    out = strong(images, torch.Generator().manual_seed(0))
    assert out.shape == (8, 3, 32, 32) and out.dtype == torch.float32
    assert torch.equal(out, strong(images, torch.Generator().manual_seed(0)))
    assert not torch.equal(out, plain(images, torch.Generator().manual_seed(0)))
    # evaluation ignores the policy and the erasing
    evaluation = BatchAugment(train=False, crop="none", auto_augment=RandAugment(),
                              erasing=RandomErasing(prob=1.0))
    assert torch.equal(evaluation(images), BatchAugment(train=False, crop="none")(images))
    assert "TrivialAugmentWide" in repr(strong)
