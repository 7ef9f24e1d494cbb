"""BatchNorm folding and optimize_for_inference: same logits, no BatchNorm, original untouched."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from deploy_helpers import max_relative_error, randomize_batchnorm
from mobilecnn import ConvNormAct, MobileNetV1, MobileNetV2
from mobilecnn.deploy import FrozenBatchNorm2d, fold_batchnorm, optimize_for_inference

MODELS_AND_WIDTHS = [
    (MobileNetV1, 0.25, 32),
    (MobileNetV1, 1.0, 32),
    (MobileNetV2, 0.35, 32),
    (MobileNetV2, 1.0, 32),
    (MobileNetV2, 1.4, 32),
]


@pytest.mark.parametrize(("model_class", "width", "size"), MODELS_AND_WIDTHS,
                         ids=[f"{c.__name__}-{w}" for c, w, _ in MODELS_AND_WIDTHS])
def test_optimized_logits_match(model_class: type, width: float, size: int) -> None:
    model = randomize_batchnorm(model_class(num_classes=10, width_mult=width)).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        expected = model(x)
        optimized = optimize_for_inference(model)
        actual = optimized(x)
    assert max_relative_error(actual, expected) <= 1e-4
    assert not any(isinstance(m, nn.BatchNorm2d) for m in optimized.modules())
    assert type(optimized) is model_class
    convs = [m for m in optimized.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.bias is not None for c in convs)
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    assert not any(p.requires_grad for p in optimized.parameters())
    assert not optimized.training


def test_original_model_untouched() -> None:
    model = randomize_batchnorm(MobileNetV2(num_classes=5, width_mult=0.25))
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimize_for_inference(model)
    fold_batchnorm(model)
    assert model.training
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 52
    assert all(p.requires_grad for p in model.parameters())


def test_fold_inplace_returns_same_object() -> None:
    model = randomize_batchnorm(MobileNetV1(num_classes=3, width_mult=0.25)).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        folded = fold_batchnorm(model, inplace=True)
        assert folded is model
        assert max_relative_error(model(x), expected) <= 1e-4
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_fold_works_on_plain_sequentials_and_frozen_batchnorm() -> None:
    conv = nn.Conv2d(4, 6, 3, padding=1, bias=True)
    bn = randomize_batchnorm(nn.Sequential(nn.BatchNorm2d(6)))[0]
    model = nn.Sequential(conv, bn, nn.ReLU(), nn.Conv2d(6, 2, 1),
                          FrozenBatchNorm2d.from_batchnorm(randomize_batchnorm(
                              nn.Sequential(nn.BatchNorm2d(2)), seed=3)[0])).eval()
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        expected = model(x)
        folded = fold_batchnorm(model)
        actual = folded(x)
    assert max_relative_error(actual, expected) <= 1e-5
    assert [type(m) for m in folded] == [nn.Conv2d, nn.ReLU, nn.Conv2d]


def test_fold_refuses_batchnorm_without_running_stats() -> None:
    unit = ConvNormAct(3, 8, norm_layer=lambda c: nn.BatchNorm2d(c, track_running_stats=False))
    with pytest.raises(ValueError, match=r"'0.bn'.*no running statistics"):
        fold_batchnorm(nn.Sequential(unit))


def test_model_without_norm_is_left_as_is() -> None:
    model = MobileNetV1(num_classes=3, width_mult=0.25, norm_layer=None).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(optimize_for_inference(model)(x), model(x), rtol=1e-5, atol=1e-6)


def test_channels_last_input_and_forward_features() -> None:
    model = randomize_batchnorm(MobileNetV2(num_classes=4, width_mult=0.25)).eval()
    optimized = optimize_for_inference(model)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model.forward_features(x)
        actual = optimized.forward_features(x.contiguous(memory_format=torch.channels_last))
    assert max_relative_error(actual, expected) <= 1e-4


def test_bfloat16_path_is_close_and_returns_float32() -> None:
    model = randomize_batchnorm(MobileNetV2(num_classes=10, width_mult=0.25)).eval()
    x = torch.randn(2, 3, 32, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "no native bfloat16" on old CPUs
        optimized = optimize_for_inference(model, dtype=torch.bfloat16)
    assert all(p.dtype == torch.bfloat16 for p in optimized.parameters())
    with torch.no_grad():
        expected = model(x)
        actual = optimized(x)
    assert actual.dtype == torch.float32
    assert actual.shape == expected.shape
    assert max_relative_error(actual, expected) <= 5e-2  # bfloat16 keeps 8 bits of mantissa


def test_bad_dtype_is_refused() -> None:
    with pytest.raises(ValueError, match="floating point"):
        optimize_for_inference(MobileNetV1(width_mult=0.25), dtype=torch.int8)


def test_optimized_on_device(device: torch.device) -> None:
    model = randomize_batchnorm(MobileNetV2(num_classes=4, width_mult=0.25)).eval().to(device)
    x = torch.randn(2, 3, 32, 32, device=device)
    with torch.no_grad():
        expected = model(x)
        actual = optimize_for_inference(model)(x)
    assert actual.device == expected.device
    assert max_relative_error(actual, expected) <= 1e-4
