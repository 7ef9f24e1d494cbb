"""Parameters, multiply-accumulates and a per-layer summary.

MACs follow the papers' convention: one multiply-accumulate per weight use in convolutions
(grouped and depthwise counted by their real fan-in) and linear layers, and the two matrix
products of attention (:class:`~mobilecnn.layers.ScaledDotProductAttention`: ``L * S * (key_dim
+ value_dim)`` for ``L`` queries and ``S`` keys); normalization, activations (softmax included),
pooling, resizing and residual additions are not counted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from .layers import DepthwiseSeparableConv, ScaledDotProductAttention

__all__ = [
    "ConvComparison",
    "LayerStats",
    "ModelSummary",
    "conv_comparison",
    "mac_count",
    "param_count",
    "summary",
]

InputSize = int | tuple[int, int] | tuple[int, int, int]


def param_count(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``module`` (only those with ``requires_grad`` if asked).

    >>> param_count(nn.Conv2d(128, 256, 3, bias=False))
    294912
    """
    return sum(
        p.numel() for p in module.parameters() if p.requires_grad or not trainable_only
    )


def _layer_macs(module: nn.Module, inputs: tuple[object, ...], output: torch.Tensor) -> int:
    """Multiply-accumulates of one sample through ``module`` that produced ``output``."""
    per_sample_outputs = output[0].numel()
    if isinstance(module, ScaledDotProductAttention):
        query, key = inputs[0], inputs[1]
        assert isinstance(query, torch.Tensor) and isinstance(key, torch.Tensor)
        queries = query[0].numel() // query.shape[-1]  # L (times heads, if any)
        return queries * key.shape[-2] * (query.shape[-1] + output.shape[-1])
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return per_sample_outputs * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return per_sample_outputs * module.in_features
    return 0


@dataclass(frozen=True)
class LayerStats:
    """One executed leaf module of a :class:`ModelSummary`."""

    name: str
    layer_type: str
    output_shape: tuple[int, ...]
    params: int
    macs: int


@dataclass(frozen=True)
class ModelSummary:
    """Per-layer statistics of one forward pass; ``str()`` renders the table."""

    model_name: str
    input_shape: tuple[int, ...]
    layers: list[LayerStats] = field(repr=False)
    total_params: int
    trainable_params: int
    total_macs: int

    def table(self) -> str:
        """The layer table with totals, like torchinfo's."""
        headers = ("Layer", "Type", "Output shape", "Params", "MACs")
        rows = [
            (
                layer.name,
                layer.layer_type,
                str(list(layer.output_shape)),
                f"{layer.params:,}",
                f"{layer.macs:,}",
            )
            for layer in self.layers
        ]
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
        align = ("<", "<", "<", ">", ">")

        def fmt(cells: tuple[str, ...]) -> str:
            padded = (f"{c:{a}{w}}" for c, a, w in zip(cells, align, widths, strict=True))
            return "  ".join(padded).rstrip()

        rule = "-" * len(fmt(headers))
        lines = [f"{self.model_name}, input {list(self.input_shape)}", rule, fmt(headers), rule]
        lines += [fmt(r) for r in rows]
        lines += [
            rule,
            f"Total params:      {self.total_params:,}",
            f"Trainable params:  {self.trainable_params:,}",
            f"Total MACs:        {self.total_macs:,} ({self.total_macs / 1e6:.1f}M)",
        ]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def input_batch_shape(
    model: nn.Module, input_size: InputSize, batch_size: int = 1
) -> tuple[int, int, int, int]:
    """``(batch, channels, height, width)`` for ``input_size`` given as ``224``, ``(224, 224)``
    or ``(3, 224, 224)``; channels default to ``model.in_channels`` (else 3)."""
    if isinstance(input_size, int):
        size: tuple[int, ...] = (input_size, input_size)
    else:
        size = tuple(input_size)
    if len(size) == 2:
        size = (int(getattr(model, "in_channels", 3)), *size)
    if len(size) != 3 or not all(isinstance(v, int) and v > 0 for v in size):
        raise ValueError(
            "input_size must be positive: an int (square image), (height, width) or "
            f"(channels, height, width), got {input_size!r}"
        )
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size!r}")
    return (batch_size, size[0], size[1], size[2])


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def summary(model: nn.Module, input_size: InputSize) -> ModelSummary:
    """Run one batch-1 forward pass and collect name, output shape, params and MACs per leaf.

    ``input_size`` is ``224``, ``(224, 224)`` or ``(3, 224, 224)``; the batch dimension is
    added. The pass runs in eval mode on the model's device without gradients.
    """
    shape = input_batch_shape(model, input_size)
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = parameter.dtype if parameter is not None else torch.float32
    layers: list[LayerStats] = []
    handles = []

    def make_hook(name: str) -> Callable[[nn.Module, tuple[object, ...], object], None]:
        def hook(module: nn.Module, inputs: tuple[object, ...], output: object) -> None:
            if not isinstance(output, torch.Tensor):
                return
            layers.append(
                LayerStats(
                    name=name,
                    layer_type=type(module).__name__,
                    output_shape=tuple(output.shape),
                    params=sum(p.numel() for p in module.parameters(recurse=False)),
                    macs=_layer_macs(module, inputs, output),
                )
            )

        return hook

    for name, module in model.named_modules():
        if next(module.children(), None) is None:  # leaves only
            handles.append(module.register_forward_hook(make_hook(name)))
    try:
        with _eval_mode(model), torch.no_grad():
            model(torch.zeros(shape, device=device, dtype=dtype))
    finally:
        for handle in handles:
            handle.remove()
    return ModelSummary(
        model_name=type(model).__name__,
        input_shape=shape,
        layers=layers,
        total_params=param_count(model),
        trainable_params=param_count(model, trainable_only=True),
        total_macs=sum(layer.macs for layer in layers),
    )


def mac_count(model: nn.Module, input_size: InputSize) -> int:
    """Multiply-accumulates of one forward pass at batch 1 (convolutions, linear layers and
    attention's matrix products)."""
    return summary(model, input_size).total_macs


@dataclass(frozen=True)
class ConvComparison:
    """Standard ``k x k`` convolution against its depthwise-separable factorization."""

    in_channels: int
    out_channels: int
    kernel_size: int
    standard_params: int
    separable_params: int
    standard_macs_per_pixel: int
    separable_macs_per_pixel: int

    @property
    def ratio(self) -> float:
        """How many times fewer parameters (and MACs) the separable version has."""
        return self.standard_params / self.separable_params

    @property
    def theoretical_cost(self) -> float:
        """The paper's cost fraction ``1/N + 1/k**2`` of separable relative to standard."""
        return 1 / self.out_channels + 1 / self.kernel_size**2

    def table(self) -> str:
        """The comparison as the text ``mobilecnn compare`` prints."""
        k, m, n = self.kernel_size, self.in_channels, self.out_channels
        return "\n".join(
            [
                f"{k}x{k} convolution, {m} -> {n} channels (no bias)",
                f"  standard:                 {k}*{k}*{m}*{n} = {self.standard_params:>12,} params",
                f"  depthwise-separable:      {k}*{k}*{m} + {m}*{n} = "
                f"{self.separable_params:,} params",
                f"  parameters and MACs:      {self.ratio:.2f}x fewer",
                f"  MACs per output pixel:    {self.standard_macs_per_pixel:,} vs "
                f"{self.separable_macs_per_pixel:,}",
                f"  theory 1/N + 1/k^2:       {self.theoretical_cost:.4f} "
                f"(= {1 / self.theoretical_cost:.2f}x fewer)",
            ]
        )

    def __str__(self) -> str:
        """Same as :meth:`table`."""
        return self.table()


def conv_comparison(in_channels: int, out_channels: int, kernel_size: int = 3) -> ConvComparison:
    """Count a standard conv and a :class:`~mobilecnn.layers.DepthwiseSeparableConv` (no norm,
    no activation, no bias) by building both and counting their parameters and MACs."""
    for label, value in (("in_channels", in_channels), ("out_channels", out_channels),
                         ("kernel_size", kernel_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
    standard = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2,
                         bias=False)
    separable = DepthwiseSeparableConv(in_channels, out_channels, kernel_size,
                                       norm_layer=None, activation=None, bias=False)
    # one output pixel: a 1x1 map after "same" padding gives MACs per output position
    pixel = (in_channels, 1, 1)
    return ConvComparison(
        in_channels=in_channels,
        out_channels=out_channels,
        kernel_size=kernel_size,
        standard_params=param_count(standard),
        separable_params=param_count(separable),
        standard_macs_per_pixel=mac_count(standard, pixel),
        separable_macs_per_pixel=mac_count(separable, pixel),
    )
