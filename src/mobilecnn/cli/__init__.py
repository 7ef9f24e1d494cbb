"""The ``mobilecnn`` command line: one module per command group, each with ``register()``.

Errors a user can fix (bad numbers, unknown names, missing files, a full or read-only disk, a
damaged checkpoint or cache, a diverged run, a folder in use) print one line,
``mobilecnn: error: ...``, and exit with status 2; no traceback. Anything else is a bug and
shows its traceback; ``MOBILECNN_DEBUG=1`` shows the traceback of every error.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from . import bench_commands, data_commands, export_commands, model_commands, train_commands
from .common import CLIError

__all__ = ["CLIError", "build_parser", "expected_error_message", "main"]

COMMAND_GROUPS = (model_commands, data_commands, train_commands, export_commands, bench_commands)


class _OneLineErrorParser(argparse.ArgumentParser):
    """Reports usage errors as one line (with a pointer to --help) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    from ..version import __version__

    parser = _OneLineErrorParser(
        prog="mobilecnn",
        description="MobileNetV1-V4 building blocks: count, train, quantize, export and benchmark.",
    )
    parser.add_argument("--version", action="version", version=f"mobilecnn {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in COMMAND_GROUPS:
        group.register(subparsers)
    return parser


_CPU_OUT_OF_MEMORY = "DefaultCPUAllocator: can't allocate memory"
"""How PyTorch's CPU allocator reports a failed allocation (a RuntimeError)."""


def expected_error_message(error: BaseException) -> str | None:
    """The one-line message for an error a user can act on; None for a bug.

    Expected: :class:`CLIError`, every ``OSError`` (missing file, full or read-only disk,
    permissions), ``ValueError`` (bad values, damaged checkpoints and caches: ``CheckpointError``,
    ``CacheError``, ``CorruptImageError``), ``OverflowError``, a missing optional package
    (``ImportError`` naming the extra), running out of memory, and mobilecnn's own run errors
    (``TrainingDiverged``, ``FolderLockedError``).
    """
    from ..fileio import FolderLockedError, describe_os_error

    if isinstance(error, OSError):
        return describe_os_error(error)
    if isinstance(error, OverflowError):
        return f"a number is too large: {error}"
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError" or (
            isinstance(error, RuntimeError) and _CPU_OUT_OF_MEMORY in str(error)):
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return (f"out of memory ({first[:160]}); use a smaller --batch-size, input size or "
                "model").replace(" ()", "")
    if isinstance(error, ImportError) and "pip install" in str(error):
        return " ".join(str(error).split())
    expected: tuple[type[BaseException], ...] = (CLIError, ValueError, FolderLockedError)
    try:
        from ..train.loop import TrainingDiverged

        expected += (TrainingDiverged,)
    except ImportError:  # pragma: no cover - torch missing: nothing trains
        pass
    if isinstance(error, expected):
        return " ".join(str(error).split())
    return None


def _debug() -> bool:
    return os.environ.get("MOBILECNN_DEBUG", "").strip() not in ("", "0")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        if _debug():
            traceback.print_exc()
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        message = expected_error_message(error)
        if message is None:
            raise  # a bug: the traceback is what a report needs
        if _debug():
            traceback.print_exc()
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        return 2
    return int(result or 0)
