"""MobileNetV3/V4 blocks: SqueezeExcite, hard-swish, InvertedResidual's V3 options, UIB, fused IB,
and the stage builder's table rows."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mobilecnn import (
    BlockSpec,
    ConvNormAct,
    FusedInvertedResidual,
    InvertedResidual,
    SqueezeExcite,
    UniversalInvertedResidual,
    build_stages,
    mac_count,
    param_count,
)


@pytest.mark.parametrize(("channels", "squeeze"), [(16, 8), (72, 24), (96, 24), (120, 32),
                                                   (576, 144), (960, 240)])
def test_squeeze_excite_width_and_cost(channels: int, squeeze: int) -> None:
    se = SqueezeExcite(channels)
    assert se.squeeze_channels == squeeze  # make_divisible(C // 4, 8)
    assert param_count(se) == 2 * channels * squeeze + channels + squeeze
    assert mac_count(se, (channels, 7, 7)) == 2 * channels * squeeze  # size-independent


def test_squeeze_excite_gates_each_channel() -> None:
    se = SqueezeExcite(16).eval()
    x = torch.rand(2, 16, 5, 5) + 0.1
    with torch.no_grad():
        y = se(x)
    gate = y / x
    assert isinstance(se.gate, nn.Hardsigmoid) and isinstance(se.act, nn.ReLU)
    # one factor per (sample, channel), in [0, 1]
    assert torch.allclose(gate, gate[:, :, :1, :1].expand_as(gate), atol=1e-6)
    assert gate.min() >= 0 and gate.max() <= 1


def test_hard_swish_through_the_activation_factory() -> None:
    unit = ConvNormAct(3, 8, activation=nn.Hardswish, norm_layer=None)
    assert isinstance(unit.act, nn.Hardswish) and unit.act.inplace
    x = torch.linspace(-4, 4, 9)
    expected = x * torch.clamp(x + 3, 0, 6) / 6  # x * ReLU6(x + 3) / 6
    assert torch.allclose(nn.Hardswish()(x), expected)
    assert torch.allclose(nn.Hardsigmoid()(x), torch.clamp(x + 3, 0, 6) / 6)


def test_inverted_residual_v3_options() -> None:
    block = InvertedResidual(24, 40, stride=2, expand_ratio=1, kernel_size=5, se_ratio=0.25,
                             hidden_channels=72, activation=nn.Hardswish)
    assert [name for name, _ in block.named_children()] == ["expand", "depthwise", "se",
                                                            "project"]
    assert block.hidden_channels == 72 and block.depthwise.conv.kernel_size == (5, 5)
    assert isinstance(block.depthwise.act, nn.Hardswish)
    assert block.se is not None and block.se.squeeze_channels == 24
    assert block(torch.randn(1, 24, 16, 16)).shape == (1, 40, 8, 8)


def test_inverted_residual_without_v3_options_is_the_v2_block() -> None:
    block = InvertedResidual(32, 32, stride=1, expand_ratio=6)
    assert [name for name, _ in block.named_children()] == ["expand", "depthwise", "project"]
    assert block.se is None and block.hidden_channels == 192
    assert list(block.state_dict()) == [
        f"{part}.{tensor}" for part in ("expand.conv", "expand.bn", "depthwise.conv",
                                        "depthwise.bn", "project.conv", "project.bn")
        for tensor in (("weight",) if part.endswith("conv") else
                       ("weight", "bias", "running_mean", "running_var",
                        "num_batches_tracked"))
    ]


@pytest.mark.parametrize(
    ("start", "middle", "block_type", "params"),
    [
        # no norm: expand 32*128, project 128*32, start dw 32*k*k, middle dw 128*k*k
        (3, 3, "extra_dw", 32 * 128 * 2 + 32 * 9 + 128 * 9),
        (0, 3, "ib", 32 * 128 * 2 + 128 * 9),
        (5, 0, "convnext", 32 * 128 * 2 + 32 * 25),
        (0, 0, "ffn", 32 * 128 * 2),
    ],
)
def test_uib_settings(start: int, middle: int, block_type: str, params: int) -> None:
    block = UniversalInvertedResidual(32, 32, 1, 4.0, start, middle, norm_layer=None)
    assert block.block_type == block_type and block.use_residual
    biases = 128 + 32 + (32 if start else 0) + (128 if middle else 0)  # one per conv output
    assert param_count(block) == params + biases
    x = torch.randn(2, 32, 8, 8)
    assert block(x).shape == x.shape


def test_uib_stride_sits_on_the_middle_depthwise() -> None:
    extra = UniversalInvertedResidual(16, 24, stride=2, expand_ratio=3, start_kernel_size=5,
                                      middle_kernel_size=5)
    assert extra.start_depthwise is not None and extra.middle_depthwise is not None
    assert extra.start_depthwise.stride == 1 and extra.middle_depthwise.stride == 2
    assert not hasattr(extra.start_depthwise, "act")  # the leading depthwise is linear
    assert extra.hidden_channels == 48
    convnext = UniversalInvertedResidual(16, 24, 2, 4, start_kernel_size=3,
                                         middle_kernel_size=0)
    assert convnext.start_depthwise is not None and convnext.start_depthwise.stride == 2
    assert convnext(torch.randn(1, 16, 8, 8)).shape == (1, 24, 4, 4)


def test_fused_inverted_residual() -> None:
    block = FusedInvertedResidual(32, 48, stride=2, expand_ratio=4, norm_layer=None)
    assert block.hidden_channels == 128 and not block.use_residual
    assert param_count(block) == 32 * 9 * 128 + 128 + 128 * 48 + 48
    assert block(torch.randn(1, 32, 8, 8)).shape == (1, 48, 4, 4)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: SqueezeExcite(16, se_ratio=0), r"se_ratio must be in \(0, 1\].*got 0"),
        (lambda: SqueezeExcite(16, se_ratio=-0.25), "got -0.25"),
        (lambda: InvertedResidual(8, 8, 1, 6, se_ratio=0.0), "se_ratio"),
        (lambda: InvertedResidual(8, 8, 1, 6, kernel_size=4), "kernel_size must be an odd.*got 4"),
        (lambda: UniversalInvertedResidual(8, 8, 1, 4, 2, 3), "start_kernel_size.*got 2"),
        (lambda: UniversalInvertedResidual(8, 8, 1, 4, 3, 6), "middle_kernel_size.*got 6"),
        (lambda: UniversalInvertedResidual(8, 8, 2, 4, 0, 0), "FFN.*cannot downsample"),
        (lambda: FusedInvertedResidual(8, 8, 1, 4, kernel_size=2), "kernel_size.*got 2"),
        (lambda: BlockSpec("uib", 8, kernel_size=4), "kernel_size.*got 4"),
        (lambda: BlockSpec("ir", 8, se_ratio=-1), "se_ratio"),
        (lambda: BlockSpec("uib", 8, se_ratio=0.25), "only used by 'ir'"),
        (lambda: BlockSpec("mbconv", 8), "unknown block kind 'mbconv'; choose one of: conv"),  # type: ignore[arg-type]
        (lambda: BlockSpec("conv", 0), "out_channels must be a positive integer, got 0"),
        (lambda: BlockSpec("conv", 8, stride=3), "stride must be 1 or 2, got 3"),
        (lambda: build_stages([], 3), "at least one BlockSpec"),
        (lambda: build_stages([BlockSpec("conv", 8)], 3, total_stride=4), "total_stride"),
    ],
)
def test_bad_block_arguments_are_one_line_errors(make, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        make()
    assert "\n" not in str(error.value)


def test_builder_removes_the_first_strides_and_records_levels() -> None:
    table = [BlockSpec("conv", 16, stride=2), BlockSpec("uib", 24, stride=2, kernel_size=3,
                                                        start_kernel_size=3, expand_ratio=4),
             BlockSpec("fused_ir", 32, stride=2, expand_ratio=2, repeats=2),
             BlockSpec("ir", 40, stride=2, expand_ratio=3, se_ratio=0.25, kernel_size=5)]
    for total_stride, strides in ((32, [2, 2, 2, 1, 2]), (16, [1, 2, 2, 1, 2]),
                                  (8, [1, 1, 2, 1, 2])):
        built = build_stages(table, 3, width_mult=0.5, total_stride=total_stride)
        assert [layer.stride for layer in built.layers] == strides
        assert built.feature_info[-1]["reduction"] == 16 * total_stride // 32
        assert built.out_channels == 24  # make_divisible(40 * 0.5)
    levels = build_stages(table, 3).feature_info
    assert [(f["num_chs"], f["reduction"], f["module"]) for f in levels] == [
        (16, 2, "features.0"), (24, 4, "features.1"), (32, 8, "features.3"),
        (40, 16, "features.4")]


def test_v1_and_v2_state_dict_layout_is_unchanged_by_the_builder() -> None:
    """The 0.1 layout (V2's is also checked against torchvision in
    test_models_mobilenet_v1_v2.py)."""
    from mobilecnn import MobileNetV1, MobileNetV2

    v1 = list(MobileNetV1(width_mult=0.25).state_dict())
    assert len(v1) == 6 + 13 * 12 + 2  # stem, 13 blocks of two ConvNormActs, classifier
    assert v1[:2] == ["features.0.conv.weight", "features.0.bn.weight"]
    assert v1[-8:-2] == ["features.13.pointwise.conv.weight", "features.13.pointwise.bn.weight",
                         "features.13.pointwise.bn.bias", "features.13.pointwise.bn.running_mean",
                         "features.13.pointwise.bn.running_var",
                         "features.13.pointwise.bn.num_batches_tracked"]
    v2 = list(MobileNetV2(width_mult=0.25).state_dict())
    assert v2[6:8] == ["features.1.depthwise.conv.weight", "features.1.depthwise.bn.weight"]
    assert "features.2.expand.conv.weight" in v2 and not any(".se." in key for key in v2)
    assert v2[-2:] == ["classifier.1.weight", "classifier.1.bias"]


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: SqueezeExcite(True), TypeError, "channels must be an integer"),
        (lambda: SqueezeExcite(16, gate="nope"), ValueError, "gate 'nope' is unknown"),
        (lambda: UniversalInvertedResidual(8, 8, 1, "4"), TypeError,
         "expand_ratio must be a number"),
        (lambda: UniversalInvertedResidual(8, 8, 1, 4, False, 3), ValueError,
         "start_kernel_size.*got False"),
        (lambda: UniversalInvertedResidual(8, 8, 1, float("nan")), ValueError,
         "expand_ratio must be a finite number > 0"),
        (lambda: FusedInvertedResidual(8, 8, 1, 0), ValueError, "expand_ratio.*got 0"),
        (lambda: FusedInvertedResidual(8, True, 1, 4), TypeError, "out_channels"),
    ],
)
def test_bad_v3_v4_block_arguments_name_the_argument(
    make, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message) as raised:
        make()
    assert type(raised.value) is error and "\n" not in str(raised.value)


def test_v3_v4_blocks_take_activation_names() -> None:
    assert isinstance(SqueezeExcite(16, activation="relu", gate="hardsigmoid").gate,
                      nn.Hardsigmoid)
    block = UniversalInvertedResidual(8, 8, 1, 4, 3, 3, activation="hardswish")
    assert isinstance(block.expand.act, nn.Hardswish)
    assert isinstance(FusedInvertedResidual(8, 8, activation="gelu").expand.act, nn.GELU)
