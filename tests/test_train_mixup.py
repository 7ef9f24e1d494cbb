"""Mixup/CutMix: targets, boxes, switch probability, determinism and the batch-of-1 error."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mobilecnn.train import MixupCutmix, smooth_one_hot, soft_target_cross_entropy


def test_soft_targets_match_label_smoothing_cross_entropy() -> None:
    logits = torch.randn(8, 5)
    labels = torch.randint(0, 5, (8,))
    targets = smooth_one_hot(labels, 5, 0.1)
    torch.testing.assert_close(targets.sum(1), torch.ones(8))
    torch.testing.assert_close(soft_target_cross_entropy(logits, targets),
                               F.cross_entropy(logits, labels, label_smoothing=0.1))


def test_mixup_blends_images_and_targets_alike() -> None:
    mix = MixupCutmix(4, mixup_alpha=1.0, cutmix_alpha=0.0, label_smoothing=0.0)
    inputs = torch.randn(6, 3, 8, 8)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    mixed, targets = mix(inputs, labels, torch.Generator().manual_seed(0))
    lam = float(targets[0, 0])  # label 0 mixed with partner label 1
    assert 0 < lam < 1
    torch.testing.assert_close(mixed, lam * inputs + (1 - lam) * inputs.flip(0))
    torch.testing.assert_close(targets[0], torch.tensor([lam, 1 - lam, 0.0, 0.0]))


def test_cutmix_pastes_a_box_and_weights_by_its_area() -> None:
    mix = MixupCutmix(3, mixup_alpha=0.0, cutmix_alpha=1.0, label_smoothing=0.0)
    inputs = torch.stack([torch.full((1, 10, 10), float(i)) for i in range(4)])
    labels = torch.tensor([0, 1, 2, 0])
    for seed in range(5):
        mixed, targets = mix(inputs, labels, torch.Generator().manual_seed(seed))
        pasted = (mixed[0] == 3.0).float().mean()  # image 0's partner is image 3
        assert torch.all(torch.isin(mixed[0], torch.tensor([0.0, 3.0])))
        torch.testing.assert_close(targets[1, 1] + targets[1, 2], torch.tensor(1.0))
        torch.testing.assert_close(targets[1, 2], pasted)  # label weight = pasted area


def test_switch_probability_and_prob() -> None:
    inputs = torch.randn(4, 3, 16, 16)
    labels = torch.arange(4)
    generator = torch.Generator().manual_seed(0)
    mix = MixupCutmix(4, mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5)
    kinds = [mix.sample(generator)[1] for _ in range(400)]
    assert 150 < sum(kinds) < 250
    never = MixupCutmix(4, prob=0.0)
    mixed, targets = never(inputs, labels, generator)
    assert mixed is inputs
    torch.testing.assert_close(targets, smooth_one_hot(labels, 4, 0.1))


def test_deterministic_for_a_generator_state() -> None:
    mix = MixupCutmix(10)
    inputs, labels = torch.randn(8, 3, 8, 8), torch.randint(0, 10, (8,))
    a = mix(inputs, labels, torch.Generator().manual_seed(5))
    b = mix(inputs, labels, torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_one_line_errors() -> None:
    mix = MixupCutmix(10)
    with pytest.raises(ValueError, match="at least 2 images") as caught:
        mix(torch.randn(1, 3, 8, 8), torch.tensor([1]))
    assert "\n" not in str(caught.value)
    with pytest.raises(ValueError, match="both 0"):
        MixupCutmix(10, mixup_alpha=0.0, cutmix_alpha=0.0)
    with pytest.raises(ValueError, match="float batch"):
        mix(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.tensor([0, 1]))
