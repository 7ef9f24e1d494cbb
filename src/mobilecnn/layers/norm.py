"""Per-channel normalization and scaling for NCHW maps: RMSNorm (MobileNetV5) and layer scale.

* :class:`RMSNorm2d` - root-mean-square normalization over the channels of each pixel, with a
  learned per-channel gain; no mean subtraction, no statistics, no bias. It has no running
  statistics, so :func:`~mobilecnn.deploy.fold_batchnorm` leaves it in place.
* :class:`LayerScale2d` - a learned per-channel gain ``gamma`` on a residual branch, started
  small (``1e-5``) so that a deep stack begins close to the identity.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LayerScale2d", "RMSNorm2d"]


class RMSNorm2d(nn.Module):
    """``x / sqrt(mean_c(x**2) + eps) * weight`` for ``(N, C, H, W)`` inputs.

    The mean runs over the channels of each pixel (as a LayerNorm over ``C`` would, but
    without subtracting the mean and without a bias). ``eps`` is 1e-6 as in MobileNetV5.
    The parameter is ``weight`` (``C`` values, ones at start); ``affine=False`` leaves it out.
    """

    def __init__(self, channels: int, eps: float = 1e-6, affine: bool = True) -> None:
        super().__init__()
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive integer, got {channels!r}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps!r}")
        self.num_features = channels
        self.eps = eps
        self.weight: nn.Parameter | None = nn.Parameter(torch.ones(channels)) if affine else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized ``x``, same shape."""
        out = x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + self.eps)
        if self.weight is not None:
            out = out * self.weight.reshape(1, -1, 1, 1)
        return out

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, affine={self.weight is not None}"


class LayerScale2d(nn.Module):
    """``x * gamma`` per channel (Touvron et al. 2021, "Going deeper with Image Transformers").

    MobileNetV4's hybrids and MobileNetV5 put it at the end of every UIB and Mobile MQA block,
    before the residual addition, with ``gamma`` started at ``init_value`` (1e-5).
    """

    def __init__(self, channels: int, init_value: float = 1e-5) -> None:
        super().__init__()
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive integer, got {channels!r}")
        self.init_value = init_value
        self.gamma = nn.Parameter(torch.full((channels,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` scaled per channel."""
        return x * self.gamma.reshape(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"{self.gamma.numel()}, init_value={self.init_value}"
