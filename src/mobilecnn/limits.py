"""Every size limit in one place, and the one check that applies them.

A size that reaches an allocation (an input size, a width multiplier, a class count, a
channel count, a size read from a checkpoint) is checked here before anything is built, so an
impossible value is a one-line :class:`ValueError` instead of minutes of swapping or an
allocation traceback. The command line, the config and the checkpoint reader all use these
numbers; none is written anywhere else.
"""

from __future__ import annotations

import math
from typing import NamedTuple, TypeVar

__all__ = [
    "MAX_BATCH_SIZE",
    "MAX_CHANNELS",
    "MAX_CONV_WEIGHTS",
    "MAX_IMAGE_SIZE",
    "MAX_INPUT_SIZE",
    "MAX_KERNEL_SIZE",
    "MAX_NUM_CLASSES",
    "MAX_WIDTH",
    "BATCH_SIZE",
    "CHANNELS",
    "CONV_WEIGHTS",
    "IMAGE_SIZE",
    "INPUT_SIZE",
    "KERNEL_SIZE",
    "NUM_CLASSES",
    "WIDTH",
    "Limit",
    "check_size",
]

class Limit(NamedTuple):
    """A largest allowed value and why it exists (quoted in the error)."""

    maximum: int | float
    why: str


INPUT_SIZE = Limit(1024, "pixels; larger inputs need gigabytes of activations")
"""Square input of a model forward (summary, export, bench). Measured: ``mobilecnn summary
mobilenet_v2 --input-size 2048 --total-stride 8`` peaks at 8 GB of memory and takes minutes;
memory grows with the square of the size."""
IMAGE_SIZE = Limit(4096, "pixels; a decoded image that size is 50 MB")
"""The size a data set is decoded to (``image_size``), also when read from a checkpoint."""
WIDTH = Limit(10.0, "width 10 already has about 226 M parameters")
"""Width multiplier of a model."""
NUM_CLASSES = Limit(100_000, "the classifier grows with the class count")
"""Classifier outputs (100,000 classes x 1,280 features is 128 M parameters)."""
CHANNELS = Limit(16_384, "mobile CNNs stay under 2,000 channels")
"""Channels of one convolution built to be counted (``mobilecnn compare``)."""
KERNEL_SIZE = Limit(31, "mobile CNNs use 3 to 7")
"""Kernel of one convolution built to be counted (``mobilecnn compare``)."""
CONV_WEIGHTS = Limit(2**28, "1 GiB of float32 weights")
"""Weights of one convolution built to be counted (in x out x kernel x kernel)."""
BATCH_SIZE = Limit(65_536, "larger batches need gigabytes of memory")
"""Batch of a benchmark."""

MAX_INPUT_SIZE = int(INPUT_SIZE.maximum)
MAX_IMAGE_SIZE = int(IMAGE_SIZE.maximum)
MAX_WIDTH = float(WIDTH.maximum)
MAX_NUM_CLASSES = int(NUM_CLASSES.maximum)
MAX_CHANNELS = int(CHANNELS.maximum)
MAX_KERNEL_SIZE = int(KERNEL_SIZE.maximum)
MAX_CONV_WEIGHTS = int(CONV_WEIGHTS.maximum)
MAX_BATCH_SIZE = int(BATCH_SIZE.maximum)

Number = TypeVar("Number", int, float)


def _text(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def check_size(argument: str, value: Number, limit: Limit | int | float, *,
               fix: str | None = None) -> Number:
    """Return ``value`` if it is a positive number no larger than ``limit``.

    Otherwise raise a one-line :class:`ValueError` naming ``argument``, the limit, why it
    exists and ``fix`` (default: "use a smaller ARGUMENT"). An integer limit needs an integer
    (``True`` is not one); a float limit takes any finite real number.

    >>> check_size("--input-size", 100000, INPUT_SIZE)
    Traceback (most recent call last):
    ...
    ValueError: --input-size must be at most 1,024 (pixels; larger inputs need gigabytes of \
activations), got 100000; use a smaller --input-size
    """
    maximum, why = limit if isinstance(limit, Limit) else (limit, "")
    integer = isinstance(maximum, int)
    kind = "a positive integer" if integer else "a positive number"
    if isinstance(value, bool) or not isinstance(value, int | float) or (
            integer and not isinstance(value, int)):
        raise ValueError(f"{argument} must be {kind}, got {value!r}")
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"{argument} must be {kind}, got {value!r}")
    if value > maximum:
        reason = f" ({why})" if why else ""
        raise ValueError(f"{argument} must be at most {_text(maximum)}{reason}, got {value!r}; "
                         f"{fix or f'use a smaller {argument}'}")
    return value
