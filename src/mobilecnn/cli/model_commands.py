"""``mobilecnn compare`` and ``mobilecnn summary``."""

from __future__ import annotations

import argparse

from ..limits import CHANNELS, CONV_WEIGHTS, KERNEL_SIZE
from .common import CLIError, bounded_int
from .options import add_model_options


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..models import MODELS

    compare = subparsers.add_parser(
        "compare",
        help="standard vs depthwise-separable convolution: parameters and MACs",
        description="Count a standard k x k convolution and its depthwise-separable version.",
    )
    compare.add_argument("--in", dest="in_channels", type=bounded_int(CHANNELS), default=128,
                         help="input channels (default 128)")
    compare.add_argument("--out", dest="out_channels", type=bounded_int(CHANNELS), default=256,
                         help="output channels (default 256)")
    compare.add_argument("--kernel", type=bounded_int(KERNEL_SIZE), default=3,
                         help="kernel size (default 3)")
    compare.set_defaults(func=run_compare)

    summary = subparsers.add_parser(
        "summary",
        help="per-layer table of output shapes, parameters and MACs",
        description="Print the layer table and totals of a model.",
    )
    summary.add_argument("model", choices=sorted(MODELS), metavar="MODEL",
                         help=f"one of: {', '.join(sorted(MODELS))}")
    add_model_options(summary)
    summary.set_defaults(func=run_summary)


def run_compare(args: argparse.Namespace) -> int:
    from ..counting import conv_comparison

    weights = args.in_channels * args.out_channels * args.kernel**2
    if weights > CONV_WEIGHTS.maximum:
        raise CLIError(f"--in {args.in_channels} --out {args.out_channels} --kernel "
                       f"{args.kernel} is a convolution of {weights:,} weights, more than the "
                       f"{CONV_WEIGHTS.maximum:,} ({CONV_WEIGHTS.why}) it may build to count; use "
                       "fewer channels or a smaller kernel")
    print(conv_comparison(args.in_channels, args.out_channels, args.kernel).table())
    return 0


def run_summary(args: argparse.Namespace) -> int:
    from ..counting import summary
    from ..models import create_model

    model = create_model(args.model, width_mult=args.width, num_classes=args.num_classes,
                         total_stride=args.total_stride)
    print(summary(model, args.input_size).table())
    return 0
