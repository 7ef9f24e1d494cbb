"""The training loop: ``train(config) -> TrainResult`` and ``evaluate(...)``.

Read top to bottom it is one run: set up (devices, data, model, optimizer), maybe resume,
then per epoch train over the shuffled shards, reduce the metrics over all processes,
evaluate, log, checkpoint; at the end draw the curves.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from ..devices import cpu_has_fast_bfloat16
from ..models import MobileNetBase, create_model
from .checkpoints import (
    CheckpointError,
    build_model_from_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from .config import TrainConfig
from .distributed import (
    DistContext,
    all_reduce_flag,
    broadcast_buffers,
    cleanup_distributed,
    gather_strings,
    model_checksum,
    setup_distributed,
)
from .metrics import MetricLog, SplitMetrics, write_per_class_csv
from .optim import build_optimizer, build_scheduler

__all__ = [
    "DataSplit",
    "TrainResult",
    "TrainingInterrupted",
    "autocast_dtype",
    "evaluate",
    "load_splits",
    "train",
]


class DataSplit(Protocol):
    """What training needs of a split (``mobilecnn.data.DecodedSplit`` has it)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    class_names: list[str]


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


# --------------------------------------------------------------------------- precision

def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None = plain fp32).

    ``auto``: bf16 on CUDA when supported, else fp16 (with a GradScaler); bf16 on a CPU with
    native bf16 instructions (AVX-512 BF16 / AMX), else fp32; fp32 on MPS.
    """
    if precision == "fp32":
        return None
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "cpu" and cpu_has_fast_bfloat16():
            return torch.bfloat16
        return None
    if precision == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError("this GPU does not support bf16; use --precision fp16 or auto")
        return torch.bfloat16
    if precision == "fp16":
        if device.type == "cpu":
            raise ValueError("fp16 autocast is for GPUs; on CPU use --precision bf16 or fp32")
        return torch.float16
    raise ValueError(f"precision must be auto, fp32, bf16 or fp16; got {precision!r}")


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


# --------------------------------------------------------------------------- data

def load_splits(
    config: TrainConfig, ctx: DistContext | None = None, progress: bool = False
) -> tuple[Any, Any, Path]:
    """Decoded ``(train, val, root)`` for ``config.data`` (``"demo"`` generates the data).

    Rank 0 builds the caches first; the other processes wait, then read them.
    """
    from ..data import load_cache, make_demo_dataset, prepare_cache

    if config.data == "demo":
        root = Path(config.out_dir) / "demo-data"
    else:
        root = Path(config.data)
        if not root.exists():
            raise FileNotFoundError(
                f"data folder {root} does not exist; download TinyImageNet first "
                "(see docs/training.md) or use --data demo"
            )

    def build() -> tuple[Path, Path]:
        data_root = root
        if config.data == "demo":
            data_root = make_demo_dataset(
                root, num_classes=config.demo_classes,
                train_per_class=config.demo_train_per_class,
                val_per_class=config.demo_val_per_class, image_size=64, seed=0,
            )
        cache_dir = config.cache_dir
        return (prepare_cache(data_root, "train", cache_dir=cache_dir, progress=progress),
                prepare_cache(data_root, "val", cache_dir=cache_dir, progress=progress))

    import torch.distributed as dist

    distributed = ctx is not None and ctx.distributed
    if distributed and not (ctx is not None and ctx.is_main):
        dist.barrier()
    paths = build()
    if distributed and ctx is not None and ctx.is_main:
        dist.barrier()
    return load_cache(paths[0]), load_cache(paths[1]), root


# --------------------------------------------------------------------------- evaluation

def _iterate_eval(
    images: torch.Tensor, labels: torch.Tensor, batch_size: int, rank: int, world_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of this rank's strided shard, every sample exactly once over all ranks.

    (``CachedBatchLoader`` pads shards with repeated samples, which would count some
    validation images twice.)
    """
    order = torch.arange(rank, images.shape[0], world_size)
    for start in range(0, order.numel(), batch_size):
        index = order[start:start + batch_size]
        yield images.index_select(0, index), labels.index_select(0, index).to(torch.int64)


@torch.no_grad()
def _run_eval(
    model: nn.Module,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    normalize: Callable[[torch.Tensor], torch.Tensor],
    num_classes: int,
    device: torch.device,
    dtype: torch.dtype | None,
    channels_last: bool,
) -> SplitMetrics:
    metrics = SplitMetrics(num_classes)
    was_training = model.training
    model.eval()
    for images, labels in batches:
        images = images.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        inputs = normalize(images)
        if channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with _autocast(device, dtype):
            logits = model(inputs)
        logits = logits.float()
        loss_sum = F.cross_entropy(logits, labels, reduction="sum")
        metrics.add(logits, labels, float(loss_sum))
    model.train(was_training)
    return metrics


def evaluate(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    num_classes: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    batch_size: int = 512,
    precision: str = "fp32",
    channels_last: bool = True,
) -> SplitMetrics:
    """Loss, top-1, top-5 and per-class accuracy of ``model`` over a whole split.

    ``images`` are ``uint8 (N, 3, H, W)`` and are normalized with ``mean``/``std`` (the
    TinyImageNet statistics by default) on the model's device. Under torch.distributed each
    process evaluates its shard and the counts are summed.
    """
    import torch.distributed as dist

    from ..data import TINYIMAGENET_MEAN, TINYIMAGENET_STD, BatchAugment

    if images.dim() != 4 or images.dtype != torch.uint8:
        raise ValueError(f"images must be uint8 (N, 3, H, W), got {images.dtype} "
                         f"{tuple(images.shape)}")
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels")
    device = next(model.parameters()).device
    if num_classes is None:
        num_classes = int(getattr(model, "num_classes", int(labels.max()) + 1))
    normalize = BatchAugment(train=False, crop="none", flip=False,
                             mean=tuple(mean or TINYIMAGENET_MEAN),
                             std=tuple(std or TINYIMAGENET_STD))
    distributed = dist.is_available() and dist.is_initialized()
    rank = dist.get_rank() if distributed else 0
    world_size = dist.get_world_size() if distributed else 1
    metrics = _run_eval(
        model, _iterate_eval(images, labels, batch_size, rank, world_size), normalize,
        num_classes, device, autocast_dtype(precision, device), channels_last,
    )
    metrics.all_reduce(device)
    return metrics


# --------------------------------------------------------------------------- signals

class _StopFlag:
    """Set by SIGINT/SIGTERM; the loop checks it after every step."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: object) -> None:
        if self.requested:  # a second Ctrl-C: give up on the graceful path
            raise KeyboardInterrupt
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        print(f"\n{self.signal_name} received: finishing this step, then saving a checkpoint "
              "(press Ctrl-C again to abort without saving)", file=sys.stderr, flush=True)

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handler)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


# --------------------------------------------------------------------------- the run

def _model_kwargs(config: TrainConfig, num_classes: int) -> dict[str, Any]:
    return {"num_classes": num_classes, "width_mult": config.width,
            "total_stride": config.total_stride, "dropout": config.dropout}


def _progress_bar(enabled: bool, total: int, description: str) -> Any:
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError as error:
        raise ImportError('progress bars need tqdm: pip install "mobilecnn[data]" '
                          "(or run without --progress)") from error
    return tqdm(total=total, desc=description, unit="step", leave=False, dynamic_ncols=True)


def _check_resume_compatible(checkpoint: dict[str, Any], config: TrainConfig, path: Path,
                             model_kwargs: dict[str, Any], classes: list[str],
                             world_size: int) -> None:
    if "optimizer" not in checkpoint or "config" not in checkpoint:
        raise CheckpointError(path, "holds only weights (no optimizer/config); it cannot be "
                              "resumed, start a new run from it instead")
    if checkpoint["model_name"] != config.model or checkpoint["model_kwargs"] != model_kwargs:
        raise CheckpointError(
            path,
            f"was trained as {checkpoint['model_name']} {checkpoint['model_kwargs']}, but this "
            f"run asks for {config.model} {model_kwargs}; use the same model options or "
            "another --out folder",
        )
    if list(checkpoint["classes"]) != list(classes):
        raise CheckpointError(path, "was trained on different classes than this data set")
    old = checkpoint["config"]
    for key in ("batch_size", "optimizer", "seed"):
        if old.get(key) != getattr(config, key):
            raise CheckpointError(path, f"was trained with {key}={old.get(key)!r}, this run has "
                                  f"{key}={getattr(config, key)!r}; resume with the same value")
    if checkpoint.get("world_size", 1) != world_size:
        print(f"note: resuming a {checkpoint.get('world_size', 1)}-process run with {world_size} "
              "processes: same global batch, but the data order differs from the original run",
              file=sys.stderr)


def _resolve_resume(resume: str | Path | bool | None, out_dir: Path) -> Path | None:
    if resume is None or resume is False:
        return None
    if resume is True or str(resume) == "last":
        path = out_dir / "last.pt"
        if not path.exists():
            raise FileNotFoundError(f"nothing to resume: {path} does not exist; "
                                    "start without --resume or pass --resume PATH")
        return path
    return Path(resume)


def train(
    config: TrainConfig,
    *,
    resume: str | Path | bool | None = None,
    train_split: DataSplit | None = None,
    val_split: DataSplit | None = None,
) -> TrainResult:
    """Train ``config.model`` as ``config`` says; returns where everything went.

    ``resume``: True or ``"last"`` continues from ``<out_dir>/last.pt``; a path continues
    from that checkpoint. ``train_split``/``val_split`` (decoded uint8 images + labels) replace
    loading ``config.data``. Under ``torchrun`` this joins the process group and trains with
    DistributedDataParallel. Raises :class:`TrainingInterrupted` after saving a checkpoint
    when SIGINT/SIGTERM arrives.
    """
    config.validate()
    ctx = setup_distributed(config.device)
    owns_group = ctx.distributed
    try:
        return _train(config, ctx, resume, train_split, val_split)
    finally:
        if owns_group:
            cleanup_distributed()


def _train(
    config: TrainConfig,
    ctx: DistContext,
    resume: str | Path | bool | None,
    train_split: DataSplit | None,
    val_split: DataSplit | None,
) -> TrainResult:
    from ..data import TINYIMAGENET_MEAN, TINYIMAGENET_STD, BatchAugment, CachedBatchLoader

    device = ctx.device
    out_dir = Path(config.out_dir)
    last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"
    metrics_path = out_dir / "metrics.jsonl"

    def say(message: str) -> None:
        if ctx.is_main:
            print(message, flush=True)

    # ---- what to resume from: checked before anything is written
    resume_path = _resolve_resume(resume, out_dir)
    checkpoint: dict[str, Any] | None = None
    if resume_path is not None:
        checkpoint = load_checkpoint(resume_path, map_location="cpu")
    elif last_path.exists():
        raise ValueError(
            f"{out_dir} already holds a run ({last_path}); continue it with --resume, or "
            "choose another --out folder (nothing was overwritten)"
        )
    if config.batch_size % ctx.world_size:
        raise ValueError(f"batch_size {config.batch_size} (the global batch) must be divisible "
                         f"by the number of processes ({ctx.world_size})")
    local_batch = config.batch_size // ctx.world_size

    # ---- data
    show_progress = ctx.is_main and (
        config.progress if config.progress is not None else sys.stderr.isatty())
    root: Path | None = None
    if train_split is None or val_split is None:
        train_split, val_split, root = load_splits(config, ctx, progress=show_progress)
    classes, class_names = list(train_split.classes), list(train_split.class_names)
    num_classes = len(classes)
    image_size = int(train_split.images.shape[-1])
    if len(train_split.labels) < config.batch_size:
        raise ValueError(f"the training split has {len(train_split.labels)} images, fewer than "
                         f"one batch ({config.batch_size}); lower --batch-size")
    mean, std = tuple(TINYIMAGENET_MEAN), tuple(TINYIMAGENET_STD)
    augment = BatchAugment(train=True, crop=config.crop, flip=config.flip, mean=mean, std=std)
    normalize = BatchAugment(train=False, crop="none", flip=False, mean=mean, std=std)
    train_loader = CachedBatchLoader(train_split.images, train_split.labels, local_batch,
                                     shuffle=True, drop_last=True, seed=config.seed,
                                     rank=ctx.rank, world_size=ctx.world_size)
    steps_per_epoch = len(train_loader)

    # ---- model, optimizer, schedule, precision
    torch.manual_seed(config.seed)
    model_kwargs = _model_kwargs(config, num_classes)
    if checkpoint is not None:
        _check_resume_compatible(checkpoint, config, resume_path or last_path, model_kwargs,
                                 classes, ctx.world_size)
        model: MobileNetBase = build_model_from_checkpoint(checkpoint, resume_path or last_path)
    else:
        model = create_model(config.model, **model_kwargs)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model.to(device)
    model.to(memory_format=memory_format)
    optimizer = build_optimizer(model, config.optimizer, config.peak_lr,
                                config.effective_weight_decay, config.momentum)
    total_steps = steps_per_epoch * config.epochs
    scheduler = build_scheduler(optimizer, total_steps,
                                round(config.warmup_epochs * steps_per_epoch))
    dtype = autocast_dtype(config.precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    generator = torch.Generator()  # CPU: the same augmentation stream on every device
    generator.manual_seed(config.seed * 1000 + ctx.rank)

    history: list[dict[str, Any]] = []
    best_top1 = -math.inf
    start_epoch, start_step = 0, 0
    partial = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, samples of this epoch
    if checkpoint is not None:
        try:
            optimizer.load_state_dict(checkpoint["optimizer"])
            scheduler.load_state_dict(checkpoint["scheduler"])
            if checkpoint.get("scaler"):
                scaler.load_state_dict(checkpoint["scaler"])
            rng = checkpoint["rng"]
            torch.set_rng_state(rng["torch"])
            if device.type == "cuda" and rng.get("cuda") is not None:
                torch.cuda.set_rng_state(rng["cuda"], device)
            if ctx.rank < len(rng["augment"]):
                generator.set_state(rng["augment"][ctx.rank])
        except (KeyError, ValueError, RuntimeError, TypeError) as error:
            raise CheckpointError(resume_path or last_path,
                                  f"training state cannot be restored: {error}") from None
        history = list(checkpoint.get("history", []))
        best_top1 = float(checkpoint.get("best_val_top1", -math.inf))
        start_epoch = int(checkpoint["epoch"])
        start_step = int(checkpoint.get("step_in_epoch", 0))
        if start_step:
            partial = checkpoint["partial_train"].to(torch.float64)
        say(f"resumed from {resume_path} at epoch {start_epoch + 1}"
            + (f", step {start_step}" if start_step else ""))

    train_model: nn.Module = model
    if ctx.distributed:
        from torch.nn.parallel import DistributedDataParallel

        train_model = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile:
        train_model = torch.compile(train_model)  # type: ignore[assignment]

    log = MetricLog(metrics_path)
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        if checkpoint is not None and metrics_path.exists():
            log.rewrite(history)  # drop rows written after the checkpoint we resume from
        (out_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")

    precision_name = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
    say(f"training {config.model} width {config.width} (total stride {config.total_stride}) on "
        f"{len(train_split.labels)} images of {num_classes} classes, "
        f"{ctx.world_size} process(es) on {device.type}, {precision_name}, global batch "
        f"{config.batch_size}, peak lr {config.peak_lr:g}, {steps_per_epoch} steps/epoch")

    def state(epoch: int, step_in_epoch: int, partial_sums: torch.Tensor) -> dict[str, Any]:
        augment_states = gather_states(generator)
        return {
            "model_name": config.model,
            "model_kwargs": model_kwargs,
            "model": model.state_dict(),
            "classes": classes,
            "class_names": class_names,
            "epoch": epoch,
            "step_in_epoch": step_in_epoch,
            "partial_train": partial_sums.clone(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler.is_enabled() else None,
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                "augment": augment_states,
            },
            "config": config.to_dict(),
            "history": history,
            "best_val_top1": best_top1,
            "world_size": ctx.world_size,
            "image_size": image_size,
            "mean": list(mean),
            "std": list(std),
        }

    stop = _StopFlag()
    stop.install()
    steps_this_run = 0
    try:
        for epoch in range(start_epoch, config.epochs):
            train_loader.set_epoch(epoch)
            model.train()
            sums = partial.to(device) if epoch == start_epoch else torch.zeros(
                3, dtype=torch.float64, device=device)
            first_step = start_step if epoch == start_epoch else 0
            bar = _progress_bar(show_progress, steps_per_epoch,
                                f"epoch {epoch + 1}/{config.epochs}")
            if bar is not None and first_step:
                bar.update(first_step)
            started = time.perf_counter()
            images_seen = 0
            for step, (images, labels) in enumerate(train_loader):
                if step < first_step:
                    continue  # already trained before the interruption
                images = images.to(device, non_blocking=True)
                labels = labels.to(device, non_blocking=True)
                inputs = augment(images, generator=generator)
                if config.channels_last:
                    inputs = inputs.contiguous(memory_format=torch.channels_last)
                with _autocast(device, dtype):
                    logits = train_model(inputs)
                loss = criterion(logits.float(), labels)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if config.grad_clip is not None:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                with torch.no_grad():
                    correct = logits.argmax(dim=1).eq(labels).sum()
                    sums += torch.stack([loss.detach().double() * labels.numel(),
                                         correct.double(),
                                         torch.tensor(float(labels.numel()), dtype=torch.float64,
                                                      device=device)])
                steps_this_run += 1
                images_seen += labels.numel() * ctx.world_size
                if bar is not None:
                    bar.update(1)
                    if step % 10 == 0 or step == steps_per_epoch - 1:
                        rate = images_seen / max(time.perf_counter() - started, 1e-9)
                        values = sums.tolist()
                        bar.set_postfix_str(f"loss {values[0] / values[2]:.3f} "
                                            f"acc {100 * values[1] / values[2]:.1f}% "
                                            f"{rate:.0f} img/s")
                hook = (config.interrupt_after_steps is not None
                        and steps_this_run >= config.interrupt_after_steps)
                if hook and not stop.requested:
                    stop.requested, stop.signal_name = True, "interrupt_after_steps"
                if all_reduce_flag(stop.requested, device) if ctx.distributed else stop.requested:
                    done = step + 1
                    if bar is not None:
                        bar.close()
                    payload = state(epoch, done, sums.cpu())
                    if ctx.is_main:
                        save_checkpoint(payload, last_path)
                    raise TrainingInterrupted(last_path, epoch, done)
            if bar is not None:
                bar.close()
            elapsed = time.perf_counter() - started

            # ---- end of epoch: reduce, evaluate, log, checkpoint
            if ctx.distributed:
                import torch.distributed as dist

                dist.all_reduce(sums)
                broadcast_buffers(model)
            loss_sum, correct_sum, seen = sums.tolist()
            val = _run_eval(
                model, _iterate_eval(val_split.images, val_split.labels,
                                     max(1, config.eval_batch_size // ctx.world_size),
                                     ctx.rank, ctx.world_size),
                normalize, num_classes, device, dtype, config.channels_last,
            )
            val.all_reduce(device)
            row = {
                "epoch": epoch + 1,
                "train_loss": loss_sum / seen,
                "train_acc": correct_sum / seen,
                "val_loss": val.loss,
                "val_top1": val.top1_acc,
                "val_top5": val.top5_acc,
                "lr": optimizer.param_groups[0]["lr"],
                "epoch_seconds": elapsed,
                "images_per_second": images_seen / max(elapsed, 1e-9),
            }
            history.append(row)
            improved = val.top1_acc > best_top1
            if improved:
                best_top1 = val.top1_acc
            payload = state(epoch + 1, 0, torch.zeros(3, dtype=torch.float64))
            if ctx.is_main:  # checkpoint first: a logged epoch always has its checkpoint
                save_checkpoint(payload, last_path)
                if improved:
                    save_checkpoint(payload, best_path)
                    write_per_class_csv(out_dir / "val_per_class.csv", val, classes, class_names)
                log.append(row)
            say(f"epoch {epoch + 1:>3}/{config.epochs}  train loss {row['train_loss']:.4f} "
                f"acc {100 * row['train_acc']:5.1f}%  val loss {row['val_loss']:.4f} "
                f"top-1 {100 * row['val_top1']:5.1f}% top-5 {100 * row['val_top5']:5.1f}%  "
                f"{row['images_per_second']:.0f} img/s  {elapsed:.1f}s"
                + ("  *best" if improved else ""))
            stopping = all_reduce_flag(stop.requested, device) if ctx.distributed else (
                stop.requested)
            if stopping and epoch + 1 < config.epochs:
                raise TrainingInterrupted(last_path, epoch + 1, 0)
    finally:
        stop.restore()

    # ---- the end: check the processes agree, draw the curves
    checksums = gather_strings(model_checksum(model))
    if ctx.distributed and len(set(checksums)) != 1:
        raise RuntimeError(f"DDP processes ended with different model states: {checksums}")
    plots: list[Path] = []
    if ctx.is_main:
        if history:
            try:
                from .plots import plot_history

                plots = plot_history(history, out_dir)
            except ImportError as error:
                say(f"note: no plots ({error})")
        summary = {"final": history[-1] if history else None, "best_val_top1": best_top1,
                   "rank_checksums": checksums, "data_root": str(root) if root else None}
        (out_dir / "result.json").write_text(json.dumps(summary, indent=2) + "\n")
    return TrainResult(out_dir=out_dir, last_checkpoint=last_path, best_checkpoint=best_path,
                       metrics_path=metrics_path, plots=plots, history=history,
                       best_val_top1=best_top1, rank_checksums=checksums)


def gather_states(generator: torch.Generator) -> list[torch.Tensor]:
    """The augmentation generator state of every process (rank order)."""
    import torch.distributed as dist

    state = generator.get_state()
    if not (dist.is_available() and dist.is_initialized()):
        return [state]
    gathered: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, state)
    return [item for item in gathered if isinstance(item, torch.Tensor)]
