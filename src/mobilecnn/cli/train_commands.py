"""``mobilecnn train``, ``eval``, ``predict`` and ``demo``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .common import CLIError, positive_int
from .config_options import add_config_options, given_config_values
from .options import (
    add_checkpoint_option,
    add_device_option,
    add_model_options,
    add_progress_option,
    add_resume_option,
    path_argument,
)

DEMO_EPOCHS = 6
"""Epochs of ``mobilecnn demo``: 88-97% val top-1 (depending on the seed) in under 3 minutes
on 2 idle cores (measured; see docs/training.md)."""

def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this group's subcommands to the parser: train, eval, predict, demo."""
    _register_train(subparsers)
    _register_eval(subparsers)
    _register_predict(subparsers)
    _register_demo(subparsers)


def _register_train(subparsers: argparse._SubParsersAction) -> None:
    from ..train.config import TrainConfig, check_field

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
    add_config_options(train, TrainConfig, check_field)
    add_resume_option(train, "continue from <out>/last.pt, or from PATH")
    train.add_argument("--print-config", action="store_true",
                       help="print the resolved settings (recipe, defaults, options given) as "
                            "JSON and exit without training")
    train.set_defaults(func=run_train)


def _register_eval(subparsers: argparse._SubParsersAction) -> None:
    evaluate = subparsers.add_parser(
        "eval",
        help="top-1/top-5 of a checkpoint on a split, per-class accuracy to a CSV",
        description="Evaluate a checkpoint on a TinyImageNet split.",
    )
    add_checkpoint_option(evaluate)
    evaluate.add_argument("--data", required=True, type=path_argument, metavar="DIR",
                          help="tiny-imagenet-200 folder")
    evaluate.add_argument("--split", choices=("train", "val"), default="val",
                          help="default val")
    evaluate.add_argument("--batch-size", type=positive_int, default=512, help="default 512")
    evaluate.add_argument("--per-class", type=path_argument, metavar="CSV",
                          help="per-class accuracy file (default <checkpoint folder>/"
                               "eval_<split>_per_class.csv)")
    evaluate.add_argument("--precision", choices=("fp32", "bf16", "fp16", "auto"), default="fp32",
                          help="default fp32")
    add_device_option(evaluate)
    evaluate.add_argument("--cache-dir", type=path_argument, metavar="DIR", default=None,
                          help="decoded-image cache (default <data>/.mobilecnn_cache)")
    evaluate.add_argument("--recalibrate-bn", type=path_argument, metavar="OUT", default=None,
                          help="first recompute the BatchNorm statistics over 1,024 training "
                               "images of --data, write that checkpoint to OUT and evaluate it")
    evaluate.set_defaults(func=run_eval)


def _register_predict(subparsers: argparse._SubParsersAction) -> None:
    from ..models import MODELS

    predict = subparsers.add_parser(
        "predict",
        help="top-5 classes of image files",
        description="Classify images with a checkpoint, or with an ImageNet model "
                    "(--model with --pretrained): prints the top classes with names.",
    )
    add_checkpoint_option(predict, required=False)
    predict.add_argument("--model", choices=sorted(MODELS), metavar="MODEL",
                         help=f"with --pretrained, instead of --checkpoint: one of "
                              f"{', '.join(sorted(MODELS))}")
    predict.add_argument("--pretrained", metavar="WEIGHTS",
                         help="ImageNet weights for --model: a .pth/.bin/.safetensors file, "
                              "'default' or a tag (downloaded once; see docs/weights.md)")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    predict.add_argument("--top-k", type=positive_int, default=5, help="default 5")
    add_model_options(predict, input_size_only=True)
    add_device_option(predict, default="cpu")
    predict.set_defaults(func=run_predict)


def _register_demo(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="generate a small image data set and train on it on the CPU (~3 minutes)",
        description=(
            "Generate 10 classes of procedurally drawn 64x64 shapes and textures (NOT real "
            "photos) in the TinyImageNet layout and train a small-input MobileNetV2 on it on "
            "the CPU."
        ),
    )
    demo.add_argument("--out", type=path_argument, default=None, metavar="DIR",
                      help="run folder (default ./mobilecnn-demo, or with --resume PATH the "
                           "checkpoint's folder)")
    demo.add_argument("--epochs", type=positive_int, default=DEMO_EPOCHS,
                      help=f"default {DEMO_EPOCHS}")
    add_progress_option(demo)
    add_resume_option(demo, "continue an interrupted demo", default=None)
    demo.set_defaults(func=run_demo)


def _train_config(args: argparse.Namespace) -> tuple[Any, Any]:
    """The run's config and, with --resume, the checkpoint it continues (read once)."""
    from ..train.config import TrainConfig, demo_config, with_recipe
    from ..train.resume import open_resume

    given = with_recipe(given_config_values(args, TrainConfig))  # the recipe fills in the rest
    resume = getattr(args, "resume", None)
    if resume is not None:
        point = open_resume(resume, given.get("out_dir", TrainConfig.out_dir))
        assert point is not None
        base = point.config.to_dict()
        # no path read from a file decides where anything is written: the run folder is --out
        # or the checkpoint's folder; the recorded data and cache folders are only read
        # (_builds_caches), and a cache is built only where the command line says
        if _builds_caches(given, point):
            base["cache_dir"] = None
        base.update(given)
        base["out_dir"] = given.get("out_dir", str(point.path.parent))
        return TrainConfig.from_dict(base), point
    if given.get("data") == "demo":
        given.setdefault("out_dir", "mobilecnn-demo")
        return demo_config(**given), None
    if "data" not in given:
        if getattr(args, "print_config", False):
            return TrainConfig(**given), None
        raise CLIError("--data is required: a tiny-imagenet-200 folder, or 'demo'")
    return TrainConfig(**given), None


def _builds_caches(given: dict[str, Any], point: Any) -> bool:
    """Whether this run may build decoded caches: not when a resume takes its data folder
    from the checkpoint (then the caches there must exist, and are only read)."""
    return point is None or "data" in given or point.config.data == "demo"


def _fit_recipe(args: argparse.Namespace, config: Any) -> Any:
    """Scale a recipe's EMA decay and warmup to the run (those not given); its note, if any,
    goes to stderr as one line."""
    import sys

    from ..train.config import TrainConfig, fit_recipe_config
    from ..train.recipes import get_recipe

    if config.recipe is None:
        return config
    given = given_config_values(args, TrainConfig)
    # without --data (e.g. --print-config alone) the run is taken to have the designed data
    images = None if "data" in given else get_recipe(config.recipe).design_images
    config, note = fit_recipe_config(config, given, images)
    if note is not None:
        print(f"mobilecnn: {note}", file=sys.stderr, flush=True)
    return config


def _report_run(result: Any, demo: bool) -> None:
    """The final figures and the files this run wrote (nothing it did not write)."""
    final = result.final
    print(f"done: val top-1 {100 * final['val_top1']:.1f}%, top-5 {100 * final['val_top5']:.1f}%"
          f" (best top-1 {100 * result.best_val_top1:.1f}%)")
    if result.checkpoint_written:
        best = f", {result.best_checkpoint} (best)" if result.best_checkpoint.exists() else ""
        print(f"checkpoints: {result.last_checkpoint} (last){best}")
    if result.metrics_path.exists():
        print(f"metrics:     {result.metrics_path}")
    if result.plots:
        print(f"plots:       {', '.join(str(p) for p in result.plots)}")
    if demo:
        print("note: this is GENERATED data (coloured shapes and textures), far easier than "
              "TinyImageNet; the accuracy says the pipeline works, not how good the model is.")


def run_train(args: argparse.Namespace) -> int:
    from ..train.config import TrainConfig
    from ..train.loop import TrainingInterrupted, train

    config, point = _train_config(args)
    if point is None:
        config = _fit_recipe(args, config)
    if getattr(args, "print_config", False):
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    if config.recipe == "finetune" and config.init is None and point is None:
        raise CLIError("the finetune recipe starts from trained weights: add --init "
                       "torchvision:PATH.pth (ImageNet mobilenet_v2) or --init CHECKPOINT")
    if config.qat and config.init is None and point is None:
        raise CLIError("--qat fine-tunes trained weights: add --init CHECKPOINT (a run's "
                       "best.pt) or --init torchvision:PATH.pth")
    try:
        result = train(config, resume=point, build_caches=_builds_caches(
            given_config_values(args, TrainConfig), point))
    except TrainingInterrupted as stopped:
        print(f"mobilecnn: {stopped}")
        return 130
    _report_run(result, demo=config.data == "demo")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from ..train.config import demo_config
    from ..train.loop import TrainingInterrupted, train

    out = args.out
    if out is None:  # a resumed demo continues where its checkpoint is
        out = Path(args.resume).parent if args.resume not in (None, "last") else Path(
            "mobilecnn-demo")
    config = demo_config(out_dir=str(out), epochs=args.epochs, progress=args.progress)
    print("mobilecnn demo: generating a small data set of drawn shapes and textures "
          f"(10 classes, 64x64) under {Path(out) / 'demo-data'} and training on the CPU")
    try:
        result = train(config, resume=args.resume)
    except TrainingInterrupted as stopped:
        print(f"mobilecnn: {stopped}")
        return 130
    _report_run(result, demo=True)
    return 0


def run_eval(args: argparse.Namespace) -> int:
    import torch

    from ..data import load_cache, prepare_cache
    from ..devices import pick_device
    from ..fileio import check_not_input, describe_os_error
    from ..train.checkpoints import load_model
    from ..train.evaluation import evaluate
    from ..train.metrics import write_per_class_csv

    checkpoint_path = Path(args.checkpoint)
    csv_path = Path(args.per_class) if args.per_class else (
        checkpoint_path.parent / f"eval_{args.split}_per_class.csv")
    check_not_input(csv_path, [checkpoint_path], what="--per-class file")  # before the work
    device = pick_device(args.device)
    model, checkpoint = load_model(checkpoint_path, map_location=device,
                                   allow_nonfinite=args.allow_nonfinite)
    checkpoint_path, model, checkpoint = _check_batchnorm(args, checkpoint_path, model,
                                                          checkpoint, device)
    split = load_cache(prepare_cache(args.data, args.split, cache_dir=args.cache_dir),
                       verify=False)  # prepare_cache just verified it
    if list(split.classes) != list(checkpoint["classes"]):
        raise CLIError(
            f"checkpoint {checkpoint_path} was trained on {len(checkpoint['classes'])} classes "
            f"that differ from the {len(split.classes)} classes of {args.data}"
        )
    model.to(memory_format=torch.channels_last)
    metrics = evaluate(model, split.images, split.labels, num_classes=len(split.classes),
                       mean=checkpoint.get("mean"), std=checkpoint.get("std"),
                       batch_size=args.batch_size, precision=args.precision)
    print(f"{args.split}: {metrics.count} images  top-1 {100 * metrics.top1_acc:.2f}%  "
          f"top-5 {100 * metrics.top5_acc:.2f}%  loss {metrics.loss:.4f}", flush=True)
    try:
        write_per_class_csv(csv_path, metrics, split.classes, split.class_names)
    except OSError as error:
        raise CLIError(f"the per-class accuracy could not be written: "
                       f"{describe_os_error(error)}; pass --per-class FILE in a writable "
                       "folder") from None
    print(f"per-class accuracy: {csv_path}")
    return 0


def _check_batchnorm(args: argparse.Namespace, path: Path, model: Any,
                     checkpoint: dict[str, Any], device: Any) -> tuple[Path, Any, dict[str, Any]]:
    """Warn (one line on stderr) about untrained or stale BatchNorm statistics; with
    ``--recalibrate-bn OUT`` recompute them first and evaluate OUT instead."""
    import sys

    from ..train.batchnorm_stats import batchnorm_warning, recalibrate_checkpoint
    from ..train.checkpoints import load_model

    if args.recalibrate_bn is None:
        warning = batchnorm_warning(model, checkpoint)
        if warning is not None:
            print(f"mobilecnn: {warning}", file=sys.stderr, flush=True)
        return path, model, checkpoint
    try:
        out = recalibrate_checkpoint(path, args.data, args.recalibrate_bn, device=str(device),
                                     cache_dir=args.cache_dir)
    except ValueError as error:
        raise CLIError(str(error)) from None
    print(f"recalibrated BatchNorm statistics: {out}", flush=True)
    model, checkpoint = load_model(out, map_location=device)
    return out, model, checkpoint


def run_predict(args: argparse.Namespace) -> int:
    from ..devices import pick_device
    from ..train.checkpoints import load_model
    from ..train.predict import predict_imagenet, predict_images

    if (args.checkpoint is None) == (args.model is None and args.pretrained is None):
        raise CLIError("predict takes either --checkpoint CKPT or --model MODEL --pretrained "
                       "WEIGHTS")
    device = pick_device(args.device)
    if args.checkpoint is None:
        if args.model is None or args.pretrained is None:
            raise CLIError("--model and --pretrained go together (e.g. --model mobilenet_v2 "
                           "--pretrained mobilenet_v2-7ebf99e0.pth)")
        if args.input_size is not None:
            raise CLIError("--input-size applies to --checkpoint; an ImageNet model is fed "
                           "images as its weights were trained")
        from ..factory import create_model

        weights = True if args.pretrained == "default" else args.pretrained
        model = create_model(args.model, pretrained=weights).to(device)
        predictions = predict_imagenet(model, args.images, top_k=args.top_k)
    else:
        model, checkpoint = load_model(args.checkpoint, map_location=device,
                                       allow_nonfinite=args.allow_nonfinite)
        if args.input_size is not None:  # the size images are resized to
            checkpoint = {**checkpoint, "image_size": args.input_size}
        predictions = predict_images(model, checkpoint, args.images, top_k=args.top_k)
    for prediction in predictions:
        print(f"{prediction.path}:")
        for rank, (wnid, name, probability) in enumerate(zip(
                prediction.classes, prediction.class_names, prediction.probabilities,
                strict=True), start=1):
            print(f"  {rank}. {100 * probability:5.1f}%  {name} ({wnid})")
    return 0
