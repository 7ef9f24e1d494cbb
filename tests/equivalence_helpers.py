"""Comparing our models with torchvision's and timm's: random weights that make every mapped
tensor matter, and the logits check."""

from __future__ import annotations

import torch
from torch import nn

NORM_NAMES = ("RmsNorm2d", "RmsNormAct2d", "RMSNorm2d")  # timm's and ours


def randomize(model: nn.Module, seed: int = 7) -> nn.Module:
    """Random norm statistics, norm gains and layer scales that keep activations near 1, so
    that every tensor's mapping matters and 1e-5 is a meaningful tolerance for the logits."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(n, generator=generator) * 0.4 + 0.3)
                module.bias.copy_(torch.randn(n, generator=generator) * 0.1)
            elif type(module).__name__ in NORM_NAMES:
                module.weight.copy_(torch.rand(module.weight.shape, generator=generator) + 0.5)
            elif type(module).__name__ == "LayerScale2d":
                module.gamma.copy_(torch.rand(module.gamma.shape, generator=generator) + 0.25)
            elif isinstance(module, nn.Linear):
                module.weight.normal_(0, 0.05, generator=generator)
    return model.eval()


def assert_same_logits(ours: nn.Module, reference: nn.Module, size: int,
                       tolerance: float = 1e-5) -> None:
    """Both models give the same outputs on random images, to ``tolerance`` times the largest
    output (at least 1), and the outputs are neither near zero nor exploding."""
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        expected = reference(x)
        actual = ours.eval()(x)
    assert actual.shape == expected.shape
    assert 0.05 < expected.abs().max() < 1e3
    assert (actual - expected).abs().max().item() <= tolerance * max(1.0, expected.abs().max())
