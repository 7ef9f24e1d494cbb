"""The building blocks: widths, parameter counts, the residual rule, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mobilecnn import (
    ConvNormAct,
    DepthwiseSeparableConv,
    InvertedResidual,
    make_divisible,
    param_count,
)


@pytest.mark.parametrize(
    ("value", "divisor", "expected"),
    [
        (32.0, 8, 32),
        (32 * 0.35, 8, 16),  # 11.2 rounds down to 8, which loses > 10%, so 16
        (24 * 0.75, 8, 24),  # 18 -> 16 is > 10% below 18 -> 24
        (1280 * 1.4, 8, 1792),
        (12.0, 8, 16),  # ties round up
        (100.0, 1, 100),
        (3.0, 8, 8),  # never below the divisor
    ],
)
def test_make_divisible(value: float, divisor: int, expected: int) -> None:
    result = make_divisible(value, divisor)
    assert result == expected
    assert result % divisor == 0
    assert result >= 0.9 * value


def test_make_divisible_rejects_bad_divisor() -> None:
    with pytest.raises(ValueError, match="divisor"):
        make_divisible(10, 0)


def test_conv_norm_act_children_and_bias() -> None:
    unit = ConvNormAct(3, 8, 3, stride=2)
    assert [name for name, _ in unit.named_children()] == ["conv", "bn", "act"]
    assert unit.conv.bias is None and unit.conv.padding == (1, 1)
    assert isinstance(unit.act, nn.ReLU6)
    bare = ConvNormAct(3, 8, 5, norm_layer=None, activation=None)
    assert [name for name, _ in bare.named_children()] == ["conv"]
    assert bare.conv.bias is not None and bare.conv.padding == (2, 2)
    assert bare(torch.randn(1, 3, 9, 9)).shape == (1, 8, 9, 9)


def test_depthwise_separable_parameter_count_matches_the_paper_arithmetic() -> None:
    standard = nn.Conv2d(128, 256, 3, bias=False)
    separable = DepthwiseSeparableConv(128, 256, norm_layer=None, activation=None, bias=False)
    assert param_count(standard) == 3 * 3 * 128 * 256 == 294_912
    assert param_count(separable) == 3 * 3 * 128 + 128 * 256 == 33_920
    assert param_count(standard) / param_count(separable) == pytest.approx(8.69, abs=0.005)


def test_depthwise_separable_structure_and_shapes() -> None:
    block = DepthwiseSeparableConv(16, 32, kernel_size=3, stride=2)
    assert block.depthwise.conv.groups == 16
    assert block.depthwise.conv.weight.shape == (16, 1, 3, 3)
    assert block.pointwise.conv.weight.shape == (32, 16, 1, 1)
    assert isinstance(block.depthwise.bn, nn.BatchNorm2d)
    assert isinstance(block.pointwise.act, nn.ReLU)  # the V1 paper uses ReLU
    assert block(torch.randn(2, 16, 15, 15)).shape == (2, 32, 8, 8)


def test_depthwise_separable_dilation_keeps_size() -> None:
    block = DepthwiseSeparableConv(8, 8, dilation=2)
    assert block(torch.randn(1, 8, 10, 10)).shape == (1, 8, 10, 10)


@pytest.mark.parametrize(
    ("in_channels", "out_channels", "stride", "expected"),
    [(16, 16, 1, True), (16, 24, 1, False), (16, 16, 2, False), (24, 32, 2, False)],
)
def test_residual_only_when_stride_one_and_channels_match(
    in_channels: int, out_channels: int, stride: int, expected: bool
) -> None:
    block = InvertedResidual(in_channels, out_channels, stride, expand_ratio=6)
    assert block.use_residual is expected
    x = torch.randn(2, in_channels, 8, 8)
    assert block(x).shape == (2, out_channels, 8 // stride, 8 // stride)


def test_residual_adds_the_input() -> None:
    block = InvertedResidual(8, 8, 1, expand_ratio=4).eval()
    nn.init.zeros_(block.project.bn.weight)  # the branch now outputs exactly zero
    nn.init.zeros_(block.project.bn.bias)
    x = torch.randn(2, 8, 6, 6)
    torch.testing.assert_close(block(x), x)


def test_inverted_residual_structure() -> None:
    block = InvertedResidual(24, 32, 2, expand_ratio=6)
    assert block.hidden_channels == 144
    assert block.expand.conv.weight.shape == (144, 24, 1, 1)
    assert block.depthwise.conv.groups == 144
    assert isinstance(block.expand.act, nn.ReLU6) and isinstance(block.depthwise.act, nn.ReLU6)
    # linear bottleneck: the projection has no activation
    assert [name for name, _ in block.project.named_children()] == ["conv", "bn"]


def test_expansion_is_omitted_when_ratio_is_one() -> None:
    block = InvertedResidual(32, 16, 1, expand_ratio=1)
    assert isinstance(block.expand, nn.Identity)
    assert block.hidden_channels == 32
    assert param_count(block) == 3 * 3 * 32 + 2 * 32 + 32 * 16 + 2 * 16


def test_hidden_width_is_rounded() -> None:
    assert InvertedResidual(10, 10, 1, expand_ratio=2.5).hidden_channels == 25
    assert InvertedResidual(3, 3, 1, expand_ratio=1.5).hidden_channels == round(4.5)


@pytest.mark.parametrize("stride", [0, 3, -1])
def test_bad_stride_names_the_value(stride: int) -> None:
    with pytest.raises(ValueError, match=f"stride must be 1 or 2, got {stride}"):
        InvertedResidual(8, 8, stride, expand_ratio=6)
    with pytest.raises(ValueError, match=f"got {stride}"):
        DepthwiseSeparableConv(8, 8, stride=stride)


def test_blocks_run_on_device(device: torch.device) -> None:
    torch.manual_seed(0)
    block = InvertedResidual(8, 8, 1, expand_ratio=6).eval()
    x = torch.randn(2, 8, 7, 7)
    expected = block(x)
    actual = block.to(device)(x.to(device)).cpu()
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: DepthwiseSeparableConv(8, 8, kernel_size=2), ValueError,
         r"kernel_size must be an odd integer .*got 2"),
        (lambda: DepthwiseSeparableConv(8, 8, kernel_size=0), ValueError, "got 0"),
        (lambda: ConvNormAct(8, 8, kernel_size=0), ValueError, "kernel_size.*got 0"),
        (lambda: ConvNormAct(8, 8, kernel_size=True), ValueError, "kernel_size.*got True"),
        (lambda: make_divisible(-5), ValueError, "value must be a finite number >= 0, got -5"),
        (lambda: make_divisible(float("nan")), ValueError, "value must be a finite number"),
        (lambda: make_divisible("16"), TypeError, "value must be a number, got '16' \\(str\\)"),
        (lambda: make_divisible(16, True), TypeError, "divisor must be an integer"),
        (lambda: ConvNormAct(True, 8), TypeError, r"in_channels must be an integer >= 1, "
                                                  r"got True \(bool\)"),
        (lambda: ConvNormAct(8, 8.0), TypeError, "out_channels must be an integer"),
        (lambda: ConvNormAct(8, 12, groups=8), ValueError, "groups=8 must divide"),
        (lambda: ConvNormAct(8, 8, activation="swishy"), ValueError,
         "activation 'swishy' is unknown; use one of relu, relu6, hardswish"),
        (lambda: ConvNormAct(8, 8, activation=3), TypeError,
         "activation must be an activation name"),
        (lambda: ConvNormAct(8, 8, activation=lambda: "relu"), TypeError,
         "activation must build an nn.Module.*returned str"),
        (lambda: ConvNormAct(8, 8, norm_layer="batchnorm"), TypeError, "norm_layer must be"),
        (lambda: ConvNormAct(8, 8, bias=1), TypeError, "bias must be True, False or None"),
        (lambda: InvertedResidual(8, 8, True, 6), ValueError, "stride must be 1 or 2, got True"),
        (lambda: InvertedResidual(8, 8, 1.0, 6), ValueError, "stride must be 1 or 2, got 1.0"),
        (lambda: InvertedResidual(8, 8, 1, "6"), TypeError, "expand_ratio must be a number"),
        (lambda: InvertedResidual(8, 8, 1, float("inf")), ValueError,
         "expand_ratio must be a finite number >= 1, got inf"),
        (lambda: InvertedResidual(8, 8, 1, 6, se_ratio=True), ValueError, "se_ratio"),
    ],
)
def test_bad_layer_arguments_are_one_line_errors_naming_the_argument(
    make, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message) as raised:
        make()
    assert type(raised.value) is error and "\n" not in str(raised.value)


@pytest.mark.parametrize("name", ["relu", "relu6", "hardswish", "gelu", "silu", "ReLU6"])
def test_activations_by_name_build_the_same_module_as_the_class(name: str) -> None:
    expected = {"relu": nn.ReLU, "relu6": nn.ReLU6, "hardswish": nn.Hardswish,
                "gelu": nn.GELU, "silu": nn.SiLU}[name.lower()]
    layer = ConvNormAct(8, 8, activation=name)
    assert type(layer.act) is expected
    block = InvertedResidual(8, 8, 1, 2, activation=name)
    assert type(block.depthwise.act) is expected and type(block.expand.act) is expected


def test_an_activation_module_is_copied_for_each_use() -> None:
    shared = nn.LeakyReLU(0.2)
    block = InvertedResidual(8, 8, 1, 2, activation=shared)
    assert isinstance(block.expand.act, nn.LeakyReLU) and block.expand.act.negative_slope == 0.2
    assert block.expand.act is not block.depthwise.act and block.expand.act is not shared
