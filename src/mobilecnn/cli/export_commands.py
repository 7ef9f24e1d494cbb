"""``mobilecnn export``: a model name or a training checkpoint to ONNX, ExecuTorch, LiteRT or
TorchScript, in fp32 or (ONNX, ExecuTorch, LiteRT) int8: one entry of ``EXPORT_FORMATS`` each."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .common import CLIError, positive_int
from .options import add_model_source, load_source, path_argument

__all__ = ["load_source", "register", "run_export"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this group's subcommands to the parser."""
    from ..deploy.formats import EXPORT_FORMATS

    export = subparsers.add_parser(
        "export",
        help="export a model or checkpoint to ONNX, ExecuTorch (.pte), LiteRT (.tflite) or "
             "TorchScript",
        description=(
            "Export MODEL_OR_CHECKPOINT (a model name such as mobilenet_v2, with random weights, "
            "or a checkpoint file written by 'mobilecnn train') to ONNX (onnxruntime), an "
            "ExecuTorch program with the XNNPACK delegate (pte), a LiteRT model (tflite) or "
            "TorchScript. BatchNorm is folded first; the image size is fixed. --int8 quantizes "
            "(ONNX: QDQ for onnxruntime; pte: XNNPACK int8; tflite: fully int8 LiteRT), "
            "calibrating on training images."
        ),
    )
    add_model_source(export)
    export.add_argument("--format", required=True, choices=tuple(EXPORT_FORMATS),
                        help="; ".join(f"{name}: {spec.help}"
                                       for name, spec in EXPORT_FORMATS.items()))
    export.add_argument("--out", required=True, type=path_argument, help="file to write")
    export.add_argument("--int8", action="store_true",
                        help="post-training static int8 quantization ("
                             + ", ".join(name for name, spec in EXPORT_FORMATS.items()
                                         if spec.int8_backend) + " only)")
    export.add_argument("--calibration", metavar="DATA_ROOT", type=path_argument, default=None,
                        help="data set (TinyImageNet layout) whose train split calibrates --int8 "
                             "(default: the checkpoint's training data; random images for a "
                             "model name)")
    export.add_argument("--calibration-images", type=positive_int, default=256,
                        help="training images used for calibration (default 256)")
    export.set_defaults(func=run_export)


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


def _calibration(args: argparse.Namespace, input_size: int, checkpoint: dict | None
                 ) -> tuple[list[Any], str]:
    """Calibration batches for ``--int8`` and a phrase saying where they came from."""
    from ..deploy.calibration import calibration_images

    root = args.calibration
    if root is None and checkpoint is not None:
        root = _training_data_root(args)
        if root is None:
            raise CLIError("--int8 needs calibration images and the checkpoint's training data "
                           "was not found: pass --calibration DATA_ROOT")
    if root is not None and not Path(root).is_dir():
        raise CLIError(f"--calibration {str(root)!r} is not a folder")
    checkpoint = checkpoint or {}
    batches = calibration_images(root, input_size, args.calibration_images,
                                 mean=checkpoint.get("mean"), std=checkpoint.get("std"))
    if root is None:
        return batches, "random images (random weights)"
    return batches, f"{sum(len(batch) for batch in batches)} training images of {root}"


def _check_out(args: argparse.Namespace) -> None:
    out: Path = args.out
    if out.is_dir():
        raise CLIError(f"--out {str(out)!r} is a directory; give a file name")
    if not out.parent.exists():
        raise CLIError(f"the folder of --out {str(out)!r} does not exist; create it first")
    if out.exists() and not out.is_file():
        raise CLIError(f"--out {str(out)!r} is not a regular file; give a file name")
    if Path(args.source).is_file():
        from ..fileio import check_not_input

        check_not_input(out, [args.source], what="--out file")


def run_export(args: argparse.Namespace) -> int:
    from ..deploy.formats import EXPORT_FORMATS, export_model

    spec = EXPORT_FORMATS[args.format]
    if args.int8 and spec.int8_backend is None:
        with_int8 = [name for name, item in EXPORT_FORMATS.items() if item.int8_backend]
        listed = ", ".join(with_int8[:-1]) + " or " + with_int8[-1]
        raise CLIError(f"--int8 works with --format {listed} ({args.format} int8 is not "
                       "supported)")
    _check_out(args)
    model, input_size, described, checkpoint = load_source(args)
    out: Path = args.out
    calibration, precision = None, "fp32"
    if args.int8:
        calibration, where = _calibration(args, input_size, checkpoint)
        precision = f"int8, calibrated on {where}"
    try:
        written = export_model(model, out, args.format, input_size,
                               int8_calibration=calibration)
    except ImportError as error:
        raise CLIError(str(error)) from None
    except OSError as error:
        raise CLIError(f"could not write --out {str(out)!r}: {error}") from None
    size_mb = written.stat().st_size / 1e6
    batch = spec.batch
    print(f"wrote {written} ({args.format} {precision}, {described}, input "
          f"3x{input_size}x{input_size}, {batch}, {size_mb:.2f} MB)")
    return 0
