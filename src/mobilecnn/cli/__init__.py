"""The ``mobilecnn`` command line: one module per command group, each with ``register()``.

Errors a user can fix (bad numbers, unknown names, missing files) print one line,
``mobilecnn: error: ...``, and exit with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from . import bench_commands, data_commands, export_commands, model_commands, train_commands
from .common import CLIError

__all__ = ["CLIError", "build_parser", "main"]

COMMAND_GROUPS = (model_commands, data_commands, train_commands, export_commands, bench_commands)


class _OneLineErrorParser(argparse.ArgumentParser):
    """Reports usage errors as one line (with a pointer to --help) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    from .. import __version__

    parser = _OneLineErrorParser(
        prog="mobilecnn",
        description="MobileNetV1/V2 building blocks, counting and TinyImageNet training.",
    )
    parser.add_argument("--version", action="version", version=f"mobilecnn {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in COMMAND_GROUPS:
        group.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except (CLIError, FileNotFoundError, ValueError) as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)
