"""MobileNetV5's multi-scale fusion adapter: several feature maps -> one map of fixed size."""

from __future__ import annotations

import torch
import torch.fx
from torch import nn
from torch.nn import functional as F

from .conv import ActivationFactory, NormFactory
from .uib import UniversalInvertedResidual

__all__ = ["MultiScaleFusionAdapter", "resize_to"]


def resize_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``x`` at spatial ``size``: unchanged if it has it, average-pooled when its height and
    width are whole multiples of ``size``, bilinearly resized otherwise (as MobileNetV5)."""
    height = x.shape[-2]
    width = x.shape[-1]
    if height == size[0] and width == size[1]:
        return x
    if height % size[0] == 0 and width % size[1] == 0:
        kernel = [height // size[0], width // size[1]]
        return F.avg_pool2d(x, kernel_size=kernel, stride=kernel)
    return F.interpolate(x, size=[size[0], size[1]], mode="bilinear", align_corners=False)


torch.fx.wrap("resize_to")  # shape-dependent choice: one call node in torch.fx graphs


class MultiScaleFusionAdapter(nn.Module):
    """Fuse maps of several resolutions into one ``(N, out_channels, *output_size)`` map.

    1. every map is resized (nearest) to the first map's resolution, the finest one, and the
       maps are concatenated along channels (``in_channels`` is the sum);
    2. ``ffn``: a :class:`~mobilecnn.layers.UniversalInvertedResidual` with no depthwise convs
       (1x1 expand by ``expand_ratio`` -> activation -> 1x1 project, no residual);
    3. the result is brought to ``output_size`` (:func:`resize_to`; ``None`` keeps the finest
       resolution) and normalized by ``norm``.

    In MobileNetV5 the maps are the last blocks at stride 16 and 32, ``output_size`` is 16x16
    (a 256x256 image gives exactly that; 768x768 is average-pooled by 3), norm and activation
    are RMSNorm and tanh-GELU.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        output_size: int | tuple[int, int] | None = 16,
        expand_ratio: float = 2.0,
        norm_layer: NormFactory | None = nn.BatchNorm2d,
        activation: ActivationFactory | None = nn.GELU,
    ) -> None:
        super().__init__()
        if isinstance(output_size, int):
            output_size = (output_size, output_size)
        if output_size is not None and not all(isinstance(v, int) and v > 0
                                               for v in output_size):
            raise ValueError(f"output_size must be a positive int, (height, width) or None, "
                             f"got {output_size!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.output_size = output_size
        self.ffn = UniversalInvertedResidual(
            in_channels, out_channels, expand_ratio=expand_ratio, start_kernel_size=0,
            middle_kernel_size=0, norm_layer=norm_layer, activation=activation,
        )
        self.ffn.use_residual = False  # never a residual, even with equal widths
        self.norm = norm_layer(out_channels) if norm_layer is not None else nn.Identity()

    def forward(self, maps: list[torch.Tensor]) -> torch.Tensor:
        """The fused map; ``maps[0]`` must be the finest."""
        finest = maps[0]
        resized = [finest]
        for feature_map in maps[1:]:
            resized.append(F.interpolate(feature_map, size=finest.shape[-2:], mode="nearest"))
        out = self.ffn(torch.cat(resized, dim=1))
        if self.output_size is not None:
            out = resize_to(out, self.output_size)
        return self.norm(out)
