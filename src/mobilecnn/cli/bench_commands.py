"""``mobilecnn bench``: inference speed of a model on every backend of this machine."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..limits import BATCH_SIZE
from .common import CLIError, bounded_int, positive_float, positive_int
from .options import (
    add_device_option,
    add_model_source,
    add_progress_option,
    load_source,
    path_argument,
    show_progress,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this group's subcommands to the parser."""
    from ..deploy.backends import BACKENDS

    bench = subparsers.add_parser(
        "bench",
        help="time a model on every inference backend available here",
        description=(
            "Time MODEL_OR_CHECKPOINT (a model name with random weights, or a checkpoint) on "
            "every backend available on this machine: PyTorch eager/optimized/TorchScript, "
            "torch.compile (--compile), ONNX Runtime fp32/int8, ExecuTorch (XNNPACK) fp32/int8, "
            "int8 PyTorch, CUDA eager/AMP. Round-robin timing after a warm-up; medians with "
            "quartiles. Backends that are not installed get a row saying so. Backends: "
            + ", ".join(BACKENDS) + "."
        ),
    )
    add_model_source(bench)
    bench.add_argument("--batch-size", type=bounded_int(BATCH_SIZE), default=1, help="default 1")
    bench.add_argument("--backends", default=None,
                       help="comma-separated backends to time (default: all but the compile ones)")
    bench.add_argument("--compile", action="store_true",
                       help="also time torch.compile (compiling takes minutes on a small CPU)")
    add_device_option(bench, default="cpu",
                      help="cpu (default): the CPU rows; cuda or cuda:N: only the GPU rows "
                           "(cuda-eager, cuda, cuda-amp); auto: cuda when there is one, else cpu")
    bench.add_argument("--threads", type=positive_int, default=None,
                       help="threads for torch and the runtimes (default: torch's choice)")
    bench.add_argument("--budget", type=positive_float, default=20.0,
                       help="seconds of timing after the warm-up (default 20)")
    bench.add_argument("--warmup", type=int, default=2, help="warm-up rounds (default 2)")
    bench.add_argument("--min-reps", type=positive_int, default=3,
                       help="timed rounds at least, budget or not (default 3)")
    bench.add_argument("--max-reps", type=positive_int, default=200,
                       help="timed rounds at most (default 200)")
    bench.add_argument("--csv", type=path_argument, default=None,
                       help="write the results as CSV")
    bench.add_argument("--plot", type=path_argument, default=None,
                       help="write a PNG bar chart (needs the [plot] extra)")
    add_progress_option(bench)
    bench.set_defaults(func=run_bench)


def _device_type(requested: str) -> str:
    """``cpu`` or ``cuda``: the rows ``--device`` asks for (a missing GPU is a one-line error)."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    from ..devices import pick_device

    device = pick_device(requested)
    if device.type not in ("cpu", "cuda"):
        raise CLIError(f"--device {requested}: bench times CPU and CUDA backends; use --device "
                       "cpu, cuda or auto")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device.type


def _backends(args: argparse.Namespace) -> list[str]:
    import torch

    from ..deploy.backends import BACKENDS

    device = _device_type(args.device)
    if args.backends is not None:
        names = [name.strip() for name in args.backends.split(",")]
        unknown = [name for name in names if name not in BACKENDS]
        if unknown:
            what = (f"an empty name in {args.backends!r}" if "" in unknown
                    else f"unknown {', '.join(unknown)}")
            raise CLIError(f"--backends: {what}; give comma-separated names from "
                           f"{', '.join(BACKENDS)}")
        gpu = [name for name in names if name.startswith("cuda")]
        if gpu and device != "cuda" and not torch.cuda.is_available():
            raise CLIError(f"--backends {', '.join(gpu)}: GPU rows need CUDA, which is not "
                           "available here; leave them out")
    elif device == "cuda":
        names = ["cuda-eager", "cuda", "cuda-amp"] + (["cuda-compile"] if args.compile else [])
    else:
        names = [name for name in BACKENDS if not name.startswith("cuda") and name != "compile"]
        if args.compile:
            names.insert(names.index("torchscript") + 1, "compile")
    return names


def _check_output(path: Path | None, flag: str, source: str) -> None:
    if path is None:
        return
    if path.is_dir() or not path.parent.is_dir():
        raise CLIError(f"{flag} {str(path)!r}: give a file name in an existing folder")
    from ..fileio import check_not_input

    check_not_input(path, [source], what=f"{flag} file")


def run_bench(args: argparse.Namespace) -> int:
    from ..deploy.bench import benchmark_backends, format_table, plot_results, write_csv

    if args.warmup < 0 or args.max_reps < args.min_reps:
        raise CLIError("need --warmup >= 0 and --max-reps >= --min-reps")
    names = _backends(args)
    _check_output(args.csv, "--csv", args.source)
    _check_output(args.plot, "--plot", args.source)
    model, input_size, described, _ = load_source(args)
    progress = show_progress(args)
    print(f"benchmarking {described}, batch {args.batch_size} x 3x{input_size}x{input_size}, "
          f"backends: {', '.join(names)}", flush=True)
    results = benchmark_backends(
        model, input_size, args.batch_size, backends=names,
        model_name=Path(args.source).name if os.sep in args.source else args.source,
        threads=args.threads, warmup=args.warmup, min_reps=args.min_reps,
        max_reps=args.max_reps, budget_s=args.budget, progress=progress,
    )
    print(format_table(results))
    try:
        if args.csv is not None:
            print(f"wrote {write_csv(results, args.csv)}")
        if args.plot is not None:
            print(f"wrote {plot_results(results, args.plot)}")
    except ImportError as error:
        raise CLIError(str(error)) from None
    except OSError as error:
        raise CLIError(f"could not write: {error}") from None
    return 0
