"""``mobilecnn compare`` and ``mobilecnn summary``."""

from __future__ import annotations

import argparse

from ..limits import INPUT_SIZE, NUM_CLASSES, WIDTH
from .common import bounded_float, bounded_int, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..models import MODELS

    compare = subparsers.add_parser(
        "compare",
        help="standard vs depthwise-separable convolution: parameters and MACs",
        description="Count a standard k x k convolution and its depthwise-separable version.",
    )
    compare.add_argument("--in", dest="in_channels", type=positive_int, default=128,
                         help="input channels (default 128)")
    compare.add_argument("--out", dest="out_channels", type=positive_int, default=256,
                         help="output channels (default 256)")
    compare.add_argument("--kernel", type=positive_int, default=3, help="kernel size (default 3)")
    compare.set_defaults(func=run_compare)

    summary = subparsers.add_parser(
        "summary",
        help="per-layer table of output shapes, parameters and MACs",
        description="Print the layer table and totals of a model.",
    )
    summary.add_argument("model", choices=sorted(MODELS), metavar="MODEL",
                         help=f"one of: {', '.join(sorted(MODELS))}")
    summary.add_argument("--input-size", default=224,
                         type=bounded_int(INPUT_SIZE),
                         help="square input size in pixels (default 224)")
    summary.add_argument("--width", type=bounded_float(WIDTH), default=1.0,
                         help="width multiplier (default 1.0)")
    summary.add_argument("--num-classes", type=bounded_int(NUM_CLASSES), default=1000,
                         help="classifier outputs (default 1000)")
    summary.add_argument("--total-stride", type=int, choices=(8, 16, 32), default=32,
                         help="32 = paper; 16 for 64x64 inputs; 8 for 32x32 inputs")
    summary.set_defaults(func=run_summary)


def run_compare(args: argparse.Namespace) -> int:
    from ..counting import conv_comparison

    print(conv_comparison(args.in_channels, args.out_channels, args.kernel).table())
    return 0


def run_summary(args: argparse.Namespace) -> int:
    from ..counting import summary
    from ..models import create_model

    model = create_model(args.model, width_mult=args.width, num_classes=args.num_classes,
                         total_stride=args.total_stride)
    print(summary(model, args.input_size).table())
    return 0
