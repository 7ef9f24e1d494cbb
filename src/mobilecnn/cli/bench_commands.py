"""``mobilecnn bench``: inference speed of a model on every backend of this machine."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .common import CLIError, positive_float, positive_int
from .export_commands import add_model_arguments, load_source


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
    add_model_arguments(bench)
    bench.add_argument("--batch-size", type=positive_int, default=1, help="default 1")
    bench.add_argument("--backends", default=None,
                       help="comma-separated backends to time (default: all but the compile ones)")
    bench.add_argument("--compile", action="store_true",
                       help="also time torch.compile (compiling takes minutes on a small CPU)")
    bench.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                       help="cuda: time only the GPU rows (cuda, cuda-amp)")
    bench.add_argument("--threads", type=positive_int, default=None,
                       help="threads for torch and the runtimes (default: torch's choice)")
    bench.add_argument("--budget", type=positive_float, default=20.0,
                       help="seconds of timing after the warm-up (default 20)")
    bench.add_argument("--warmup", type=int, default=2, help="warm-up rounds (default 2)")
    bench.add_argument("--min-reps", type=positive_int, default=3,
                       help="timed rounds at least, budget or not (default 3)")
    bench.add_argument("--max-reps", type=positive_int, default=200,
                       help="timed rounds at most (default 200)")
    bench.add_argument("--csv", type=Path, default=None, help="write the results as CSV")
    bench.add_argument("--plot", type=Path, default=None,
                       help="write a PNG bar chart (needs the [plot] extra)")
    bench.add_argument("--progress", action="store_true",
                       help="progress bar even when stderr is not a terminal")
    bench.set_defaults(func=run_bench)


def _backends(args: argparse.Namespace) -> list[str]:
    from ..deploy.backends import BACKENDS

    if args.backends is not None:
        names = [name.strip() for name in args.backends.split(",") if name.strip()]
        unknown = [name for name in names if name not in BACKENDS]
        if unknown or not names:
            raise CLIError(f"--backends: unknown {', '.join(unknown) or '(empty)'}; choose from "
                           f"{', '.join(BACKENDS)}")
    elif args.device == "cuda":
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
    progress = args.progress or sys.stderr.isatty()
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
