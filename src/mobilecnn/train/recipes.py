"""Named training recipes: settings as data, each with its rationale and the numbers it aims at.

A recipe only fills in :class:`~mobilecnn.train.TrainConfig` fields (through
:func:`~mobilecnn.train.config.recipe_config`); options given explicitly
(on the command line or as keyword arguments) override it. ``mobilecnn train --recipe NAME
--print-config`` shows the resolved settings.

Each recipe is designed for a run (:attr:`Recipe.design_epochs` epochs on
:attr:`Recipe.design_images` images at batch :attr:`Recipe.design_batch_size`).
:func:`fit_to_run` scales what must follow the run it is given - the EMA decay keeps the same
averaging window relative to the number of steps, the warmup the same share of the epochs -
and says in one line when the run is far shorter, or the data far smaller, than designed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = ["RECIPES", "FAR_SMALLER", "Recipe", "RecipeFit", "count_training_images",
           "fit_to_run", "get_recipe"]

FAR_SMALLER = 0.25
"""A run with less than this share of a recipe's designed epochs or images gets a note."""
MIN_EMA_DECAY = 0.9
"""The scaled EMA decay is never below this (a 10-step average)."""


@dataclass(frozen=True)
class Recipe:
    """A named set of :class:`~mobilecnn.train.TrainConfig` values and why they were chosen."""

    name: str
    summary: str
    rationale: str
    aims: str
    """The published figures the recipe is aiming at, with their sources."""
    settings: Mapping[str, Any] = field(default_factory=dict)
    sources: tuple[str, ...] = ()
    design_images: int = 100_000
    """Training images of the data set the recipe was designed for (TinyImageNet)."""
    design_batch_size: int = 256

    @property
    def design_epochs(self) -> int:
        """The epochs the recipe was designed for (its ``epochs`` setting)."""
        return int(self.settings.get("epochs", 100))

    @property
    def design_steps(self) -> int:
        """Optimizer steps of the run the recipe was designed for."""
        return self.design_epochs * max(1, self.design_images // self.design_batch_size)


_TINYIMAGENET = Recipe(
    name="tinyimagenet",
    summary="MobileNetV2 (total_stride=16) from scratch on TinyImageNet: the default recipe, "
            "100 epochs, with EMA and CutMix/Mixup.",
    rationale=(
        "The defaults (SGD + Nesterov, 0.1 per 256, 3 warmup epochs + cosine, weight decay 1e-4 "
        "off norm/bias, label smoothing 0.1, random-resized crop + flip) trained longer, because "
        "mixing needs more epochs to pay off; CutMix (alpha 1.0) switched with a light Mixup "
        "(alpha 0.2) as in torchvision's and timm's current ImageNet recipes; an EMA of the "
        "weights (decay 0.9995, a half-life of ~1,400 steps = 3.5 epochs at batch 256) which "
        "usually adds a fraction of a point and removes epoch-to-epoch noise."),
    aims=(
        ">= 60% val top-1 on TinyImageNet with 2.5M parameters: ResNet-18 (11M) at 64x64 "
        "reaches 61.7% plain, 63.9% with Mixup and 65.5% with CutMix after 400 epochs "
        "(OpenMixup benchmarks); published MobileNetV2 from scratch is 48.3%."),
    settings=MappingProxyType({
        "epochs": 100, "ema": True, "ema_decay": 0.9995,
        "mixup_alpha": 0.2, "cutmix_alpha": 1.0, "mix_switch_prob": 0.5,
        "label_smoothing": 0.1, "crop": "resized",
    }),
    sources=(
        "Westlake-AI/openmixup, TinyImageNet benchmarks (ResNet-18, 64x64, 400 epochs)",
        "Yun et al. 2019, CutMix, arXiv:1905.04899",
        "Zhang et al. 2018, mixup, arXiv:1710.09412",
        "timm train.py (--model-ema, --mixup, --cutmix) and torchvision references/classification",
    ),
)

_TINYIMAGENET_STRONG = Recipe(
    name="tinyimagenet-strong",
    summary="The tinyimagenet recipe with torchvision's stronger regularization: "
            "TrivialAugmentWide, random erasing, 200 epochs.",
    rationale=(
        "torchvision's 2021 recipe update (TrivialAugmentWide, random erasing 0.1, Mixup 0.2, "
        "CutMix 1.0, label smoothing 0.1, EMA, longer training) lifted its ImageNet models by "
        "1-5 points; stronger augmentation needs a longer schedule to be repaid, hence 200 "
        "epochs. Add --teacher for distillation from a stronger model when you have one."),
    aims=(
        "above the tinyimagenet recipe: torchvision reports MobileNetV2 ImageNet top-1 71.88% "
        "-> 72.15% and ResNet-50 76.13% -> 80.86% from the recipe update; the larger gain of "
        "bigger models suggests a small one on a 2.5M-parameter model."),
    settings=MappingProxyType({
        "epochs": 200, "ema": True, "ema_decay": 0.9998,
        "mixup_alpha": 0.2, "cutmix_alpha": 1.0, "mix_switch_prob": 0.5,
        "auto_augment": "trivialaugment", "random_erasing": 0.1,
        "label_smoothing": 0.1, "crop": "resized",
    }),
    sources=(
        "Vryniotis 2021, 'How to Train State-Of-The-Art Models Using TorchVision's Latest "
        "Primitives' (pytorch.org blog) and the MobileNet_V2_Weights.IMAGENET1K_V2 recipe",
        "Mueller & Hutter 2021, TrivialAugment, arXiv:2103.10158",
        "Zhong et al. 2020, Random Erasing, arXiv:1708.04896",
    ),
)

_FINETUNE = Recipe(
    name="finetune",
    summary="Fine-tune from ImageNet weights (--init torchvision:PATH.pth): 30 epochs, a tenth "
            "of the from-scratch learning rate, layer-wise lr decay 0.8.",
    rationale=(
        "Transfer is the largest accuracy lever on a 100k-image data set. The small-input model "
        "has exactly the ImageNet model's parameters, so the whole backbone transfers; only the "
        "classifier starts fresh. A lower peak lr (0.01 per 256) with 1 warmup epoch keeps the "
        "pretrained features, layer-wise decay 0.8 lets early (generic) layers move less than "
        "late ones, and 30 epochs suffice because the features are already good. EMA 0.999 "
        "suits the short run. --freeze-backbone trains only the classifier (a linear probe)."),
    aims=(
        "clearly above the from-scratch recipes. TinyImageNet's images come from ImageNet, so "
        "ImageNet weights have seen these classes (report such results as transfer, not as "
        "from-scratch); we found no published figure for MobileNetV2 fine-tuned at 64x64 input "
        "and state none."),
    settings=MappingProxyType({
        "epochs": 30, "lr": 0.01, "warmup_epochs": 1.0, "layer_lr_decay": 0.8,
        "ema": True, "ema_decay": 0.999, "label_smoothing": 0.1, "crop": "resized",
    }),
    sources=(
        "Kornblith et al. 2019, 'Do Better ImageNet Models Transfer Better?', arXiv:1805.08974",
        "Howard & Ruder 2018, ULMFiT (discriminative fine-tuning), arXiv:1801.06146",
    ),
)

RECIPES: Mapping[str, Recipe] = MappingProxyType(
    {recipe.name: recipe for recipe in (_TINYIMAGENET, _TINYIMAGENET_STRONG, _FINETUNE)})
"""Every named recipe by name."""


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; an unknown name raises ``ValueError`` listing the known."""
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown recipe {name!r}; known recipes: "
                         f"{', '.join(RECIPES)}") from None


@dataclass(frozen=True)
class RecipeFit:
    """What :func:`fit_to_run` scaled (``{field: value}``) and its note (None: the run is
    close enough to the recipe's design)."""

    changes: Mapping[str, Any]
    note: str | None


def fit_to_run(recipe: Recipe, *, epochs: int, batch_size: int, train_images: int | None,
               warmup_epochs: float, ema_decay: float, given: frozenset[str] = frozenset()
               ) -> RecipeFit:
    """Scale ``recipe`` to a run of ``epochs`` over ``train_images`` images (None: unknown,
    taken as the designed number) at ``batch_size``; fields in ``given`` are left alone.

    - ``ema_decay``: the EMA averages over ``1 / (1 - decay)`` steps, the same share of the
      run's steps as in the designed run, never more than the recipe's decay nor less than
      :data:`MIN_EMA_DECAY`;
    - ``warmup_epochs``: the same share of the epochs (only ever shortened).
    """
    images = train_images if train_images is not None else recipe.design_images
    steps = epochs * max(1, images // batch_size)
    changes: dict[str, Any] = {}
    if "ema_decay" not in given and steps < recipe.design_steps:
        share = 1.0 / ((1.0 - ema_decay) * recipe.design_steps)
        window = share * steps
        changes["ema_decay"] = round(max(MIN_EMA_DECAY, min(ema_decay, 1.0 - 1.0 / window)), 5)
    if "warmup_epochs" not in given and epochs < recipe.design_epochs:
        changes["warmup_epochs"] = round(warmup_epochs * epochs / recipe.design_epochs, 3)
    short = epochs < FAR_SMALLER * recipe.design_epochs
    small = train_images is not None and train_images < FAR_SMALLER * recipe.design_images
    note = None
    if short or small:
        scaled = ", ".join(f"{key} {value:g}" for key, value in changes.items())
        note = (f"note: recipe {recipe.name} is designed for {recipe.design_epochs} epochs on "
                f"{recipe.design_images:,} images; this run has {epochs} epochs "
                f"({100 * epochs / recipe.design_epochs:.0f}%)"
                + (f" on {images:,} images ({100 * images / recipe.design_images:.1f}%)"
                   if train_images not in (None, recipe.design_images) else "")
                + (f"; scaled {scaled}" if scaled else "")
                + "; its regularization may not pay off in a run this short or small "
                  "(docs/training.md#recipes-that-fit-the-run)")
    return RecipeFit(MappingProxyType(changes), note)


def count_training_images(data: str, demo_images: int | None = None) -> int | None:
    """Training images of ``data``: ``demo_images`` for ``"demo"``, the files under
    ``<data>/train/*/images`` for a TinyImageNet-layout folder, None when it cannot be told."""
    if data == "demo":
        return demo_images
    folder = Path(data).expanduser() / "train"
    if not folder.is_dir():
        return None
    count = 0
    try:
        with os.scandir(folder) as classes:
            for entry in classes:
                images = Path(entry.path) / "images"
                if entry.is_dir() and images.is_dir():
                    with os.scandir(images) as files:
                        count += sum(1 for item in files if item.is_file())
    except OSError:
        return None
    return count or None
