"""Building a run's parts: the data loader, the model (new, resumed, initialized or
fake-quantized) and everything one optimizer step needs (:class:`~.step.TrainStep`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..models import MobileNetBase, create_model
from ..models.freeze import freeze_backbone
from .config import TrainConfig
from .distributed import DistContext
from .finetune import layerwise_lr_groups, load_init
from .ingredients import build_ingredients
from .optim import build_optimizer
from .precision import autocast_dtype
from .resume import ResumePoint, check_resume_compatible, resumed_model
from .schedule import SchedulePlan, build_scheduler, plan_schedule
from .splits import DataSplit, load_splits
from .step import TrainStep

__all__ = ["build_model", "build_step", "load_data"]


def load_data(config: TrainConfig, ctx: DistContext, train_split: DataSplit | None,
               val_split: DataSplit | None, show_progress: bool, build_caches: bool = True
               ) -> tuple[DataSplit, DataSplit, Path | None, Any]:
    """The splits (loaded from ``config.data`` unless given) and this process's batch loader."""
    from ..data import CachedBatchLoader

    root: Path | None = None
    if train_split is None or val_split is None:
        train_split, val_split, root = load_splits(config, ctx, progress=show_progress,
                                                   build_caches=build_caches)
    if len(train_split.labels) < config.batch_size:
        raise ValueError(f"the training split has {len(train_split.labels)} images, fewer than "
                         f"one batch ({config.batch_size}); lower --batch-size")
    loader = CachedBatchLoader(train_split.images, train_split.labels,
                               config.batch_size // ctx.world_size, shuffle=True,
                               drop_last=True, seed=config.seed, rank=ctx.rank,
                               world_size=ctx.world_size)
    return train_split, val_split, root, loader


def build_model(config: TrainConfig, point: ResumePoint | None, classes: list[str],
                image_size: int, world_size: int
                ) -> tuple[Any, dict[str, Any], str | None]:
    """The model to train: the checkpoint's when resuming (after checking the run is
    compatible), else new, optionally initialized (``--init``) and fake-quantized (``--qat``).
    Returns it with its kwargs and the init message."""
    model_kwargs: dict[str, Any] = {"num_classes": len(classes), "width_mult": config.width,
                                    "total_stride": config.total_stride,
                                    "dropout": config.dropout}
    if point is not None:
        check_resume_compatible(point, config, model_kwargs, classes, image_size, world_size)
        return resumed_model(point, config, model_kwargs), model_kwargs, None
    model: Any = create_model(config.model, **model_kwargs)
    init_message = load_init(model, config.init, classes) if config.init is not None else None
    if config.qat:
        from ..deploy.qat import prepare_qat

        model = prepare_qat(model)
    return model, model_kwargs, init_message


def build_step(config: TrainConfig, model: MobileNetBase, steps_per_epoch: int, classes: list[str],
                device: torch.device, rank: int, mean: list[float],
                std: list[float]) -> tuple[TrainStep, SchedulePlan]:
    """Everything one optimizer step needs, on ``device``, and the learning-rate plan."""
    from ..data import BatchAugment

    if config.freeze_backbone:
        freeze_backbone(model, freeze_norm=False)
    model.to(device)
    model.to(memory_format=torch.channels_last if config.channels_last
             else torch.contiguous_format)
    plan = plan_schedule(config, steps_per_epoch)
    groups = (layerwise_lr_groups(model, config.effective_weight_decay, config.layer_lr_decay)
              if config.layer_lr_decay != 1.0 else None)
    optimizer = build_optimizer(model, config.optimizer, config.peak_lr,
                                config.effective_weight_decay, config.momentum, groups=groups)
    dtype = autocast_dtype(config.precision, device)
    generator = torch.Generator()  # CPU: the same augmentation stream on every device
    generator.manual_seed(config.seed * 1000 + rank)
    ingredients = build_ingredients(config, len(classes), classes, device)
    step = TrainStep(
        model=model, forward=model, optimizer=optimizer,
        scheduler=build_scheduler(optimizer, plan.total_steps, plan.warmup_steps),
        scaler=torch.amp.GradScaler(device.type, enabled=dtype == torch.float16),
        criterion=ingredients.criterion,
        augment=BatchAugment(train=True, crop=config.crop, flip=config.flip, mean=mean, std=std,
                             auto_augment=ingredients.auto_augment,
                             erasing=ingredients.erasing),
        generator=generator, dtype=dtype, device=device, channels_last=config.channels_last,
        grad_clip=config.grad_clip, skip_nonfinite=config.skip_nonfinite,
        mix=ingredients.mix, teacher=ingredients.teacher, distill_alpha=config.distill_alpha,
        distill_temperature=config.distill_temperature)
    return step, plan
