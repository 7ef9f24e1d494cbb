"""``mobilecnn export``: a model name or a training checkpoint to ONNX or TorchScript."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import CLIError, positive_float, positive_int

FORMATS = ("onnx", "torchscript")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this group's subcommands to the parser."""
    export = subparsers.add_parser(
        "export",
        help="export a model or checkpoint to ONNX or TorchScript",
        description=(
            "Export MODEL_OR_CHECKPOINT (a model name such as mobilenet_v2, with random weights, "
            "or a checkpoint file written by 'mobilecnn train') to ONNX or TorchScript. "
            "BatchNorm is folded first; the batch size stays free, the image size is fixed."
        ),
    )
    export.add_argument("source", metavar="MODEL_OR_CHECKPOINT",
                        help="model name (mobilenet_v1, mobilenet_v2) or checkpoint path")
    export.add_argument("--format", required=True, choices=FORMATS,
                        help="onnx (needs the [onnx] extra) or torchscript")
    export.add_argument("--out", required=True, type=Path, help="file to write")
    export.add_argument("--input-size", type=positive_int, default=None,
                        help="square input size in pixels (default: the checkpoint's training "
                             "size if recorded, else 224)")
    export.add_argument("--width", type=positive_float, default=None,
                        help="width multiplier for a model name (default 1.0)")
    export.add_argument("--num-classes", type=positive_int, default=None,
                        help="classifier outputs for a model name (default 1000)")
    export.add_argument("--total-stride", type=int, choices=(8, 16, 32), default=None,
                        help="for a model name: 32 = paper; 16 for 64x64; 8 for 32x32")
    export.set_defaults(func=run_export)


def _checkpoint_input_size(checkpoint: dict) -> int | None:
    """The training image size the checkpoint records (``image_size``), else None."""
    value = checkpoint.get("image_size")
    if isinstance(value, int) and value > 0:
        return value
    return None


def run_export(args: argparse.Namespace) -> int:
    from ..models import MODELS, create_model

    source: str = args.source
    if source in MODELS:
        model = create_model(
            source,
            width_mult=1.0 if args.width is None else args.width,
            num_classes=1000 if args.num_classes is None else args.num_classes,
            total_stride=32 if args.total_stride is None else args.total_stride,
        ).eval()
        input_size = args.input_size or 224
        described = f"{source} (random weights)"
    else:
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

        model, checkpoint = load_model(path, map_location="cpu")
        input_size = args.input_size or _checkpoint_input_size(checkpoint) or 224
        described = f"{checkpoint.get('model_name', type(model).__name__)} from {source}"

    out: Path = args.out
    if out.is_dir():
        raise CLIError(f"--out {str(out)!r} is a directory; give a file name")
    if not out.parent.exists():
        raise CLIError(f"the folder of --out {str(out)!r} does not exist; create it first")

    from ..deploy import export_onnx, export_torchscript

    if args.format == "onnx":
        try:
            written = export_onnx(model, out, input_size)
        except ImportError as error:
            raise CLIError(str(error)) from None
    else:
        written = export_torchscript(model, out, input_size)
    size_mb = written.stat().st_size / 1e6
    print(f"wrote {written} ({args.format}, {described}, input 3x{input_size}x{input_size}, "
          f"dynamic batch, {size_mb:.1f} MB)")
    return 0
