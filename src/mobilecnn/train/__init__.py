"""Training and evaluation: ``TrainConfig`` + ``train(config)``, checkpoints, metrics, DDP.

>>> from mobilecnn.train import TrainConfig, train          # doctest: +SKIP
>>> result = train(TrainConfig(data="demo", epochs=5))      # doctest: +SKIP
"""

from __future__ import annotations

from .batchnorm_stats import recalibrate_batchnorm, recalibrate_checkpoint
from .checkpoints import (
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    load_model,
    save_checkpoint,
)
from .config import TrainConfig, demo_config, fit_recipe_config, recipe_config
from .distill import distillation_loss, load_teacher, parse_teacher_spec
from .ema import ModelEma, ema_decay_at
from .evaluation import evaluate
from .finetune import layerwise_lr_groups, load_init
from .loop import TrainingDiverged, TrainingInterrupted, TrainResult, train
from .metrics import SplitMetrics, topk_correct
from .mixup import MixupCutmix, smooth_one_hot, soft_target_cross_entropy
from .precision import autocast_dtype
from .recipes import RECIPES, Recipe, get_recipe

__all__ = [
    "RECIPES",
    "Checkpoint",
    "CheckpointError",
    "MixupCutmix",
    "ModelEma",
    "Recipe",
    "SplitMetrics",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "TrainingInterrupted",
    "autocast_dtype",
    "demo_config",
    "distillation_loss",
    "ema_decay_at",
    "evaluate",
    "fit_recipe_config",
    "get_recipe",
    "layerwise_lr_groups",
    "load_init",
    "load_teacher",
    "parse_teacher_spec",
    "recalibrate_batchnorm",
    "recalibrate_checkpoint",
    "recipe_config",
    "smooth_one_hot",
    "soft_target_cross_entropy",
    "load_checkpoint",
    "load_model",
    "save_checkpoint",
    "topk_correct",
    "train",
]
