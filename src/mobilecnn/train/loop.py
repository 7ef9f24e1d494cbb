"""The training run: ``train(config) -> TrainResult``.

Read top to bottom, :func:`_train` is one run: what to resume, the data, the model and the
step's parts (built in :mod:`~mobilecnn.train.setup`), restoring a checkpoint, then per epoch
:func:`_train_epoch` (the steps) and :func:`_end_epoch` (reduce, evaluate, check, checkpoint,
log), then :func:`_finish`. The step itself is :func:`mobilecnn.train.step.train_step`;
evaluation, resume rules, signals and DDP helpers live in their own modules.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..fileio import clean_stale_temps, lock_folder, write_text_atomic
from .batchnorm_stats import fit_batchnorm_to_weights
from .checkpoints import Checkpoint, CheckpointError
from .config import TrainConfig
from .distributed import (
    DistContext,
    all_reduce_flag,
    broadcast_buffers,
    cleanup_distributed,
    gather_states,
    gather_strings,
    model_checksum,
    setup_distributed,
)
from .ema import ModelEma
from .evaluation import evaluate, evaluate_during_training
from .metrics import MetricLog, strict_json, write_per_class_csv
from .precision import autocast_dtype, precision_name
from .resume import (
    changed_options,
    plan_schedule,
    replan_schedule,
    resolve_resume_path,
)
from .setup import build_model, build_step, load_data
from .signals import StopFlag, TrainHooks
from .splits import DataSplit, load_splits
from .step import TrainStep, all_finite, train_step

__all__ = [
    "DataSplit",
    "TrainResult",
    "TrainingDiverged",
    "TrainingInterrupted",
    "autocast_dtype",
    "evaluate",
    "load_splits",
    "train",
]

FINITE_CHECK_EVERY = 20
"""Steps between checks that the loss stayed finite (each check is one device sync)."""


@dataclass
class TrainResult:
    """Where a finished run put things, and its figures."""

    out_dir: Path
    last_checkpoint: Path
    best_checkpoint: Path
    metrics_path: Path
    plots: list[Path]
    history: list[dict[str, Any]]
    best_val_top1: float
    rank_checksums: list[str] = field(default_factory=list)
    """SHA-256 of the model state on each process after training (all equal under DDP)."""

    @property
    def final(self) -> dict[str, Any]:
        """The last epoch's metrics row."""
        return self.history[-1]


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM (or the test hook) stopped training after a step; a checkpoint was saved."""

    def __init__(self, checkpoint: Path, epoch: int, step: int) -> None:
        self.checkpoint = checkpoint
        self.epoch = epoch
        self.step = step
        super().__init__(
            f"training interrupted in epoch {epoch + 1} after step {step}; checkpoint saved to "
            f"{checkpoint}; continue with --resume"
        )


class TrainingDiverged(RuntimeError):
    """The loss (or the weights) became NaN/inf; nothing was saved over the good checkpoints."""

    def __init__(self, epoch: int, step: int, last_good: Path | None) -> None:
        self.epoch = epoch
        self.step = step
        self.last_good = last_good
        kept = (f"the last good checkpoint {last_good} is unchanged" if last_good is not None
                else "no checkpoint was written")
        super().__init__(
            f"training diverged: the loss became NaN or infinite in epoch {epoch + 1} (by step "
            f"{step}); {kept}; lower --lr, set --grad-clip, use --precision fp32, or pass "
            "--skip-nonfinite to skip such steps"
        )


@dataclass
class _Run:
    """The state one run carries from epoch to epoch."""

    config: TrainConfig
    ctx: DistContext
    step: TrainStep
    loader: Any
    val_split: Any
    normalize: Any
    model_kwargs: dict[str, Any]
    classes: list[str]
    class_names: list[str]
    image_size: int
    mean: list[float]
    std: list[float]
    plan: dict[str, Any]
    out_dir: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    best_top1: float = -math.inf
    start_epoch: int = 0
    start_step: int = 0
    partial: torch.Tensor = field(default_factory=lambda: torch.zeros(4, dtype=torch.float64))
    global_step: int = 0
    resumes: list[dict[str, Any]] = field(default_factory=list)
    ema_model: nn.Module | None = None
    """A model whose state is saved as ``Checkpoint.ema_state`` (and restored on resume)."""
    ema: ModelEma | None = None

    @property
    def last_path(self) -> Path:
        return self.out_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.out_dir / "best.pt"

    def say(self, message: str) -> None:
        if self.ctx.is_main:
            print(message, flush=True)


def train(
    config: TrainConfig,
    *,
    resume: str | Path | bool | None = None,
    train_split: DataSplit | None = None,
    val_split: DataSplit | None = None,
    _hooks: TrainHooks | None = None,
) -> TrainResult:
    """Train ``config.model`` as ``config`` says; returns where everything went.

    ``resume``: True or ``"last"`` continues from ``<out_dir>/last.pt``; a path continues
    from that checkpoint (changed options are applied and recorded, or refused; a changed
    ``epochs`` re-plans the schedule, see docs/training.md). ``train_split``/``val_split``
    (decoded uint8 images + labels) replace loading ``config.data``. Under ``torchrun`` this
    joins the process group and trains with DistributedDataParallel. Raises
    :class:`TrainingInterrupted` after saving a checkpoint when SIGINT/SIGTERM arrives,
    :class:`TrainingDiverged` (saving nothing) when the loss becomes NaN/inf, and
    :class:`mobilecnn.fileio.FolderLockedError` when another run uses ``out_dir``.
    """
    config.validate()
    ctx = setup_distributed(config.device)
    try:
        # one run per folder: an OS lock that the kernel drops when this process ends
        lock = (lock_folder(config.out_dir, "run folder") if ctx.is_main
                else contextlib.nullcontext())
        with lock:
            return _train(config, ctx, resume, train_split, val_split, _hooks or TrainHooks())
    finally:
        if ctx.distributed:
            cleanup_distributed()


def _train(config: TrainConfig, ctx: DistContext, resume: str | Path | bool | None,
           train_split: DataSplit | None, val_split: DataSplit | None,
           hooks: TrainHooks) -> TrainResult:
    from ..data import TINYIMAGENET_MEAN, TINYIMAGENET_STD, BatchAugment

    out_dir, device = Path(config.out_dir), ctx.device
    # ---- what to resume from: checked before anything is written
    resume_path = resolve_resume_path(resume, out_dir)
    checkpoint = Checkpoint.read(resume_path) if resume_path is not None else None
    if checkpoint is None:
        _refuse_existing_run(out_dir)
    if config.batch_size % ctx.world_size:
        raise ValueError(f"batch_size {config.batch_size} (the global batch) must be divisible "
                         f"by the number of processes ({ctx.world_size})")

    # ---- data
    show_progress = ctx.is_main and (
        config.progress if config.progress is not None else sys.stderr.isatty())
    train_split, val_split, root, loader = load_data(config, ctx, train_split, val_split,
                                                     show_progress)
    mean, std = list(TINYIMAGENET_MEAN), list(TINYIMAGENET_STD)

    # ---- model and the parts of a step
    torch.manual_seed(config.seed)
    classes = list(train_split.classes)
    image_size = int(train_split.images.shape[-1])
    model, model_kwargs, old_config, init_message = build_model(
        config, checkpoint, resume_path, classes, image_size, ctx.world_size)
    step, plan = build_step(config, model, len(loader), classes, device, ctx.rank, mean, std)
    run = _Run(config=config, ctx=ctx, step=step, loader=loader, val_split=val_split,
               normalize=BatchAugment(train=False, crop="none", flip=False, mean=mean, std=std),
               model_kwargs=model_kwargs, classes=classes,
               class_names=list(train_split.class_names), image_size=image_size, mean=mean,
               std=std, plan=plan, out_dir=out_dir)
    if config.ema:
        run.ema = ModelEma(model, decay=config.ema_decay)
        run.ema_model = run.ema.module
        step.after_optimizer_step.append(lambda done: _update_ema(run, done))
    if checkpoint is not None and resume_path is not None and old_config is not None:
        _restore(run, checkpoint, resume_path, old_config)
        if run.ema is not None and checkpoint.ema_state is not None:
            run.ema.updates = checkpoint.global_step  # one EMA update per optimizer step
    if init_message is not None:
        run.say(init_message)
    if ctx.distributed:
        from torch.nn.parallel import DistributedDataParallel

        step.forward = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile:
        step.forward = torch.compile(step.forward)  # type: ignore[assignment]

    # ---- files: the run folder, metrics.jsonl cut back to the checkpoint
    log = MetricLog(out_dir / "metrics.jsonl")
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        clean_stale_temps(out_dir)
        if checkpoint is not None and log.path.exists():
            log.rewrite(run.history)  # drop rows written after the checkpoint we resume from
    run.say(f"training {config.model} width {config.width} (total stride {config.total_stride}) "
            f"on {len(train_split.labels)} images of {len(classes)} classes, {ctx.world_size} "
            f"process(es) on {device.type}, {precision_name(step.dtype)}, global batch "
            f"{config.batch_size}, peak lr {config.peak_lr:g}, {len(loader)} steps/epoch")

    # ---- the epochs
    stop = StopFlag()
    stop.install()
    try:
        for epoch in range(run.start_epoch, config.epochs):
            sums, seconds, images_seen = _train_epoch(run, epoch, stop, hooks, show_progress)
            _end_epoch(run, epoch, sums, seconds, images_seen, log)
            stopping = all_reduce_flag(stop.requested, device) if ctx.distributed else (
                stop.requested)
            if stopping and epoch + 1 < config.epochs:
                raise TrainingInterrupted(run.last_path, epoch + 1, 0)
    finally:
        stop.restore()
    return _finish(run, root, log)


def _write_int8(run: _Run) -> Path:
    """After a ``--qat`` run: the int8 ONNX model, calibrated on a few training batches."""
    from ..deploy.qat import convert_qat

    model = run.ema.module if run.ema is not None and run.config.ema_for_best else (
        run.step.model)
    every = run.loader.images
    images = every[::max(1, every.shape[0] // 256)][:256]  # spread over the (sorted) split
    calibration = [run.normalize(images[start:start + 64])
                   for start in range(0, images.shape[0], 64)]
    path = run.out_dir / "model_int8.onnx"
    convert_qat(copy.deepcopy(model).cpu(), calibration, backend="onnxruntime").save(path)
    return path


def _refuse_existing_run(out_dir: Path) -> None:
    """A fresh run never writes into a folder that holds another run's checkpoints."""
    if (out_dir / "last.pt").exists():
        raise ValueError(
            f"{out_dir} already holds a run ({out_dir / 'last.pt'}); continue it with --resume, "
            "or choose another --out folder (nothing was overwritten)"
        )
    if (out_dir / "best.pt").exists():
        raise ValueError(
            f"{out_dir} holds {out_dir / 'best.pt'} but no last.pt (an earlier run stopped "
            "before its first checkpoint, or files were moved); move best.pt away or choose "
            "another --out folder (nothing was overwritten)"
        )


def _restore(run: _Run, checkpoint: Checkpoint, path: Path, old_config: TrainConfig) -> None:
    """Put the checkpoint's training state into ``run``; re-plan the schedule if it changed."""
    step, config = run.step, run.config
    if checkpoint.global_step > run.plan["total_steps"]:
        done = math.ceil(checkpoint.global_step / run.plan["steps_per_epoch"])
        raise CheckpointError(path, f"has already trained {checkpoint.global_step} steps "
                              f"(epoch {checkpoint.epoch}); --epochs must be at least {done}")
    changes = changed_options(old_config, config)
    saved_plan = checkpoint.schedule or plan_schedule(old_config, run.plan["steps_per_epoch"])
    try:
        step.optimizer.load_state_dict(checkpoint.optimizer or {})
        if saved_plan == run.plan:
            step.scheduler.load_state_dict(checkpoint.scheduler or {})
        else:
            step.scheduler = replan_schedule(step.optimizer, run.plan, checkpoint.global_step)
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
        raise CheckpointError(path, f"training state cannot be restored: {error}") from None
    run.history = list(checkpoint.history)
    run.best_top1 = float(checkpoint.best_val_top1)
    run.start_epoch, run.start_step = checkpoint.epoch, checkpoint.step_in_epoch
    run.global_step = checkpoint.global_step
    run.resumes = list(checkpoint.resumes)
    if run.start_step and checkpoint.partial_train is not None:
        partial = checkpoint.partial_train.to(torch.float64).flatten()
        run.partial = torch.cat([partial, torch.zeros(4 - partial.numel(),
                                                      dtype=torch.float64)])[:4]
    run.say(f"resumed from {path} at epoch {run.start_epoch + 1}"
            + (f", step {run.start_step}" if run.start_step else ""))
    if changes:
        run.resumes.append({"global_step": run.global_step, "changed": changes})
        described = ", ".join(f"{key} {old!r} -> {new!r}" for key, (old, new) in changes.items())
        replanned = saved_plan != run.plan
        run.say(f"applying changed options: {described}"
                + (f" (learning-rate schedule re-planned: {run.plan['total_steps']} steps, "
                   f"continuing at step {run.global_step})" if replanned else ""))


def _update_ema(run: _Run, step: TrainStep) -> None:
    assert run.ema is not None
    run.ema.update(step.model)


def _progress_bar(enabled: bool, total: int, description: str) -> Any:
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError as error:
        raise ImportError('progress bars need tqdm: pip install "mobilecnn[data]" '
                          "(or run without --progress)") from error
    return tqdm(total=total, desc=description, unit="step", leave=False, dynamic_ncols=True)


def _check_finite(run: _Run, bad_steps: torch.Tensor, epoch: int, step: int) -> None:
    """Stop (saving nothing) if a step's loss was NaN/inf on any process."""
    if run.config.skip_nonfinite:
        return
    bad = bool(bad_steps > 0)
    if all_reduce_flag(bad, run.ctx.device) if run.ctx.distributed else bad:
        raise TrainingDiverged(epoch, step, run.last_path if run.last_path.exists() else None)


def _train_epoch(run: _Run, epoch: int, stop: StopFlag, hooks: TrainHooks,
                 show_progress: bool) -> tuple[torch.Tensor, float, int]:
    """The steps of one epoch; returns the sums (loss, correct, samples, non-finite steps)."""
    config, device = run.config, run.ctx.device
    run.loader.set_epoch(epoch)
    run.step.model.train()
    resuming = epoch == run.start_epoch
    sums = (run.partial if resuming else torch.zeros(4, dtype=torch.float64)).to(device)
    first_step = run.start_step if resuming else 0
    bar = _progress_bar(show_progress, len(run.loader), f"epoch {epoch + 1}/{config.epochs}")
    if bar is not None and first_step:
        bar.update(first_step)
    started, images_seen = time.perf_counter(), 0
    one = torch.ones((), dtype=torch.float64, device=device)
    for index, (images, labels) in enumerate(run.loader):
        if index < first_step:
            continue  # already trained before the interruption
        images = images.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        result = train_step(run.step, images, labels)
        if result.skipped:
            sums[3] += one
        else:
            sums[:3] += torch.stack([result.loss.double() * result.samples,
                                     result.correct.double(), one * result.samples])
            sums[3] += (~result.finite).double()
        run.global_step += 1
        images_seen += result.samples * run.ctx.world_size
        done = index + 1
        if hooks.after_step is not None:
            hooks.after_step(run.global_step, run.step)
        if done % FINITE_CHECK_EVERY == 0:
            _check_finite(run, sums[3], epoch, done)
        if bar is not None:
            bar.update(1)
            if index % 10 == 0 or done == len(run.loader):
                rate = images_seen / max(time.perf_counter() - started, 1e-9)
                values = sums.tolist()
                bar.set_postfix_str(f"loss {values[0] / max(values[2], 1):.3f} "
                                    f"acc {100 * values[1] / max(values[2], 1):.1f}% "
                                    f"{rate:.0f} img/s")
        if (hooks.interrupt_after_steps is not None and not stop.requested
                and run.global_step - _steps_at_start(run) >= hooks.interrupt_after_steps):
            stop.requested, stop.signal_name = True, "interrupt_after_steps"
        if all_reduce_flag(stop.requested, device) if run.ctx.distributed else stop.requested:
            if bar is not None:
                bar.close()
            _check_finite(run, sums[3], epoch, done)
            _fit_batchnorm(run)
            _save(run, _checkpoint(run, epoch, done, sums.cpu()), best=False)
            raise TrainingInterrupted(run.last_path, epoch, done)
    if bar is not None:
        bar.close()
    return sums, time.perf_counter() - started, images_seen


def _steps_at_start(run: _Run) -> int:
    return run.start_epoch * run.plan["steps_per_epoch"] + run.start_step


def _end_epoch(run: _Run, epoch: int, sums: torch.Tensor, seconds: float, images_seen: int,
               log: MetricLog) -> None:
    """Reduce the train sums, evaluate, check, checkpoint (first), then log the row."""
    config, ctx = run.config, run.ctx
    if ctx.distributed:
        import torch.distributed as dist

        dist.all_reduce(sums)
        broadcast_buffers(run.step.model)
    _check_finite(run, sums[3], epoch, len(run.loader))
    loss_sum, correct_sum, seen, bad_steps = sums.tolist()
    if seen == 0:  # every step was skipped
        raise TrainingDiverged(epoch, len(run.loader),
                               run.last_path if run.last_path.exists() else None)
    _fit_batchnorm(run)
    val = evaluate_during_training(run.step.model, run.val_split, run.normalize,
                                   len(run.classes), config.eval_batch_size, ctx.rank,
                                   ctx.world_size, run.step.dtype, config.channels_last)
    row = {"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_acc": correct_sum / seen,
           "val_loss": val.loss, "val_top1": val.top1_acc, "val_top5": val.top5_acc,
           "lr": run.step.optimizer.param_groups[0]["lr"], "epoch_seconds": seconds,
           "images_per_second": images_seen / max(seconds, 1e-9)}
    if config.skip_nonfinite:
        row["skipped_steps"] = int(bad_steps)
    chosen = val
    if run.ema is not None:
        if ctx.distributed:
            broadcast_buffers(run.ema.module)
        ema_val = evaluate_during_training(run.ema.module, run.val_split, run.normalize,
                                           len(run.classes), config.eval_batch_size, ctx.rank,
                                           ctx.world_size, run.step.dtype, config.channels_last)
        row.update({"ema_val_loss": ema_val.loss, "ema_val_top1": ema_val.top1_acc,
                    "ema_val_top5": ema_val.top5_acc})
        if config.ema_for_best:
            chosen = ema_val
    improved = chosen.top1_acc > run.best_top1 or not run.best_path.exists()
    run.history.append(row)
    if improved:
        run.best_top1 = chosen.top1_acc
    payload = _checkpoint(run, epoch + 1, 0, torch.zeros(4, dtype=torch.float64))
    _save(run, payload, best=improved)  # checkpoint first: a logged epoch has its checkpoint
    if ctx.is_main:
        if improved:
            write_per_class_csv(run.out_dir / "val_per_class.csv", chosen, run.classes,
                                run.class_names)
        log.append(row)
    ema_text = (f"  ema top-1 {100 * row['ema_val_top1']:5.1f}%" if run.ema is not None
                else "")
    run.say(f"epoch {epoch + 1:>3}/{config.epochs}  train loss {row['train_loss']:.4f} "
            f"acc {100 * row['train_acc']:5.1f}%  val loss {row['val_loss']:.4f} "
            f"top-1 {100 * row['val_top1']:5.1f}% top-5 {100 * row['val_top5']:5.1f}%"
            f"{ema_text}  {row['images_per_second']:.0f} img/s  {seconds:.1f}s"
            + ("  *best" if improved else ""))


def _fit_batchnorm(run: _Run) -> None:
    """BatchNorm statistics that fit the current weights, before evaluating and saving."""
    fit_batchnorm_to_weights(run.config, [run.step.model, run.ema_model], run.loader.images,
                             run.normalize, run.plan["total_steps"], run.step.dtype)


def _checkpoint(run: _Run, epoch: int, step_in_epoch: int, partial: torch.Tensor
                ) -> Checkpoint:
    """The run's state as a :class:`Checkpoint` (a collective under DDP: call on every rank)."""
    step, device = run.step, run.ctx.device
    augment_states = gather_states(step.generator) if step.generator is not None else []
    return Checkpoint(
        model_name=run.config.model, model_kwargs=run.model_kwargs,
        model=step.model.state_dict(), classes=run.classes, class_names=run.class_names,
        epoch=epoch, step_in_epoch=step_in_epoch, global_step=run.global_step,
        image_size=run.image_size, mean=run.mean, std=run.std,
        ema_state=run.ema_model.state_dict() if run.ema_model is not None else None,
        config=run.config.to_dict(), optimizer=step.optimizer.state_dict(),
        scheduler=step.scheduler.state_dict(),
        scaler=step.scaler.state_dict() if step.scaler.is_enabled() else None,
        rng={"torch": torch.get_rng_state(),
             "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
             "augment": augment_states},
        partial_train=partial.clone(), history=list(run.history),
        best_val_top1=run.best_top1, world_size=run.ctx.world_size, schedule=dict(run.plan),
        resumes=list(run.resumes),
    )


def _save(run: _Run, checkpoint: Checkpoint, best: bool) -> None:
    """Write last.pt (and best.pt) on rank 0, after checking the weights are finite."""
    if not all_finite(run.step.model):
        epoch = checkpoint.epoch if checkpoint.step_in_epoch else checkpoint.epoch - 1
        raise TrainingDiverged(epoch, checkpoint.step_in_epoch or len(run.loader),
                               run.last_path if run.last_path.exists() else None)
    if run.ctx.is_main:
        checkpoint.save(run.last_path)
        if best and run.ema is not None and run.config.ema_for_best:
            # best.pt's model is what eval, predict and export load: the EMA weights
            assert checkpoint.ema_state is not None
            dataclasses.replace(checkpoint, model=checkpoint.ema_state).save(run.best_path)
        elif best:
            checkpoint.save(run.best_path)
        # the config of the run last.pt continues (written after it: a failed save changes
        # nothing)
        write_text_atomic(run.out_dir / "config.json",
                          json.dumps(run.config.to_dict(), indent=2) + "\n")


def _finish(run: _Run, root: Path | None, log: MetricLog) -> TrainResult:
    """Check the processes agree, draw the curves, write result.json."""
    checksums = gather_strings(model_checksum(run.step.model))
    if run.ctx.distributed and len(set(checksums)) != 1:
        raise RuntimeError(f"DDP processes ended with different model states: {checksums}")
    plots: list[Path] = []
    if run.ctx.is_main:
        if run.history:
            try:
                from .plots import plot_history

                plots = plot_history(run.history, run.out_dir)
            except ImportError as error:
                run.say(f"note: no plots ({error})")
        if run.config.qat:
            run.say(f"int8 model (quantization-aware trained): {_write_int8(run)}")
        summary = {"final": run.history[-1] if run.history else None,
                   "best_val_top1": run.best_top1, "rank_checksums": checksums,
                   "data_root": str(root) if root else None}
        write_text_atomic(run.out_dir / "result.json", strict_json(summary, indent=2) + "\n")
    return TrainResult(out_dir=run.out_dir, last_checkpoint=run.last_path,
                       best_checkpoint=run.best_path, metrics_path=log.path, plots=plots,
                       history=run.history, best_val_top1=run.best_top1,
                       rank_checksums=checksums)
