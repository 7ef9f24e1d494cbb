"""The options several commands share, each written once with its rule and its limit.

* model options (``--input-size``, ``--width``, ``--num-classes``, ``--total-stride``),
  bounded by :mod:`mobilecnn.limits` (summary, export, bench; ``--input-size`` also predict);
* the model source of export and bench (a model name or a checkpoint) and :func:`load_source`;
* ``--device`` (the one rule of :func:`mobilecnn.devices.pick_device`);
* ``--checkpoint`` (with ``--allow-nonfinite``), ``--progress``/``--no-progress`` and
  ``--resume``;
* :func:`path_argument`, an argparse type that refuses an empty path.

``train`` gets its options from ``TrainConfig`` (:mod:`.config_options`), which uses the same
limits and the same device rule.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..devices import DEVICE_CHOICES, check_device_name
from ..limits import INPUT_SIZE, NUM_CLASSES, WIDTH, check_size
from .common import CLIError, bounded_float, bounded_int

__all__ = [
    "MODEL_DEFAULTS",
    "add_checkpoint_option",
    "add_device_option",
    "add_model_options",
    "add_model_source",
    "add_progress_option",
    "add_resume_option",
    "device_name",
    "load_source",
    "path_argument",
    "show_progress",
]

MODEL_DEFAULTS: dict[str, Any] = {"input_size": 224, "width": 1.0, "num_classes": 1000,
                                  "total_stride": 32}
"""The model options' values when neither the command line nor a checkpoint gives one."""


def path_argument(text: str) -> Path:
    """argparse type: a non-empty path (``Path('')`` would silently mean the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a path, got {text!r}; give a file or folder "
                                         "name ('.' for the current folder)")
    return Path(text)


def device_name(text: str) -> str:
    """argparse type: a device spelling :func:`~mobilecnn.devices.pick_device` accepts."""
    try:
        return check_device_name(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_model_options(parser: argparse.ArgumentParser, *, from_checkpoint: bool = False,
                      input_size_only: bool = False) -> None:
    """``--input-size``, ``--width``, ``--num-classes`` and ``--total-stride``, with limits.

    ``from_checkpoint``: the options default to None, meaning "the checkpoint's value, else
    :data:`MODEL_DEFAULTS`". ``input_size_only``: just ``--input-size`` (predict).
    """
    def default(name: str) -> Any:
        return None if from_checkpoint or input_size_only else MODEL_DEFAULTS[name]

    size_help = (" (default: the checkpoint's training size if recorded, else 224)"
                 if from_checkpoint else " (default: the checkpoint's training size)"
                 if input_size_only else " (default 224)")
    parser.add_argument("--input-size", type=bounded_int(INPUT_SIZE), default=default(
        "input_size"), metavar="PIXELS", help="square input size in pixels" + size_help)
    if input_size_only:
        return
    which = "for a model name: " if from_checkpoint else ""
    parser.add_argument("--width", type=bounded_float(WIDTH), default=default("width"),
                        help=f"{which}width multiplier (default 1.0)")
    parser.add_argument("--num-classes", type=bounded_int(NUM_CLASSES),
                        default=default("num_classes"),
                        help=f"{which}classifier outputs (default 1000)")
    parser.add_argument("--total-stride", type=int, choices=(8, 16, 32),
                        default=default("total_stride"),
                        help=f"{which}32 = paper; 16 for 64x64 inputs; 8 for 32x32 inputs")


def add_model_source(parser: argparse.ArgumentParser) -> None:
    """``MODEL_OR_CHECKPOINT`` and the model options; read them with :func:`load_source`."""
    parser.add_argument("source", metavar="MODEL_OR_CHECKPOINT",
                        help="model name (such as mobilenet_v2) or checkpoint path")
    add_model_options(parser, from_checkpoint=True)
    _add_allow_nonfinite(parser)


def load_source(args: argparse.Namespace) -> tuple[Any, int, str, dict | None]:
    """``(model, input_size, description, checkpoint or None)`` of :func:`add_model_source`."""
    from ..models import MODELS, create_model

    source: str = args.source
    if source in MODELS:
        values = {name: MODEL_DEFAULTS[name] if getattr(args, name) is None
                  else getattr(args, name) for name in MODEL_DEFAULTS}
        model = create_model(source, width_mult=values["width"],
                             num_classes=int(values["num_classes"]),
                             total_stride=int(values["total_stride"])).eval()
        return model, int(values["input_size"]), f"{source} (random weights)", None
    path = Path(source)
    if not path.is_file():
        raise CLIError(f"{source!r} is neither a model name ({', '.join(sorted(MODELS))}) nor an "
                       "existing checkpoint file")
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
    input_size = int(args.input_size or checkpoint.get("image_size")
                     or MODEL_DEFAULTS["input_size"])
    check_size(f"the image size {source} records", input_size, INPUT_SIZE,
               fix="pass a smaller --input-size")
    described = f"{checkpoint.get('model_name', type(model).__name__)} from {source}"
    return model, input_size, described, checkpoint


def add_device_option(parser: argparse.ArgumentParser, default: str = "auto",
                      help: str | None = None) -> None:
    """``--device``: checked when parsed; :func:`~mobilecnn.devices.pick_device` checks that
    this machine has it."""
    parser.add_argument("--device", type=device_name, default=default, metavar="DEVICE",
                        help=help or f"{DEVICE_CHOICES} (default {default})")


def add_checkpoint_option(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """``--checkpoint CKPT``: a ``.pt`` file written by ``mobilecnn train``; and
    ``--allow-nonfinite``."""
    parser.add_argument("--checkpoint", required=required, type=path_argument, metavar="CKPT",
                        help="a .pt checkpoint written by 'mobilecnn train'")
    _add_allow_nonfinite(parser)


def _add_allow_nonfinite(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allow-nonfinite", action="store_true",
                        help="use a checkpoint whose weights hold NaN or infinite values "
                             "(refused by default: such a model predicts NaN)")


def add_progress_option(parser: argparse.ArgumentParser) -> None:
    """``--progress`` / ``--no-progress``; neither: bars only when stderr is a terminal."""
    parser.add_argument("--progress", dest="progress", action="store_true", default=None,
                        help="progress bars even when stderr is not a terminal")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bars")


def show_progress(args: argparse.Namespace) -> bool:
    """Whether to draw progress bars for :func:`add_progress_option`'s value."""
    chosen = getattr(args, "progress", None)
    return sys.stderr.isatty() if chosen is None else bool(chosen)


def add_resume_option(parser: argparse.ArgumentParser, help: str, **kwargs: Any) -> None:
    """``--resume [PATH]``: without PATH, the run folder's ``last.pt``."""
    parser.add_argument("--resume", nargs="?", const="last", metavar="PATH", help=help,
                        **kwargs)
