"""TorchScript, torch.compile and bfloat16 autocast on both models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mobilecnn import MobileNetV1, MobileNetV2

TINY_V2 = {"inverted_residual_setting": [[1, 16, 1, 1], [6, 24, 2, 2]], "width_mult": 0.5}


def tiny(model_class: type[nn.Module]) -> nn.Module:
    kwargs = TINY_V2 if model_class is MobileNetV2 else {"width_mult": 0.25}
    return model_class(num_classes=10, **kwargs).eval()


@pytest.mark.parametrize("model_class", [MobileNetV1, MobileNetV2])
def test_torchscript_matches_eager(model_class: type[nn.Module]) -> None:
    model = tiny(model_class)
    scripted = torch.jit.script(model)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model(x))
    with pytest.raises(Exception, match="expected a 4-D input tensor"):
        scripted(torch.randn(3, 32, 32))


@pytest.mark.slow
@pytest.mark.parametrize("model_class", [MobileNetV1, MobileNetV2])
def test_torch_compile_matches_eager(model_class: type[nn.Module]) -> None:
    model = tiny(model_class)
    compiled = torch.compile(model)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("model_class", [MobileNetV1, MobileNetV2])
def test_bfloat16_autocast_close_to_fp32(
    model_class: type[nn.Module], device: torch.device
) -> None:
    model = tiny(model_class).to(device)
    x = torch.randn(4, 3, 32, 32, device=device)
    with torch.no_grad():
        reference = model(x)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            low = model(x)
    assert low.dtype == torch.bfloat16
    relative = (low.float() - reference).abs().max() / reference.abs().max()
    assert relative < 0.05
