"""Resuming a run: which checkpoint (:func:`open_resume`), is it compatible, what changed, and
putting its state back (:func:`restore`).

Changed options are either applied and recorded (``Checkpoint.resumes`` and config.json) or
refused with a one-line :class:`CheckpointError`; nothing is shown and then ignored. Options
that shape the learning-rate schedule (``epochs``, ``lr``, ``warmup_epochs``, ``weight_decay``,
``momentum``, or a different number of steps per epoch) re-plan it
(:func:`~mobilecnn.train.schedule.resume_plan`): the run continues from the optimizer steps it
has taken, and the learning rate reaches zero with its last step.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..models import create_model
from .checkpoints import Checkpoint, CheckpointError
from .config import TrainConfig
from .run_folder import same_folder
from .schedule import SchedulePlan, plan_schedule, replan_schedule, resume_plan
from .state import RunState

__all__ = [
    "REFUSED_CHANGES",
    "ResumePoint",
    "changed_options",
    "check_resume_compatible",
    "open_resume",
    "restore",
    "resumed_model",
    "saved_config",
]

REFUSED_CHANGES = ("batch_size", "optimizer", "seed")
"""Options a resumed run must keep (with the model options): they change what a step means."""
_NOT_RECORDED = ("progress", "out_dir")  # where the run is, not how it trains


@dataclass(frozen=True)
class ResumePoint:
    """A checkpoint to continue, read once: its file, contents and training config."""

    path: Path
    checkpoint: Checkpoint
    config: TrainConfig


def open_resume(resume: str | os.PathLike[str] | bool | ResumePoint | None,
                out_dir: str | os.PathLike[str]) -> ResumePoint | None:
    """The checkpoint ``resume`` names, read and checked to be resumable; None for no resume.

    ``True`` or ``"last"`` means ``<out_dir>/last.pt`` (which must exist); any other value is
    the checkpoint's path. A :class:`ResumePoint` is returned as it is (already read).
    """
    if resume is None or resume is False:
        return None
    if isinstance(resume, ResumePoint):
        return resume
    if resume is True or str(resume) == "last":
        path = Path(out_dir) / "last.pt"
        if not path.exists():
            raise FileNotFoundError(f"nothing to resume: {path} does not exist; pass --out DIR "
                                    "of the run or --resume PATH, or start without --resume")
    else:
        path = Path(resume)
    checkpoint = Checkpoint.read(path)
    if not checkpoint.resumable:
        raise CheckpointError(path, "holds only weights (no optimizer/config); it cannot be "
                              f"resumed: start a new run from its weights with --init {path}")
    return ResumePoint(path, checkpoint, saved_config(checkpoint, path))


def saved_config(checkpoint: Checkpoint, path: Path) -> TrainConfig:
    """The config a checkpoint was trained with (0.1.0 test-hook keys dropped)."""
    if checkpoint.config is None:
        raise CheckpointError(path, "holds only weights (no optimizer/config); it cannot be "
                              f"resumed: start a new run from its weights with --init {path}")
    try:
        return TrainConfig.from_dict(dict(checkpoint.config))
    except (TypeError, ValueError) as error:
        raise CheckpointError(path, f"holds a config this mobilecnn cannot read: {error}") \
            from None


def check_resume_compatible(point: ResumePoint, config: TrainConfig,
                            model_kwargs: dict[str, Any], classes: list[str],
                            image_size: int, world_size: int) -> None:
    """Refuse what cannot be resumed: another model, classes, image size, batch, optimizer or
    seed."""
    checkpoint, path, old = point.checkpoint, point.path, point.config
    if checkpoint.model_name != config.model or checkpoint.model_kwargs != model_kwargs:
        raise CheckpointError(
            path,
            f"was trained as {checkpoint.model_name} {checkpoint.model_kwargs}, but this "
            f"run asks for {config.model} {model_kwargs}; use the same model options to "
            "resume, or start a new run (without --resume) in another --out folder",
        )
    if list(checkpoint.classes) != list(classes):
        raise CheckpointError(path, "was trained on different classes than this data set")
    if checkpoint.image_size is not None and checkpoint.image_size != image_size:
        raise CheckpointError(path, f"was trained on {checkpoint.image_size}px images, this "
                              f"data has {image_size}px; resume with the same --image-size")
    for key in REFUSED_CHANGES:
        if getattr(old, key) != getattr(config, key):
            raise CheckpointError(path, f"was trained with {key}={getattr(old, key)!r}, this "
                                  f"run has {key}={getattr(config, key)!r}; resume with the "
                                  "same value")
    if checkpoint.world_size != world_size:
        print(f"note: resuming a {checkpoint.world_size}-process run with {world_size} "
              "processes: same global batch, but the data order differs from the original run",
              file=sys.stderr)


def resumed_model(point: ResumePoint, config: TrainConfig, model_kwargs: dict[str, Any]
                  ) -> Any:
    """The model a resume continues: the checkpoint's (fake-quantized for ``--qat``)."""
    if not config.qat:
        return point.checkpoint.build_model(point.path)
    from ..deploy.qat import prepare_qat

    model = prepare_qat(create_model(config.model, **model_kwargs))
    try:
        model.load_state_dict(point.checkpoint.model)
    except (RuntimeError, KeyError) as error:
        detail = " ".join(str(error).split())[:200]
        raise CheckpointError(point.path, f"is not a --qat run's checkpoint ({detail}); resume "
                              "with the run's own --qat setting") from None
    return model


def changed_options(old: TrainConfig, new: TrainConfig) -> dict[str, list[Any]]:
    """``{option: [old, new]}`` for every option that differs (not ``progress``, ``out_dir``)."""
    before, after = old.to_dict(), new.to_dict()
    return {key: [before[key], after[key]] for key in after
            if key not in _NOT_RECORDED and before.get(key) != after[key]}


def restore(run: RunState, point: ResumePoint) -> None:
    """Put the checkpoint's training state into ``run``, on the schedule it now follows."""
    checkpoint, config = point.checkpoint, run.config
    steps_per_epoch = run.plan.steps_per_epoch
    saved = (SchedulePlan.from_dict(checkpoint.schedule)
             or plan_schedule(point.config, steps_per_epoch))
    start_epoch, start_step = checkpoint.epoch, checkpoint.step_in_epoch
    # a different epoch length (the data changed): the interrupted epoch starts over
    restarted = bool(start_step) and (saved.steps_per_epoch != steps_per_epoch
                                      or start_step >= steps_per_epoch)
    if restarted:
        start_step = 0
    needed = start_epoch + (1 if start_step or restarted else 0)
    if config.epochs < needed:
        within = (f", step {checkpoint.step_in_epoch} of epoch {start_epoch + 1}"
                  if checkpoint.step_in_epoch else "")
        raise CheckpointError(point.path, f"has already trained {checkpoint.global_step} steps "
                              f"(epoch {checkpoint.epoch}{within}); --epochs must be at least "
                              f"{needed}")
    if needed == config.epochs == start_epoch and not same_folder(run.out_dir, point.path.parent):
        raise CheckpointError(point.path, f"has finished its {start_epoch} epochs: resuming it in "
                              f"{run.out_dir} would train nothing and write no checkpoint; pass "
                              f"--epochs N with N > {start_epoch} to train it longer there")
    steps_left = (config.epochs - start_epoch) * steps_per_epoch - start_step
    run.plan = resume_plan(config, saved, steps_per_epoch, checkpoint.global_step, steps_left)
    _load_states(run, point, replan=run.plan != saved)
    run.history = list(checkpoint.history)
    run.best_top1 = float(checkpoint.best_val_top1)
    run.start_epoch, run.start_step = start_epoch, start_step
    run.global_step = run.steps_at_start = checkpoint.global_step
    run.resumes = list(checkpoint.resumes)
    if start_step and checkpoint.partial_train is not None:
        partial = checkpoint.partial_train.to(torch.float64).flatten()
        run.partial = torch.cat([partial, torch.zeros(4 - partial.numel(),
                                                      dtype=torch.float64)])[:4]
    _announce(run, point, saved, restarted)


def _load_states(run: RunState, point: ResumePoint, replan: bool) -> None:
    """Optimizer, scheduler (or a re-planned one), scaler, RNG streams and EMA weights."""
    checkpoint, step = point.checkpoint, run.step
    try:
        step.optimizer.load_state_dict(checkpoint.optimizer or {})
        if replan:
            step.scheduler = replan_schedule(step.optimizer, run.plan, checkpoint.global_step)
        else:
            step.scheduler.load_state_dict(checkpoint.scheduler or {})
        if checkpoint.scaler:
            step.scaler.load_state_dict(checkpoint.scaler)
        rng = checkpoint.rng or {}
        torch.set_rng_state(rng["torch"])
        if run.ctx.device.type == "cuda" and rng.get("cuda") is not None:
            torch.cuda.set_rng_state(rng["cuda"], run.ctx.device)
        if step.generator is not None and run.ctx.rank < len(rng["augment"]):
            step.generator.set_state(rng["augment"][run.ctx.rank])
        if run.ema_model is not None and checkpoint.ema_state is not None:
            run.ema_model.load_state_dict(checkpoint.ema_state)
    except (KeyError, ValueError, RuntimeError, TypeError, IndexError) as error:
        raise CheckpointError(point.path, f"training state cannot be restored: {error}") \
            from None
    if run.ema is not None and checkpoint.ema_state is not None:
        run.ema.updates = checkpoint.global_step  # one EMA update per optimizer step


def _announce(run: RunState, point: ResumePoint, saved: SchedulePlan, restarted: bool) -> None:
    """Say where the run continues, and record and print what changed."""
    run.say(f"resumed from {point.path} at epoch {run.start_epoch + 1}"
            + (f", step {run.start_step}" if run.start_step else ""))
    if restarted:
        run.say(f"note: the data now gives {run.plan.steps_per_epoch} steps per epoch (the "
                f"checkpoint's run had {saved.steps_per_epoch}): epoch {run.start_epoch + 1} "
                "starts over")
    changes = changed_options(point.config, run.config)
    replanned = (f"learning-rate schedule re-planned: {run.plan.total_steps} steps, "
                 f"continuing at step {run.global_step}") if run.plan != saved else ""
    if changes:
        run.resumes.append({"global_step": run.global_step, "changed": changes})
        described = ", ".join(f"{key} {old!r} -> {new!r}" for key, (old, new) in changes.items())
        run.say(f"applying changed options: {described}"
                + (f" ({replanned})" if replanned else ""))
    elif replanned:
        run.say(f"note: {replanned}")
