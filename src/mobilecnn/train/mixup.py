"""Mixup and CutMix per batch, soft targets and the soft-target cross-entropy.

Mixup (Zhang et al. 2018) blends each image with another of the batch; CutMix (Yun et al. 2019)
pastes a rectangle of the other image. Either way the targets become the same mix of the two
one-hot labels, with label smoothing folded in. The per-batch choices follow timm's ``Mixup``
(``mode="batch"``): with both alphas > 0 CutMix is chosen with ``switch_prob``, mixing happens
with probability ``prob``, the partner of image ``i`` is image ``N - 1 - i`` (the batch
flipped), and the CutMix weight is corrected to the pasted area after clipping the box.
"""

from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F

__all__ = ["MixupCutmix", "smooth_one_hot", "soft_target_cross_entropy"]


def smooth_one_hot(labels: torch.Tensor, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
    """Float targets ``N x num_classes``: ``1 - smoothing + smoothing / K`` on the label,
    ``smoothing / K`` elsewhere (the targets ``nn.CrossEntropyLoss(label_smoothing=...)``
    uses)."""
    off = smoothing / num_classes
    targets = torch.full((labels.shape[0], num_classes), off, device=labels.device)
    return targets.scatter_(1, labels.long().view(-1, 1), 1.0 - smoothing + off)


def soft_target_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``-sum(targets * log_softmax(logits))``, computed in float32."""
    return torch.sum(-targets * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()


class MixupCutmix:
    """Mix a float batch and its labels: ``(inputs, labels) -> (mixed inputs, soft targets)``.

    Args:
        num_classes: classes of the labels.
        mixup_alpha: Beta(alpha, alpha) for the Mixup weight; 0 turns Mixup off (timm's
            ImageNet recipes use 0.1-0.8).
        cutmix_alpha: Beta(alpha, alpha) for the CutMix area; 0 turns CutMix off (usually 1.0).
        prob: probability that a batch is mixed at all.
        switch_prob: with both alphas > 0, the probability of CutMix instead of Mixup.
        label_smoothing: folded into the soft targets.

    Random choices come from ``generator`` (a CPU ``torch.Generator``; the same state gives
    the same mix on every device); the mixing itself runs on the batch's device.
    """

    def __init__(self, num_classes: int, mixup_alpha: float = 0.8, cutmix_alpha: float = 1.0,
                 prob: float = 1.0, switch_prob: float = 0.5,
                 label_smoothing: float = 0.1) -> None:
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        for name, value in (("mixup_alpha", mixup_alpha), ("cutmix_alpha", cutmix_alpha)):
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be >= 0 (0 = off), got {value!r}")
        if mixup_alpha == 0 and cutmix_alpha == 0:
            raise ValueError("mixup_alpha and cutmix_alpha are both 0: nothing to mix; set one "
                             "of them > 0 or do not use MixupCutmix")
        for name, value in (("prob", prob), ("switch_prob", switch_prob)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        self.num_classes = num_classes
        self.mixup_alpha = float(mixup_alpha)
        self.cutmix_alpha = float(cutmix_alpha)
        self.prob = float(prob)
        self.switch_prob = float(switch_prob)
        self.label_smoothing = float(label_smoothing)

    def __repr__(self) -> str:
        return (f"MixupCutmix(num_classes={self.num_classes}, mixup_alpha={self.mixup_alpha}, "
                f"cutmix_alpha={self.cutmix_alpha}, prob={self.prob}, "
                f"switch_prob={self.switch_prob}, label_smoothing={self.label_smoothing})")

    def sample(self, generator: torch.Generator | None = None,
               ) -> tuple[float, bool, tuple[float, float]]:
        """One batch's choice: ``(lam, use_cutmix, (centre_y, centre_x) in [0, 1))``.

        ``lam`` is the weight of the batch itself (1.0 = not mixed). All draws come from one
        seed taken from ``generator``, so every batch advances it by the same amount.
        """
        device = generator.device if generator is not None else torch.device("cpu")
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=device))
        rng = random.Random(seed)
        mix = rng.random() < self.prob
        use_cutmix = self.cutmix_alpha > 0 and (
            self.mixup_alpha == 0 or rng.random() < self.switch_prob)
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        lam = rng.betavariate(alpha, alpha)
        centre = (rng.random(), rng.random())
        return (lam if mix else 1.0), use_cutmix and mix, centre

    def __call__(self, inputs: torch.Tensor, labels: torch.Tensor,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mixed float inputs N x C x H x W, soft targets N x num_classes)``."""
        if inputs.dim() != 4 or not inputs.is_floating_point():
            raise ValueError(f"MixupCutmix expects a float batch N x C x H x W (after "
                             f"normalization), got {inputs.dtype} {tuple(inputs.shape)}")
        if inputs.shape[0] < 2:
            raise ValueError(f"mixup/cutmix need a batch of at least 2 images to mix, got "
                             f"{inputs.shape[0]}; raise the batch size or turn mixing off")
        if labels.shape[0] != inputs.shape[0]:
            raise ValueError(f"{inputs.shape[0]} images but {labels.shape[0]} labels")
        lam, use_cutmix, centre = self.sample(generator)
        partner = inputs.flip(0)
        if use_cutmix:
            height, width = inputs.shape[-2:]
            top, bottom, left, right = _cutmix_box(height, width, lam, centre)
            mixed = inputs.clone()
            mixed[:, :, top:bottom, left:right] = partner[:, :, top:bottom, left:right]
            lam = 1.0 - (bottom - top) * (right - left) / (height * width)
        elif lam < 1.0:
            mixed = inputs.mul(lam).add_(partner, alpha=1.0 - lam)
        else:
            mixed = inputs
        targets = smooth_one_hot(labels, self.num_classes, self.label_smoothing)
        if lam < 1.0:
            targets = targets.mul(lam).add_(targets.flip(0), alpha=1.0 - lam)
        return mixed, targets


def _cutmix_box(height: int, width: int, lam: float,
                centre: tuple[float, float]) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` of a box with area ``(1 - lam) * H * W`` around
    ``centre`` (fractions of the image), clipped to the image."""
    ratio = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy, cx = int(centre[0] * height), int(centre[1] * width)
    top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
    left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
    return top, bottom, left, right
