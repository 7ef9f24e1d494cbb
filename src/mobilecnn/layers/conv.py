"""The unit every block is made of: channel rounding, ``ConvNormAct`` and argument checks."""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.fx
from torch import nn
from torch.nn import functional as F

__all__ = [
    "ACTIVATIONS",
    "ActivationFactory",
    "ConvNormAct",
    "NormFactory",
    "Padding",
    "SamePad2d",
    "build_activation",
    "check_bias",
    "check_int",
    "check_kernel_size",
    "check_norm_layer",
    "check_number",
    "check_se_ratio",
    "check_stride",
    "make_divisible",
    "resolve_activation",
]

NormFactory = Callable[[int], nn.Module]
"""Builds a normalization layer for a number of channels (e.g. ``nn.BatchNorm2d``)."""

ActivationFactory = Callable[[], nn.Module]
"""Builds an activation module (e.g. ``nn.ReLU6``); ``inplace`` is tried first. Layers also
accept a name from :data:`ACTIVATIONS` (``"relu"``, ``"hardswish"``, ...)."""

ACTIVATIONS: dict[str, Callable[..., nn.Module]] = {
    "relu": nn.ReLU, "relu6": nn.ReLU6, "hardswish": nn.Hardswish,
    "hardsigmoid": nn.Hardsigmoid, "gelu": nn.GELU, "silu": nn.SiLU, "swish": nn.SiLU,
    "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "leaky_relu": nn.LeakyReLU, "elu": nn.ELU,
    "identity": nn.Identity,
}
"""The activation names layers accept in place of a factory (case-insensitive)."""


def check_int(value: Any, name: str, minimum: int = 1) -> int:
    """``value`` as an int; ``TypeError`` unless it is an integer (bool is not),
    ``ValueError`` if it is below ``minimum``. Both name the argument."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r} "
                        f"({type(value).__name__})")
    if value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return int(value)


def check_number(value: Any, name: str, *, minimum: float | None = None,
                 inclusive: bool = True, maximum: float | None = None) -> float:
    """``value`` as a finite float; ``TypeError`` unless it is a real number (bool and strings
    are not), ``ValueError`` if it is not finite or outside ``[minimum, maximum]`` (``minimum``
    excluded unless ``inclusive``). Both name the argument."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    number = float(value)
    low = "" if minimum is None else f"{'>=' if inclusive else '>'} {minimum:g}"
    high = "" if maximum is None else f"<= {maximum:g}"
    allowed = " and ".join(part for part in (low, high) if part)
    too_low = minimum is not None and (number < minimum if inclusive else number <= minimum)
    if not math.isfinite(number) or too_low or (maximum is not None and number > maximum):
        raise ValueError(f"{name} must be a finite number{' ' + allowed if allowed else ''}, "
                         f"got {value!r}")
    return number


Padding = Literal["symmetric", "same"]
"""How convolutions pad: ``"symmetric"`` (PyTorch's ``(k - 1) // 2`` on every side) or
``"same"`` (TensorFlow's "SAME": for stride 2 the extra row/column goes to the bottom/right,
as in the Gemma 3n MobileNetV5 encoder). Both agree for stride 1."""


def same_padding(x: torch.Tensor, kernel_size: int, stride: int, dilation: int = 1
                 ) -> torch.Tensor:
    """Pad ``x`` as TensorFlow's "SAME" convolution would: ``ceil(size / stride)`` outputs."""
    height = x.shape[-2]
    width = x.shape[-1]
    span = (kernel_size - 1) * dilation + 1
    pad_h = max((-(height // -stride) - 1) * stride + span - height, 0)
    pad_w = max((-(width // -stride) - 1) * stride + span - width, 0)
    return F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])


torch.fx.wrap("same_padding")  # shape arithmetic: one call node in torch.fx graphs


class SamePad2d(nn.Module):
    """TensorFlow "SAME" padding before an unpadded convolution (see :data:`Padding`)."""

    def __init__(self, kernel_size: int, stride: int, dilation: int = 1) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride
        self.dilation = dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` padded with zeros (more at the bottom/right when the total is odd)."""
        return same_padding(x, self.kernel_size, self.stride, self.dilation)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, never below 90% of ``value``.

    This is the rule of the TensorFlow and torchvision MobileNet implementations; it keeps
    every layer width a multiple of 8 for fast kernels.

    >>> make_divisible(32 * 0.35), make_divisible(1280 * 1.4), make_divisible(11.2, 8)
    (16, 1792, 16)
    """
    value = check_number(value, "value", minimum=0)
    divisor = check_int(divisor, "divisor")
    min_value = divisor if min_value is None else check_int(min_value, "min_value")
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:  # rounding down must not remove more than 10%
        rounded += divisor
    return rounded


def resolve_activation(activation: ActivationFactory | str | nn.Module | None,
                       name: str = "activation") -> ActivationFactory | None:
    """A factory for ``activation``: a name from :data:`ACTIVATIONS`, a module (copied for each
    use), a callable returning a module, or None. Anything else is a one-line error."""
    if activation is None:
        return None
    if isinstance(activation, str):
        factory = ACTIVATIONS.get(activation.lower())
        if factory is None:
            raise ValueError(f"{name} {activation!r} is unknown; use one of "
                             f"{', '.join(ACTIVATIONS)}, a callable returning an nn.Module, "
                             "or None")
        return factory
    if isinstance(activation, nn.Module):
        module = activation
        return lambda: copy.deepcopy(module)
    if not callable(activation):
        raise TypeError(f"{name} must be an activation name ({', '.join(ACTIVATIONS)}), a "
                        f"callable returning an nn.Module, or None; got {activation!r}")
    return activation


def build_activation(activation: ActivationFactory | str | nn.Module | None,
                     name: str = "activation") -> nn.Module | None:
    """The activation module ``activation`` describes (see :func:`resolve_activation`), built
    with ``inplace=True`` where it takes that; None for None."""
    factory = resolve_activation(activation, name)
    if factory is None:
        return None
    try:
        module = factory(inplace=True)  # type: ignore[call-arg]
    except TypeError:
        module = factory()
    if not isinstance(module, nn.Module):
        raise TypeError(f"{name} must build an nn.Module, but {factory!r} returned "
                        f"{type(module).__name__}")
    return module


class ConvNormAct(nn.Sequential):
    """``Conv2d -> norm -> activation`` with "same" padding for odd kernels.

    Children are named ``conv``, ``bn`` and ``act`` (the last two only when used).
    ``bias`` defaults to ``True`` exactly when there is no normalization layer.
    ``padding="same"`` pads as TensorFlow for strided convs (a parameter-free ``pad`` child,
    :class:`SamePad2d`, before ``conv``); see :data:`Padding`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        dilation: int = 1,
        norm_layer: NormFactory | None = nn.BatchNorm2d,
        activation: ActivationFactory | str | None = nn.ReLU6,
        bias: bool | None = None,
        padding: Padding = "symmetric",
    ) -> None:
        super().__init__()
        in_channels = check_int(in_channels, "in_channels")
        out_channels = check_int(out_channels, "out_channels")
        check_kernel_size(kernel_size)
        stride = check_int(stride, "stride")
        dilation = check_int(dilation, "dilation")
        groups = check_int(groups, "groups")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"groups={groups} must divide in_channels={in_channels} and "
                             f"out_channels={out_channels}")
        check_norm_layer(norm_layer)
        check_bias(bias)
        if bias is None:
            bias = norm_layer is None
        if padding not in ("symmetric", "same"):
            raise ValueError(f"padding must be 'symmetric' or 'same', got {padding!r}")
        pad = (kernel_size - 1) // 2 * dilation
        if padding == "same" and stride > 1:
            self.pad = SamePad2d(kernel_size, stride, dilation)
            pad = 0
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=pad,
            dilation=dilation,
            groups=groups,
            bias=bias,
        )
        if norm_layer is not None:
            self.bn = norm_layer(out_channels)
        act = build_activation(activation)
        if act is not None:
            self.act = act
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride


def check_norm_layer(norm_layer: Any) -> None:
    """Raise TypeError unless ``norm_layer`` is None or a callable (``nn.BatchNorm2d``)."""
    if norm_layer is not None and (not callable(norm_layer)
                                   or isinstance(norm_layer, nn.Module)):
        raise TypeError("norm_layer must be a callable building a norm layer from a channel "
                        f"count (such as nn.BatchNorm2d) or None, got {norm_layer!r}")


def check_bias(bias: Any) -> None:
    """Raise TypeError unless ``bias`` is True, False or None."""
    if bias is not None and not isinstance(bias, bool):
        raise TypeError(f"bias must be True, False or None (automatic), got {bias!r}")


def check_stride(stride: int) -> None:
    """Raise ValueError unless ``stride`` is the integer 1 or 2 (bool is not an integer)."""
    if isinstance(stride, bool) or not isinstance(stride, numbers.Integral) or stride not in (
            1, 2):
        raise ValueError(f"stride must be 1 or 2, got {stride!r}")


def check_kernel_size(kernel_size: int, name: str = "kernel_size",
                      allow_zero: bool = False) -> None:
    """Raise ValueError unless ``kernel_size`` is a positive odd integer (or 0 if allowed)."""
    if allow_zero and kernel_size == 0 and not isinstance(kernel_size, bool | float):
        return
    if (isinstance(kernel_size, bool) or not isinstance(kernel_size, numbers.Integral)
            or kernel_size < 1 or kernel_size % 2 == 0):
        accepted = "0 (no such layer) or an odd integer" if allow_zero else "an odd integer"
        raise ValueError(
            f"{name} must be {accepted} such as 3 or 5 (even kernels have no centre, so "
            f"'same' padding is impossible), got {kernel_size!r}"
        )


def check_se_ratio(se_ratio: float | None) -> None:
    """Raise ValueError unless ``se_ratio`` is None (no SE) or in (0, 1]."""
    if se_ratio is not None and (isinstance(se_ratio, bool) or not (
            isinstance(se_ratio, numbers.Real) and 0 < se_ratio <= 1)):
        raise ValueError(
            f"se_ratio must be in (0, 1] (0.25 in MobileNetV3) or None for no squeeze-and-"
            f"excitation, got {se_ratio!r}"
        )
