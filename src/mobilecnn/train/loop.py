"""The training run: ``train(config) -> TrainResult``.

Read top to bottom, :func:`_train` is one run: what to resume (:func:`~.resume.open_resume`),
the data, the model and the step's parts (built in :mod:`~mobilecnn.train.setup`), restoring
the checkpoint (:func:`~.resume.restore`), then per epoch :func:`_train_epoch` (the steps) and
:func:`_end_epoch` (reduce, evaluate, check, checkpoint, log), then :func:`_finish`. The step
itself is :func:`mobilecnn.train.step.train_step`; the run's state is
:class:`~.state.RunState`; evaluation, the schedule, resume rules, signals and DDP helpers live
in their own modules.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ..fileio import clean_stale_temps, lock_folder, write_text_atomic
from .batchnorm_stats import fit_batchnorm_to_weights
from .checkpoints import Checkpoint
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
from .errors import TrainingDiverged, TrainingInterrupted
from .evaluation import evaluate, evaluate_during_training
from .metrics import MetricLog, strict_json, write_per_class_csv
from .precision import autocast_dtype, precision_name
from .resume import ResumePoint, open_resume, restore
from .run_folder import check_fresh_folder, check_resume_folder, run_config_json
from .setup import build_model, build_step, load_data
from .signals import StopFlag, TrainHooks
from .splits import DataSplit, load_splits
from .state import RunState, TrainResult
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


def train(
    config: TrainConfig,
    *,
    resume: str | Path | bool | ResumePoint | None = None,
    train_split: DataSplit | None = None,
    val_split: DataSplit | None = None,
    build_caches: bool = True,
    _hooks: TrainHooks | None = None,
) -> TrainResult:
    """Train ``config.model`` as ``config`` says; returns where everything went.

    ``resume``: True or ``"last"`` continues from ``<out_dir>/last.pt``; a path (or a
    :class:`~mobilecnn.train.resume.ResumePoint` from ``open_resume``) continues from that
    checkpoint, writing into ``config.out_dir`` (changed options are applied and recorded, or
    refused; a changed ``epochs`` re-plans the schedule, see docs/training.md).
    ``train_split``/``val_split`` (decoded uint8 images + labels) replace loading
    ``config.data``; ``build_caches=False`` reads only caches that exist (for a ``config.data``
    taken from a checkpoint: no file's contents decide where anything is written). Under
    ``torchrun`` this joins the process group and trains with
    DistributedDataParallel. Raises :class:`TrainingInterrupted` after saving a checkpoint when
    SIGINT/SIGTERM arrives, :class:`TrainingDiverged` (saving nothing) when the loss becomes
    NaN/inf, and :class:`mobilecnn.fileio.FolderLockedError` when another run uses ``out_dir``.
    """
    config.validate()
    ctx = setup_distributed(config.device)
    try:
        # one run per folder: an OS lock that the kernel drops when this process ends
        lock = (lock_folder(config.out_dir, "run folder") if ctx.is_main
                else contextlib.nullcontext())
        with lock:
            return _train(config, ctx, resume, (train_split, val_split), build_caches,
                          _hooks or TrainHooks())
    finally:
        if ctx.distributed:
            cleanup_distributed()


def _train(config: TrainConfig, ctx: DistContext, resume: str | Path | bool | ResumePoint | None,
           splits: tuple[DataSplit | None, DataSplit | None], build_caches: bool,
           hooks: TrainHooks) -> TrainResult:
    out_dir = Path(config.out_dir)
    # ---- what to resume from: checked before anything is written
    point = open_resume(resume, out_dir)
    if point is None:
        check_fresh_folder(out_dir)
    else:
        check_resume_folder(out_dir, point.path)
    if config.batch_size % ctx.world_size:
        raise ValueError(f"batch_size {config.batch_size} (the global batch) must be divisible "
                         f"by the number of processes ({ctx.world_size})")
    show_progress = ctx.is_main and (
        config.progress if config.progress is not None else sys.stderr.isatty())
    train_split, val_split, root, loader = load_data(config, ctx, *splits, show_progress,
                                                     build_caches)
    run = _start_run(config, ctx, point, train_split, val_split, loader)

    # ---- files: the run folder, metrics.jsonl cut back to the checkpoint
    log = MetricLog(out_dir / "metrics.jsonl")
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        clean_stale_temps(out_dir)
        if point is not None:  # the checkpoint's rows (later ones dropped, a fork gets them)
            log.rewrite(run.history)
    run.say(f"training {config.model} width {config.width} (total stride {config.total_stride}) "
            f"on {len(train_split.labels)} images of {len(run.classes)} classes, "
            f"{ctx.world_size} process(es) on {ctx.device.type}, {precision_name(run.step.dtype)}"
            f", global batch {config.batch_size}, peak lr {config.peak_lr:g}, {len(loader)} "
            "steps/epoch")

    # ---- the epochs
    stop = StopFlag()
    stop.install()
    try:
        for epoch in range(run.start_epoch, config.epochs):
            sums, seconds, images_seen = _train_epoch(run, epoch, stop, hooks, show_progress)
            _end_epoch(run, epoch, sums, seconds, images_seen, log)
            stopping = all_reduce_flag(stop.requested, ctx.device) if ctx.distributed else (
                stop.requested)
            if stopping and epoch + 1 < config.epochs:
                raise TrainingInterrupted(run.last_path, epoch + 1, 0)
    finally:
        stop.restore()
    return _finish(run, root, log)


def _start_run(config: TrainConfig, ctx: DistContext, point: ResumePoint | None,
               train_split: DataSplit, val_split: DataSplit, loader: Any) -> RunState:
    """The model, the step's parts and the run state, restored from ``point`` if resuming."""
    from ..data import TINYIMAGENET_MEAN, TINYIMAGENET_STD, BatchAugment

    mean, std = list(TINYIMAGENET_MEAN), list(TINYIMAGENET_STD)
    torch.manual_seed(config.seed)
    classes = list(train_split.classes)
    image_size = int(train_split.images.shape[-1])
    model, model_kwargs, init_message = build_model(config, point, classes, image_size,
                                                    ctx.world_size)
    step, plan = build_step(config, model, len(loader), classes, ctx.device, ctx.rank, mean, std)
    run = RunState(config=config, ctx=ctx, step=step, loader=loader, val_split=val_split,
                   normalize=BatchAugment(train=False, crop="none", flip=False, mean=mean,
                                          std=std),
                   model_kwargs=model_kwargs, classes=classes,
                   class_names=list(train_split.class_names), image_size=image_size,
                   mean=mean, std=std, plan=plan, out_dir=Path(config.out_dir))
    if config.ema:
        run.ema = ModelEma(model, decay=config.ema_decay)
        run.ema_model = run.ema.module
        step.after_optimizer_step.append(lambda done: _update_ema(run, done))
    if point is not None:
        restore(run, point)
    if init_message is not None:
        run.say(init_message)
    if ctx.distributed:
        from torch.nn.parallel import DistributedDataParallel

        step.forward = DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    if config.compile:
        step.forward = torch.compile(step.forward)  # type: ignore[assignment]
    return run


def _write_int8(run: RunState) -> Path:
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


def _update_ema(run: RunState, step: TrainStep) -> None:
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


def _check_finite(run: RunState, bad_steps: torch.Tensor, epoch: int, step: int) -> None:
    """Stop (saving nothing) if a step's loss was NaN/inf on any process."""
    if run.config.skip_nonfinite:
        return
    bad = bool(bad_steps > 0)
    if all_reduce_flag(bad, run.ctx.device) if run.ctx.distributed else bad:
        raise TrainingDiverged(epoch, step, run.last_path if run.last_path.exists() else None)


def _train_epoch(run: RunState, epoch: int, stop: StopFlag, hooks: TrainHooks,
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
                and run.global_step - run.steps_at_start >= hooks.interrupt_after_steps):
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


def _end_epoch(run: RunState, epoch: int, sums: torch.Tensor, seconds: float, images_seen: int,
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


def _fit_batchnorm(run: RunState) -> None:
    """BatchNorm statistics that fit the current weights, before evaluating and saving."""
    fit_batchnorm_to_weights(run.config, [run.step.model, run.ema_model], run.loader.images,
                             run.normalize, run.plan.total_steps, run.step.dtype)


def _checkpoint(run: RunState, epoch: int, step_in_epoch: int, partial: torch.Tensor
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
        best_val_top1=run.best_top1, world_size=run.ctx.world_size, schedule=run.plan.to_dict(),
        resumes=list(run.resumes),
    )


def _save(run: RunState, checkpoint: Checkpoint, best: bool) -> None:
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
        write_text_atomic(run.out_dir / "config.json", run_config_json(run.config))
    run.saved = True


def _finish(run: RunState, root: Path | None, log: MetricLog) -> TrainResult:
    """Check the processes agree, draw the curves, write result.json."""
    checksums = gather_strings(model_checksum(run.step.model))
    if run.ctx.distributed and len(set(checksums)) != 1:
        raise RuntimeError(f"DDP processes ended with different model states: {checksums}")
    plots: list[Path] = []
    if not run.saved:  # a finished run resumed in its own folder: files redrawn, no checkpoint
        run.say(f"nothing to train: {run.last_path} has finished its {run.start_epoch} epochs; "
                f"pass --epochs N with N > {run.start_epoch} to train it longer")
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
                       rank_checksums=checksums, checkpoint_written=run.saved)
