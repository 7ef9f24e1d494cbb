"""``mobilecnn train``, ``eval``, ``predict`` and ``demo``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import CLIError, positive_float, positive_int

DEMO_EPOCHS = 6
"""Epochs of ``mobilecnn demo``: about 82% val top-1 in under 3 minutes on 2 idle cores
(measured; see docs/training.md)."""

# option -> TrainConfig field; options not given on the command line keep the recipe's
# default (or, with --resume, the resumed run's value)
TRAIN_OPTIONS: dict[str, str] = {
    "data": "data", "out": "out_dir", "model": "model", "width": "width",
    "total_stride": "total_stride", "dropout": "dropout", "epochs": "epochs",
    "batch_size": "batch_size", "optimizer": "optimizer", "lr": "lr", "momentum": "momentum",
    "weight_decay": "weight_decay", "warmup_epochs": "warmup_epochs",
    "label_smoothing": "label_smoothing", "grad_clip": "grad_clip", "crop": "crop",
    "flip": "flip", "precision": "precision", "channels_last": "channels_last",
    "compile": "compile", "device": "device", "seed": "seed",
    "eval_batch_size": "eval_batch_size", "cache_dir": "cache_dir", "progress": "progress",
    "interrupt_after_steps": "interrupt_after_steps",
}


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this group's subcommands to the parser."""
    from ..models import MODELS
    from ..train.config import CROPS, OPTIMIZERS, PRECISIONS

    unset = argparse.SUPPRESS
    train = subparsers.add_parser(
        "train",
        help="train a MobileNet on TinyImageNet (or --data demo); resumable, torchrun-ready",
        description=(
            "Train with the 64x64 TinyImageNet recipe (see docs/training.md). Options not given "
            "keep the recipe's defaults, or with --resume the resumed run's values. Under "
            "`torchrun --nproc_per_node=N -m mobilecnn train ...` it trains with DDP; "
            "--batch-size is the global batch."
        ),
        argument_default=unset,
    )
    train.add_argument("--data", metavar="DIR",
                       help="tiny-imagenet-200 folder, or 'demo' for generated data")
    train.add_argument("--out", metavar="DIR",
                       help="run folder for checkpoints, metrics.jsonl and plots "
                            "(default runs/mobilecnn; mobilecnn-demo for --data demo)")
    train.add_argument("--model", choices=sorted(MODELS), help="default mobilenet_v2")
    train.add_argument("--width", type=positive_float, help="width multiplier (default 1.0)")
    train.add_argument("--total-stride", type=int, choices=(8, 16, 32),
                       help="16 (default) = stem stride 1 for 64x64 inputs")
    train.add_argument("--dropout", type=_non_negative_float, help="default 0.2")
    train.add_argument("--epochs", type=positive_int, help="default 60")
    train.add_argument("--batch-size", type=positive_int,
                       help="GLOBAL batch over all processes (default 256)")
    train.add_argument("--optimizer", choices=OPTIMIZERS, help="default sgd (Nesterov)")
    train.add_argument("--lr", type=positive_float,
                       help="peak learning rate (default: 0.1 x batch/256 for sgd, "
                            "2e-3 x batch/256 for adamw, 0.016 x batch/256 for rmsprop)")
    train.add_argument("--momentum", type=positive_float, help="default 0.9")
    train.add_argument("--weight-decay", type=_non_negative_float,
                       help="not applied to norm/bias (default 1e-4 sgd, 0.05 adamw, "
                            "4e-5 rmsprop)")
    train.add_argument("--warmup-epochs", type=_non_negative_float, help="default 3")
    train.add_argument("--label-smoothing", type=_non_negative_float, help="default 0.1")
    train.add_argument("--grad-clip", type=positive_float, metavar="NORM",
                       help="clip the gradient norm (default off)")
    train.add_argument("--crop", choices=CROPS, help="augmentation crop (default resized)")
    train.add_argument("--no-flip", dest="flip", action="store_false",
                       help="no random horizontal flips")
    train.add_argument("--precision", choices=PRECISIONS,
                       help="auto (default): bf16 autocast on CUDA (fp16+scaler without bf16) "
                            "and on CPUs with AVX-512-BF16/AMX, else fp32")
    train.add_argument("--no-channels-last", dest="channels_last", action="store_false",
                       help="keep NCHW memory format")
    train.add_argument("--compile", action="store_true", help="torch.compile the model")
    train.add_argument("--device", help="auto (default), cpu, cuda, cuda:1, mps")
    train.add_argument("--seed", type=int, help="default 0")
    train.add_argument("--eval-batch-size", type=positive_int, help="default 512")
    train.add_argument("--cache-dir", metavar="DIR",
                       help="decoded-image cache (default <data>/.mobilecnn_cache)")
    train.add_argument("--progress", action="store_true", dest="progress",
                       help="progress bars even when stderr is not a terminal")
    train.add_argument("--no-progress", action="store_false", dest="progress",
                       help="no progress bars")
    train.add_argument("--resume", nargs="?", const="last", metavar="PATH",
                       help="continue from <out>/last.pt, or from PATH")
    train.add_argument("--interrupt-after-steps", type=positive_int, help=argparse.SUPPRESS)
    train.set_defaults(func=run_train)

    evaluate = subparsers.add_parser(
        "eval",
        help="top-1/top-5 of a checkpoint on a split, per-class accuracy to a CSV",
        description="Evaluate a checkpoint on a TinyImageNet split.",
    )
    evaluate.add_argument("--checkpoint", required=True, metavar="CKPT", help="a .pt checkpoint")
    evaluate.add_argument("--data", required=True, metavar="DIR", help="tiny-imagenet-200 folder")
    evaluate.add_argument("--split", choices=("train", "val"), default="val",
                          help="default val")
    evaluate.add_argument("--batch-size", type=positive_int, default=512, help="default 512")
    evaluate.add_argument("--per-class", metavar="CSV",
                          help="per-class accuracy file (default <checkpoint folder>/"
                               "eval_<split>_per_class.csv)")
    evaluate.add_argument("--precision", choices=("fp32", "bf16", "fp16", "auto"), default="fp32",
                          help="default fp32")
    evaluate.add_argument("--device", default="auto", help="auto (default), cpu, cuda, mps")
    evaluate.add_argument("--cache-dir", metavar="DIR", default=None,
                          help="decoded-image cache (default <data>/.mobilecnn_cache)")
    evaluate.set_defaults(func=run_eval)

    predict = subparsers.add_parser(
        "predict",
        help="top-5 classes of image files",
        description="Classify images with a checkpoint: prints the top classes with names.",
    )
    predict.add_argument("--checkpoint", required=True, metavar="CKPT", help="a .pt checkpoint")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    predict.add_argument("--top-k", type=positive_int, default=5, help="default 5")
    predict.add_argument("--device", default="cpu", help="default cpu")
    predict.set_defaults(func=run_predict)

    demo = subparsers.add_parser(
        "demo",
        help="generate a small image data set and train on it on the CPU (~3 minutes)",
        description=(
            "Generate 10 classes of procedurally drawn 64x64 shapes and textures (NOT real "
            "photos) in the TinyImageNet layout and train a small-input MobileNetV2 on it on "
            "the CPU."
        ),
    )
    demo.add_argument("--out", default="mobilecnn-demo", metavar="DIR",
                      help="run folder (default ./mobilecnn-demo)")
    demo.add_argument("--epochs", type=positive_int, default=DEMO_EPOCHS,
                      help=f"default {DEMO_EPOCHS}")
    demo.add_argument("--progress", action="store_true", default=None,
                      help="progress bars even when stderr is not a terminal")
    demo.add_argument("--resume", nargs="?", const="last", default=None, metavar="PATH",
                      help="continue an interrupted demo")
    demo.set_defaults(func=run_demo)


def _train_config(args: argparse.Namespace) -> tuple[Any, Path | None]:
    from ..train.checkpoints import load_checkpoint
    from ..train.config import TrainConfig, demo_config

    given = {field: getattr(args, option) for option, field in TRAIN_OPTIONS.items()
             if hasattr(args, option)}
    resume = getattr(args, "resume", None)
    if resume is not None:
        out_dir = Path(given.get("out_dir", TrainConfig.out_dir))
        path = out_dir / "last.pt" if resume == "last" else Path(resume)
        if resume == "last" and not path.exists():
            raise CLIError(f"nothing to resume: {path} does not exist (pass --out DIR of the run, "
                           "or --resume PATH)")
        saved = load_checkpoint(path).get("config")
        if not isinstance(saved, dict):
            raise CLIError(f"checkpoint {path}: holds no training config; it cannot be resumed")
        base = TrainConfig.from_dict(saved).to_dict()
        base["interrupt_after_steps"] = None
        base.update(given)
        return TrainConfig.from_dict(base), path
    if given.get("data") == "demo":
        given.setdefault("out_dir", "mobilecnn-demo")
        return demo_config(**given), None
    if "data" not in given:
        raise CLIError("--data is required: a tiny-imagenet-200 folder, or 'demo'")
    return TrainConfig(**given), None


def _report_run(result: Any, demo: bool) -> None:
    final = result.final
    print(f"done: val top-1 {100 * final['val_top1']:.1f}%, top-5 {100 * final['val_top5']:.1f}%"
          f" (best top-1 {100 * result.best_val_top1:.1f}%)")
    print(f"checkpoints: {result.last_checkpoint} (last), {result.best_checkpoint} (best)")
    print(f"metrics:     {result.metrics_path}")
    if result.plots:
        print(f"plots:       {', '.join(str(p) for p in result.plots)}")
    if demo:
        print("note: this is GENERATED data (coloured shapes and textures), far easier than "
              "TinyImageNet; the accuracy says the pipeline works, not how good the model is.")


def run_train(args: argparse.Namespace) -> int:
    from ..train.loop import TrainingInterrupted, train

    config, resume_path = _train_config(args)
    try:
        result = train(config, resume=resume_path)
    except TrainingInterrupted as stopped:
        print(f"mobilecnn: {stopped}")
        return 130
    _report_run(result, demo=config.data == "demo")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from ..train.config import demo_config
    from ..train.loop import TrainingInterrupted, train

    config = demo_config(out_dir=args.out, epochs=args.epochs, progress=args.progress)
    print("mobilecnn demo: generating a small data set of drawn shapes and textures "
          f"(10 classes, 64x64) under {Path(args.out) / 'demo-data'} and training on the CPU")
    resume = None
    if args.resume is not None:
        resume = Path(args.out) / "last.pt" if args.resume == "last" else Path(args.resume)
    try:
        result = train(config, resume=resume)
    except TrainingInterrupted as stopped:
        print(f"mobilecnn: {stopped}")
        return 130
    _report_run(result, demo=True)
    return 0


def run_eval(args: argparse.Namespace) -> int:
    import torch

    from ..data import load_cache, prepare_cache
    from ..train.checkpoints import load_model
    from ..train.distributed import pick_device
    from ..train.loop import evaluate
    from ..train.metrics import write_per_class_csv

    checkpoint_path = Path(args.checkpoint)
    device = pick_device(args.device)
    model, checkpoint = load_model(checkpoint_path, map_location=device)
    split = load_cache(prepare_cache(args.data, args.split, cache_dir=args.cache_dir))
    if list(split.classes) != list(checkpoint["classes"]):
        raise CLIError(
            f"checkpoint {checkpoint_path} was trained on {len(checkpoint['classes'])} classes "
            f"that differ from the {len(split.classes)} classes of {args.data}"
        )
    model.to(memory_format=torch.channels_last)
    metrics = evaluate(model, split.images, split.labels, num_classes=len(split.classes),
                       mean=checkpoint.get("mean"), std=checkpoint.get("std"),
                       batch_size=args.batch_size, precision=args.precision)
    csv_path = Path(args.per_class) if args.per_class else (
        checkpoint_path.parent / f"eval_{args.split}_per_class.csv")
    write_per_class_csv(csv_path, metrics, split.classes, split.class_names)
    print(f"{args.split}: {metrics.count} images  top-1 {100 * metrics.top1_acc:.2f}%  "
          f"top-5 {100 * metrics.top5_acc:.2f}%  loss {metrics.loss:.4f}")
    print(f"per-class accuracy: {csv_path}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from ..train.checkpoints import load_model
    from ..train.distributed import pick_device
    from ..train.predict import predict_images

    model, checkpoint = load_model(args.checkpoint, map_location=pick_device(args.device))
    for prediction in predict_images(model, checkpoint, args.images, top_k=args.top_k):
        print(f"{prediction.path}:")
        for rank, (wnid, name, probability) in enumerate(zip(
                prediction.classes, prediction.class_names, prediction.probabilities,
                strict=True), start=1):
            print(f"  {rank}. {100 * probability:5.1f}%  {name} ({wnid})")
    return 0
