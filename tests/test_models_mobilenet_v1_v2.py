"""MobileNetV1/V2: the published parameter and multiply-add counts, shapes, errors, devices."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mobilecnn import (
    InvertedResidual,
    MobileNetV1,
    MobileNetV2,
    create_model,
    mac_count,
    param_count,
)

V1_PARAMS = {1.0: 4_231_976, 0.75: 2_585_560, 0.5: 1_331_592, 0.25: 470_072}
V1_MACS_M = {1.0: 569, 0.75: 325, 0.5: 149, 0.25: 41}  # paper, millions at 224x224
V2_PARAMS = {
    0.35: 1_677_128,
    0.5: 1_968_680,
    0.75: 2_636_424,
    1.0: 3_504_872,
    1.3: 5_386_792,
    1.4: 6_108_776,
}


@pytest.mark.parametrize(("width", "expected"), sorted(V1_PARAMS.items()))
def test_mobilenet_v1_parameters(width: float, expected: int) -> None:
    model = MobileNetV1(width_mult=width)
    assert param_count(model, trainable_only=True) == expected


@pytest.mark.parametrize(("width", "expected_millions"), sorted(V1_MACS_M.items()))
def test_mobilenet_v1_macs_match_the_paper(width: float, expected_millions: int) -> None:
    macs = mac_count(MobileNetV1(width_mult=width), 224)
    assert abs(macs - expected_millions * 1e6) < 1e6


@pytest.mark.parametrize(("width", "expected"), sorted(V2_PARAMS.items()))
def test_mobilenet_v2_parameters(width: float, expected: int) -> None:
    assert param_count(MobileNetV2(width_mult=width), trainable_only=True) == expected


def test_mobilenet_v2_macs_match_the_paper() -> None:
    assert abs(mac_count(MobileNetV2(), 224) - 300e6) < 1e6


def test_mobilenet_v1_follows_table_1() -> None:
    model = MobileNetV1()
    stem = model.features[0]
    assert stem.conv.out_channels == 32 and stem.conv.stride == (2, 2)
    blocks = list(model.features)[1:]
    assert len(blocks) == 13
    assert [b.out_channels for b in blocks] == [
        64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024
    ]
    assert [b.stride for b in blocks] == [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]
    assert model.forward_features(torch.randn(1, 3, 224, 224)).shape == (1, 1024, 7, 7)


def test_mobilenet_v2_follows_table_2() -> None:
    model = MobileNetV2()
    blocks = [m for m in model.features if isinstance(m, InvertedResidual)]
    assert len(blocks) == 17
    assert [b.out_channels for b in blocks] == [16, 24, 24, 32, 32, 32, 64, 64, 64, 64,
                                                96, 96, 96, 160, 160, 160, 320]
    assert [b.stride for b in blocks] == [1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1]
    assert sum(b.use_residual for b in blocks) == 10
    assert model.features[-1].conv.out_channels == 1280
    assert isinstance(model.features[-1].act, nn.ReLU6)
    assert model.forward_features(torch.randn(1, 3, 224, 224)).shape == (1, 1280, 7, 7)


def test_last_conv_is_never_narrower_than_1280() -> None:
    assert MobileNetV2(width_mult=0.5).num_features == 1280
    assert MobileNetV2(width_mult=1.4).num_features == 1792


@pytest.mark.parametrize("width", [0.35, 0.5, 1.4])
def test_mobilenet_v2_matches_torchvision_architecture(width: float) -> None:
    torchvision = pytest.importorskip("torchvision", reason="torchvision (dev extra) not installed")
    ours = MobileNetV2(width_mult=width).state_dict()
    reference = torchvision.models.mobilenet_v2(width_mult=width).state_dict()
    assert [t.shape for t in ours.values()] == [t.shape for t in reference.values()]


def test_mac_count_agrees_with_torch_flop_counter() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    model = MobileNetV2(width_mult=0.5).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, 96, 96))
    assert mac_count(model, 96) == counter.get_total_flops() // 2


@pytest.mark.parametrize("model_class", [MobileNetV1, MobileNetV2])
@pytest.mark.parametrize(("total_stride", "size", "side"), [(16, 64, 4), (8, 32, 4), (32, 64, 2)])
def test_small_input_variants(
    model_class: type[nn.Module], total_stride: int, size: int, side: int
) -> None:
    model = model_class(width_mult=0.25, num_classes=200, total_stride=total_stride)
    features = model.forward_features(torch.randn(2, 3, size, size))
    assert features.shape[-2:] == (side, side)
    assert model(torch.randn(2, 3, size, size)).shape == (2, 200)
    # the paper's blocks are kept: only strides change, so parameters do not
    assert param_count(model) == param_count(model_class(width_mult=0.25, num_classes=200))
    assert model.feature_info[-1]["reduction"] == total_stride


def test_small_input_costs_like_a_larger_input_to_the_stock_model() -> None:
    small = mac_count(MobileNetV2(num_classes=200, total_stride=16), 64)
    stock = mac_count(MobileNetV2(num_classes=200), 128)
    assert small == stock


def test_feature_info_mobilenet_v2() -> None:
    model = MobileNetV2()
    assert [f["num_chs"] for f in model.feature_info] == [16, 24, 32, 96, 320]
    assert [f["reduction"] for f in model.feature_info] == [2, 4, 8, 16, 32]
    modules = dict(model.named_modules())
    for info in model.feature_info:
        assert modules[info["module"]].out_channels == info["num_chs"]


def test_feature_info_mobilenet_v1() -> None:
    info = MobileNetV1().feature_info
    assert [f["num_chs"] for f in info] == [64, 128, 256, 512, 1024]
    assert [f["reduction"] for f in info] == [2, 4, 8, 16, 32]


def test_weight_init_follows_the_reference() -> None:
    model = MobileNetV2(width_mult=0.5)
    linear = model.classifier[-1]
    assert torch.count_nonzero(linear.bias) == 0
    assert 0.005 < float(linear.weight.detach().std()) < 0.015
    bn = model.features[0].bn
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
    conv = model.features[-1].conv  # 1x1, fan_out = 1280 -> std sqrt(2 / 1280)
    assert float(conv.weight.detach().std()) == pytest.approx((2 / 1280) ** 0.5, rel=0.05)


@pytest.mark.parametrize("model_class", [MobileNetV1, MobileNetV2])
def test_in_channels_and_input_checks(model_class: type[nn.Module]) -> None:
    model = model_class(width_mult=0.25, num_classes=10, in_channels=1)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)
    expected = r"\(batch, 1, height, width\), got shape \[2, 3, 32, 32\]"
    with pytest.raises(ValueError, match=expected):
        model(torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"got shape \[1, 32, 32\]"):
        model(torch.randn(1, 32, 32))
    with pytest.raises(ValueError, match="4-D"):
        model.forward_features(torch.randn(1, 1, 1, 32, 32))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width_mult": 0}, "width_mult must be a finite number > 0 .*got 0"),
        ({"width_mult": -0.5}, "got -0.5"),
        ({"num_classes": -1}, "num_classes must be an integer >= 0, got -1"),
        ({"total_stride": 4}, "total_stride must be one of"),
        ({"dropout": 1.5}, "dropout must be in"),
        ({"in_channels": 0}, "in_channels"),
    ],
)
@pytest.mark.parametrize("model_class", [MobileNetV1, MobileNetV2])
def test_bad_constructor_arguments(
    model_class: type[nn.Module], kwargs: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        model_class(**kwargs)


@pytest.mark.parametrize(
    "setting",
    [[], [[1, 16, 1]], [[1, 16, 1, 3]], [[0, 16, 1, 1]], [[1, 16, 1.5, 1]], "abcd"],
)
def test_malformed_inverted_residual_setting(setting: object) -> None:
    with pytest.raises(ValueError, match="inverted_residual_setting"):
        MobileNetV2(inverted_residual_setting=setting)  # type: ignore[arg-type]


def test_custom_inverted_residual_setting() -> None:
    model = MobileNetV2(inverted_residual_setting=[[1, 16, 1, 1], [6, 24, 2, 2]], num_classes=5)
    assert len(model.features) == 1 + 3 + 1
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 5)


def test_create_model_and_unknown_names() -> None:
    assert isinstance(create_model("mobilenet_v1", width_mult=0.25), MobileNetV1)
    with pytest.raises(ValueError, match="unknown model 'resnet50'.*mobilenet_v2"):
        create_model("resnet50")


def test_reset_classifier() -> None:
    model = MobileNetV2(width_mult=0.35, num_classes=1000)
    model.reset_classifier(7)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    assert model.num_classes == 7
    with pytest.raises(ValueError, match="num_classes"):
        model.reset_classifier(-1)


@pytest.mark.parametrize("model_class", [MobileNetV1, MobileNetV2])
def test_forward_matches_cpu_on_every_device(
    model_class: type[nn.Module], device: torch.device
) -> None:
    model = model_class(width_mult=0.5, num_classes=10).eval()
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        actual = model.to(device)(x.to(device)).cpu()
    torch.testing.assert_close(actual, expected, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("model_class", [MobileNetV1, MobileNetV2])
def test_training_step_on_every_device(model_class: type[nn.Module], device: torch.device) -> None:
    model = model_class(width_mult=0.25, num_classes=4).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(4, 3, 32, 32, device=device), torch.tensor([0, 1, 2, 3], device=device)
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in model.parameters())
