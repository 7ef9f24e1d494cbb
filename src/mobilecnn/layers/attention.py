"""Mobile Multi-Query Attention (Mobile MQA), the attention block of MobileNetV4's hybrids and
MobileNetV5 (Qin et al. 2024, "MobileNetV4", section 4).

* :class:`ScaledDotProductAttention` - ``softmax(q k^T / sqrt(d)) v`` as a module of its own, so
  that :func:`~mobilecnn.mac_count` and summaries can see (and count) it.
* :class:`MultiQueryAttention2d` - multi-query attention on an NCHW map: ``num_heads`` query
  heads share one key and one value head; keys and values may be computed on a map
  downsampled by a strided depthwise conv (``kv_stride=2``), which cuts the attention's cost
  by four.
* :class:`MobileMQA` - the block: normalization, attention, layer scale, residual.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn
from torch.nn import functional as F

from .conv import ConvNormAct, NormFactory, Padding, check_kernel_size
from .norm import LayerScale2d

__all__ = ["MobileMQA", "MultiQueryAttention2d", "ScaledDotProductAttention"]


class ScaledDotProductAttention(nn.Module):
    """``F.scaled_dot_product_attention(query, key, value)`` (scale ``1/sqrt(key_dim)``).

    Shapes ``(N, heads, L, key_dim)``, ``(N, heads, S, key_dim)``, ``(N, heads, S,
    value_dim)`` -> ``(N, heads, L, value_dim)``. A module of its own so that summaries list it
    and :func:`~mobilecnn.mac_count` counts it: ``heads * L * S * (key_dim + value_dim)``
    multiply-accumulates per sample (the two matrix products; the softmax is not counted, as
    activations are not).
    """

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor
                ) -> torch.Tensor:
        """Attention output ``(N, heads, L, value_dim)``."""
        return F.scaled_dot_product_attention(query, key, value)


class MultiQueryAttention2d(nn.Module):
    """Multi-query attention over the pixels of an ``(N, C, H, W)`` map.

    Every projection is a bias-free 1x1 conv: ``query_proj`` (C -> heads * key_dim),
    ``key_proj`` (C -> key_dim), ``value_proj`` (C -> value_dim) and ``out_proj``
    (heads * value_dim -> out_channels). With ``kv_stride=2`` the keys and values first go
    through ``key_down`` / ``value_down``: a ``kv_kernel_size`` depthwise conv of stride 2 and
    a norm (no activation), so ``H*W`` queries attend to ``H*W/4`` positions. Queries keep the
    full resolution, and so does the output.

    Channels of the query projection are ordered head-major (head ``h`` is channels
    ``h*key_dim ... (h+1)*key_dim - 1``), as in the reference implementations. As every head
    attends to the same keys and values, the heads' queries are stacked into one sequence of
    ``heads * H * W`` rows: one attention with one key/value head, no broadcasting.
    """

    def __init__(
        self,
        channels: int,
        out_channels: int | None = None,
        num_heads: int = 8,
        key_dim: int = 64,
        value_dim: int | None = None,
        kv_stride: int = 1,
        kv_kernel_size: int = 3,
        norm_layer: NormFactory | None = nn.BatchNorm2d,
        padding: Padding = "symmetric",
    ) -> None:
        super().__init__()
        for name, number in (("channels", channels), ("num_heads", num_heads),
                             ("key_dim", key_dim)):
            if not isinstance(number, int) or number < 1:
                raise ValueError(f"{name} must be a positive integer, got {number!r}")
        if kv_stride not in (1, 2):
            raise ValueError(f"kv_stride must be 1 (keys and values at full resolution) or 2 "
                             f"(downsampled), got {kv_stride!r}")
        check_kernel_size(kv_kernel_size, "kv_kernel_size")
        self.channels = channels
        self.out_channels = out_channels if out_channels is not None else channels
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = value_dim if value_dim is not None else key_dim
        self.kv_stride = kv_stride
        self.query_proj = nn.Conv2d(channels, num_heads * key_dim, 1, bias=False)
        down = partial(ConvNormAct, channels, channels, kv_kernel_size, stride=kv_stride,
                       groups=channels, norm_layer=norm_layer, activation=None, padding=padding)
        self.key_down: ConvNormAct | None = down() if kv_stride > 1 else None
        self.key_proj = nn.Conv2d(channels, key_dim, 1, bias=False)
        self.value_down: ConvNormAct | None = down() if kv_stride > 1 else None
        self.value_proj = nn.Conv2d(channels, self.value_dim, 1, bias=False)
        self.attention = ScaledDotProductAttention()
        self.out_proj = nn.Conv2d(num_heads * self.value_dim, self.out_channels, 1, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform projections and key/value downsampling convs (the reference's
        initialization, which trains more stably than the convs' default here)."""
        for conv in (self.query_proj, self.key_proj, self.value_proj, self.out_proj):
            nn.init.xavier_uniform_(conv.weight)
        for down in (self.key_down, self.value_down):
            if down is not None:
                nn.init.xavier_uniform_(down.conv.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, out_channels, H, W)`` for ``x`` of shape ``(N, channels, H, W)``."""
        batch = x.shape[0]
        height = x.shape[2]
        width = x.shape[3]
        # (N, heads*key_dim, H, W) -> (N, heads, H*W, key_dim) -> (N, heads*H*W, key_dim)
        query = self.query_proj(x).reshape(batch, self.num_heads, self.key_dim, -1)
        query = query.transpose(-1, -2).reshape(batch, 1, -1, self.key_dim)
        key_input = x if self.key_down is None else self.key_down(x)
        value_input = x if self.value_down is None else self.value_down(x)
        # (N, dim, h, w) -> (N, 1, h*w, dim); 4-D, as ONNX export wants. Contiguous: PyTorch's
        # fused CPU attention kernel needs unit stride in the last dimension, and without it
        # falls back to the unfused one (measured: MobileNetV5-300M at 768 ~15% slower).
        key = self.key_proj(key_input).flatten(2).transpose(1, 2).unsqueeze(1).contiguous()
        value = self.value_proj(value_input).flatten(2).transpose(1, 2).unsqueeze(1).contiguous()
        out = self.attention(query, key, value)  # (N, 1, heads*H*W, value_dim)
        out = out.reshape(batch, self.num_heads, -1, self.value_dim).transpose(-1, -2)
        return self.out_proj(out.reshape(batch, self.num_heads * self.value_dim, height, width))

    def extra_repr(self) -> str:
        return (f"heads={self.num_heads}, key_dim={self.key_dim}, value_dim={self.value_dim}, "
                f"kv_stride={self.kv_stride}")


class MobileMQA(nn.Module):
    """The Mobile MQA block: ``x + layer_scale(attn(norm(x)))``.

    ``norm`` is ``norm_layer(in_channels)`` without activation (BatchNorm in MobileNetV4,
    RMSNorm in V5), ``attn`` a :class:`MultiQueryAttention2d`, ``layer_scale`` a
    :class:`~mobilecnn.layers.LayerScale2d` (``None`` without ``layer_scale_init``). The
    residual is used when ``in_channels == out_channels`` (always in the published tables).
    Attention never downsamples the block's output: only keys and values (``kv_stride``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_heads: int = 8,
        key_dim: int = 64,
        value_dim: int | None = None,
        kv_stride: int = 1,
        kv_kernel_size: int = 3,
        norm_layer: NormFactory | None = nn.BatchNorm2d,
        layer_scale_init: float | None = 1e-5,
        padding: Padding = "symmetric",
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = 1
        self.use_residual = in_channels == out_channels
        self.norm = norm_layer(in_channels) if norm_layer is not None else nn.Identity()
        self.attn = MultiQueryAttention2d(
            in_channels, out_channels, num_heads=num_heads, key_dim=key_dim,
            value_dim=value_dim, kv_stride=kv_stride, kv_kernel_size=kv_kernel_size,
            norm_layer=norm_layer, padding=padding,
        )
        self.layer_scale: LayerScale2d | None = None
        if layer_scale_init is not None:
            self.layer_scale = LayerScale2d(out_channels, layer_scale_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output; ``x`` is added when ``use_residual``."""
        out = self.attn(self.norm(x))
        if self.layer_scale is not None:
            out = self.layer_scale(out)
        if self.use_residual:
            return x + out
        return out
