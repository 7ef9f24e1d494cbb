"""What every command module shares: the user-error type and argparse value types."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from ..limits import Limit

__all__ = [
    "CLIError",
    "bounded_float",
    "bounded_int",
    "positive_float",
    "positive_int",
]


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


def _limit(limit: Limit | float, why: str) -> tuple[float, str]:
    return (limit.maximum, why or limit.why) if isinstance(limit, Limit) else (limit, why)


def bounded_int(limit: Limit | int, why: str = "") -> Callable[[str], int]:
    """argparse type: an integer in ``1..limit`` (``why`` explains the limit; a
    :class:`~mobilecnn.limits.Limit` brings its own)."""
    maximum, why = _limit(limit, why)

    def parse(text: str) -> int:
        value = positive_int(text)
        if value > maximum:
            reason = f" ({why})" if why else ""
            raise argparse.ArgumentTypeError(
                f"expected a positive integer at most {maximum:,}{reason}, got {text!r}")
        return value

    parse.__name__ = "int"
    return parse


def bounded_float(limit: Limit | float, why: str = "") -> Callable[[str], float]:
    """argparse type: a number in ``(0, limit]``."""
    maximum, why = _limit(limit, why)

    def parse(text: str) -> float:
        value = positive_float(text)
        if value > maximum:
            reason = f" ({why})" if why else ""
            raise argparse.ArgumentTypeError(
                f"expected a positive number at most {maximum:g}{reason}, got {text!r}")
        return value

    parse.__name__ = "float"
    return parse
