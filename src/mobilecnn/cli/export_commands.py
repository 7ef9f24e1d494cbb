"""``mobilecnn export``: a model name or a training checkpoint to ONNX, ExecuTorch, LiteRT or
TorchScript, in fp32 or (ONNX, ExecuTorch, LiteRT) int8."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .common import CLIError, positive_float, positive_int

FORMATS = ("onnx", "pte", "tflite", "torchscript")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments that pick a model: a name (with its options) or a checkpoint."""
    parser.add_argument("source", metavar="MODEL_OR_CHECKPOINT",
                        help="model name (such as mobilenet_v2) or checkpoint path")
    parser.add_argument("--input-size", type=positive_int, default=None,
                        help="square input size in pixels (default: the checkpoint's training "
                             "size if recorded, else 224)")
    parser.add_argument("--width", type=positive_float, default=None,
                        help="width multiplier for a model name (default 1.0)")
    parser.add_argument("--num-classes", type=positive_int, default=None,
                        help="classifier outputs for a model name (default 1000)")
    parser.add_argument("--total-stride", type=int, choices=(8, 16, 32), default=None,
                        help="for a model name: 32 = paper; 16 for 64x64; 8 for 32x32")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this group's subcommands to the parser."""
    export = subparsers.add_parser(
        "export",
        help="export a model or checkpoint to ONNX, ExecuTorch (.pte), LiteRT (.tflite) or "
             "TorchScript",
        description=(
            "Export MODEL_OR_CHECKPOINT (a model name such as mobilenet_v2, with random weights, "
            "or a checkpoint file written by 'mobilecnn train') to ONNX (onnxruntime), an "
            "ExecuTorch program with the XNNPACK delegate (pte), a LiteRT model (tflite) or "
            "TorchScript. BatchNorm is "
            "folded first; the image size is fixed. --int8 quantizes (ONNX: QDQ for onnxruntime; "
            "pte: XNNPACK int8; tflite: fully int8 LiteRT), calibrating on training images."
        ),
    )
    add_model_arguments(export)
    export.add_argument("--format", required=True, choices=FORMATS,
                        help="onnx (needs the [onnx] extra), pte (ExecuTorch, the [edge] extra), "
                             "tflite (LiteRT, the [litert] extra) "
                             "or torchscript")
    export.add_argument("--out", required=True, type=Path, help="file to write")
    export.add_argument("--int8", action="store_true",
                        help="post-training static int8 quantization (onnx, pte and tflite)")
    export.add_argument("--calibration", metavar="DATA_ROOT", type=Path, default=None,
                        help="data set (TinyImageNet layout) whose train split calibrates --int8 "
                             "(default: the checkpoint's training data; random images for a "
                             "model name)")
    export.add_argument("--calibration-images", type=positive_int, default=256,
                        help="training images used for calibration (default 256)")
    export.add_argument("--allow-nonfinite", action="store_true",
                        help="export a checkpoint whose weights hold NaN or infinite values "
                             "(refused by default: such a model predicts NaN)")
    export.set_defaults(func=run_export)


def _checkpoint_input_size(checkpoint: dict) -> int | None:
    """The training image size the checkpoint records (``image_size``), else None."""
    value = checkpoint.get("image_size")
    if isinstance(value, int) and value > 0:
        return value
    return None


def load_source(args: argparse.Namespace) -> tuple[Any, int, str, dict | None]:
    """``(model, input_size, description, checkpoint or None)`` for the model arguments."""
    from ..models import MODELS, create_model

    source: str = args.source
    if source in MODELS:
        model = create_model(
            source,
            width_mult=1.0 if args.width is None else args.width,
            num_classes=1000 if args.num_classes is None else args.num_classes,
            total_stride=32 if args.total_stride is None else args.total_stride,
        ).eval()
        return model, args.input_size or 224, f"{source} (random weights)", None
    path = Path(source)
    if not path.is_file():
        raise CLIError(
            f"{source!r} is neither a model name ({', '.join(sorted(MODELS))}) nor an "
            "existing checkpoint file"
        )
    given = [flag for flag, value in (("--width", args.width),
                                      ("--num-classes", args.num_classes),
                                      ("--total-stride", args.total_stride))
             if value is not None]
    if given:
        raise CLIError(f"{', '.join(given)} only apply to a model name; a checkpoint "
                       "already records its architecture")
    from ..train.checkpoints import load_model

    model, checkpoint = load_model(path, map_location="cpu",
                                   allow_nonfinite=getattr(args, "allow_nonfinite", False))
    input_size = args.input_size or _checkpoint_input_size(checkpoint) or 224
    described = f"{checkpoint.get('model_name', type(model).__name__)} from {source}"
    return model, input_size, described, checkpoint


def _training_data_root(args: argparse.Namespace) -> Path | None:
    """The data root of the checkpoint's run (its config.json), if it still exists."""
    config_path = Path(args.source).parent / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    data = config.get("data")
    root = Path(args.source).parent / "demo-data" if data == "demo" else Path(str(data))
    return root if root.is_dir() else None


def calibration_images(args: argparse.Namespace, input_size: int, checkpoint: dict | None
                       ) -> tuple[list[Any], str]:
    """Calibration batches for ``--int8`` and a phrase saying where they came from."""
    import torch

    root = args.calibration
    if root is None and checkpoint is not None:
        root = _training_data_root(args)
        if root is None:
            raise CLIError("--int8 needs calibration images and the checkpoint's training data "
                           "was not found: pass --calibration DATA_ROOT")
    if root is None:
        generator = torch.Generator().manual_seed(0)
        images = torch.randn(args.calibration_images, 3, input_size, input_size,
                             generator=generator)
        return list(images.split(64)), "random images (random weights)"
    if not Path(root).is_dir():
        raise CLIError(f"--calibration {str(root)!r} is not a folder")
    from ..data import BatchAugment, load_cache, prepare_cache

    split = load_cache(prepare_cache(root, "train", progress=False, image_size=input_size))
    mean = (checkpoint or {}).get("mean")
    std = (checkpoint or {}).get("std")
    normalize = BatchAugment(train=False, **({"mean": mean, "std": std} if mean and std else {}))
    pick = torch.randperm(len(split), generator=torch.Generator().manual_seed(0))
    images = normalize(split.images[pick[: args.calibration_images]])
    return list(images.split(64)), f"{len(images)} training images of {root}"


def run_export(args: argparse.Namespace) -> int:
    model, input_size, described, checkpoint = load_source(args)
    out: Path = args.out
    if out.is_dir():
        raise CLIError(f"--out {str(out)!r} is a directory; give a file name")
    if not out.parent.exists():
        raise CLIError(f"the folder of --out {str(out)!r} does not exist; create it first")
    if out.exists() and not out.is_file():
        raise CLIError(f"--out {str(out)!r} is not a regular file; give a file name")
    if checkpoint is not None:
        from ..fileio import check_not_input

        check_not_input(out, [args.source], what="--out file")
    if args.int8 and args.format == "torchscript":
        raise CLIError("--int8 works with --format onnx, pte or tflite (TorchScript int8 is not "
                       "supported)")
    try:
        written, precision = _write(args, model, input_size, checkpoint)
    except ImportError as error:
        raise CLIError(str(error)) from None
    except OSError as error:
        raise CLIError(f"could not write --out {str(out)!r}: {error}") from None
    size_mb = written.stat().st_size / 1e6
    batch = {"pte": "batch 1 (larger batches are split)",
             "tflite": "batch 1 (LiteRT can resize it)"}.get(args.format, "dynamic batch")
    print(f"wrote {written} ({args.format} {precision}, {described}, input "
          f"3x{input_size}x{input_size}, {batch}, {size_mb:.2f} MB)")
    return 0


def _write(args: argparse.Namespace, model: Any, input_size: int, checkpoint: dict | None
           ) -> tuple[Path, str]:
    from ..deploy import export_executorch, export_onnx, export_tflite, export_torchscript, quantize

    if args.int8:
        batches, where = calibration_images(args, input_size, checkpoint)
        if args.format == "pte":
            batches = [image.unsqueeze(0) for batch in batches for image in batch]  # batch 1
        backend = {"onnx": "onnxruntime", "pte": "xnnpack", "tflite": "litert"}[args.format]
        quantized = quantize(model, batches, backend=backend)
        return quantized.save(args.out), f"int8, calibrated on {where}"
    if args.format == "onnx":
        return export_onnx(model, args.out, input_size), "fp32"
    if args.format == "pte":
        return export_executorch(model, args.out, input_size), "fp32"
    if args.format == "tflite":
        return export_tflite(model, args.out, input_size), "fp32"
    return export_torchscript(model, args.out, input_size), "fp32"
