"""What every command module shares: the user-error type and argparse value types."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

__all__ = [
    "MAX_IMAGE_SIZE",
    "MAX_INPUT_SIZE",
    "MAX_NUM_CLASSES",
    "MAX_WIDTH",
    "CLIError",
    "bounded_float",
    "bounded_int",
    "positive_float",
    "positive_int",
]

MAX_INPUT_SIZE = 1024
"""Largest ``--input-size`` of a model forward (summary, export). Measured: ``mobilecnn summary
mobilenet_v2 --input-size 2048 --total-stride 8`` peaks at 8 GB of memory and takes minutes;
memory grows with the square of the size."""
MAX_IMAGE_SIZE = 4096
"""Largest ``--image-size`` a data set is decoded to (50 MB per decoded image)."""
MAX_WIDTH = 10.0
"""Largest width multiplier (width 10 MobileNetV2 has about 226 M parameters)."""
MAX_NUM_CLASSES = 100_000


class CLIError(Exception):
    """A user error: printed as one line by ``main``, exit status 2."""


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def bounded_int(maximum: int, why: str = "") -> Callable[[str], int]:
    """argparse type: an integer in ``1..maximum`` (``why`` explains the limit)."""

    def parse(text: str) -> int:
        value = positive_int(text)
        if value > maximum:
            reason = f" ({why})" if why else ""
            raise argparse.ArgumentTypeError(
                f"expected a positive integer at most {maximum:,}{reason}, got {text!r}")
        return value

    parse.__name__ = "int"
    return parse


def bounded_float(maximum: float, why: str = "") -> Callable[[str], float]:
    """argparse type: a number in ``(0, maximum]``."""

    def parse(text: str) -> float:
        value = positive_float(text)
        if value > maximum:
            reason = f" ({why})" if why else ""
            raise argparse.ArgumentTypeError(
                f"expected a positive number at most {maximum:g}{reason}, got {text!r}")
        return value

    parse.__name__ = "float"
    return parse
