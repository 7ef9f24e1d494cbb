"""The training ingredients a :class:`TrainConfig` asks for, built in one place.

The loop passes them to :class:`~mobilecnn.train.step.TrainStep`: the loss, the per-image
augmentation policy and random erasing (inside ``BatchAugment``), Mixup/CutMix and the teacher.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..data.randaugment import RandAugment, RandomErasing, TrivialAugmentWide
from .config import TrainConfig
from .mixup import MixupCutmix, soft_target_cross_entropy

__all__ = ["Ingredients", "build_ingredients"]


@dataclass
class Ingredients:
    """What a config's augmentation, mixing and distillation options turn into."""

    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    auto_augment: RandAugment | TrivialAugmentWide | None = None
    erasing: RandomErasing | None = None
    mix: MixupCutmix | None = None
    teacher: nn.Module | None = None


def build_ingredients(config: TrainConfig, num_classes: int, classes: Sequence[str],
                      device: torch.device) -> Ingredients:
    """The loss and the optional ingredients of ``config`` (teacher loaded onto ``device``)."""
    mixing = config.mixup_alpha > 0 or config.cutmix_alpha > 0
    mix = None
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    if mixing:
        if config.batch_size < 2:
            raise ValueError("mixup/cutmix need a batch of at least 2 images to mix; raise "
                             "--batch-size or set --mixup-alpha 0 --cutmix-alpha 0")
        mix = MixupCutmix(num_classes, mixup_alpha=config.mixup_alpha,
                          cutmix_alpha=config.cutmix_alpha, prob=config.mix_prob,
                          switch_prob=config.mix_switch_prob,
                          label_smoothing=config.label_smoothing)
        criterion = soft_target_cross_entropy
    else:
        criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    policy: RandAugment | TrivialAugmentWide | None = None
    if config.auto_augment == "randaugment":
        policy = RandAugment(num_ops=config.randaugment_ops,
                             magnitude=config.randaugment_magnitude)
    elif config.auto_augment == "trivialaugment":
        policy = TrivialAugmentWide()
    erasing = RandomErasing(prob=config.random_erasing) if config.random_erasing > 0 else None
    teacher = None
    if config.teacher is not None:
        from .distill import load_teacher

        teacher = load_teacher(config.teacher, num_classes, device, classes=classes)
        if config.channels_last:
            teacher.to(memory_format=torch.channels_last)
    return Ingredients(criterion, policy, erasing, mix, teacher)
