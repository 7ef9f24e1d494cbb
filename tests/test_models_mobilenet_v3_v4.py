"""MobileNetV3/V4: the reference counts, and everything downstream for every model of MODELS."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deploy_helpers import max_relative_error, randomize_batchnorm
from mobilecnn import (
    MODELS,
    MobileNetV3,
    MobileNetV4,
    create_model,
    mac_count,
    param_count,
    summary,
)
from mobilecnn.deploy import (
    FeatureExtractor,
    FrozenBatchNorm2d,
    fold_batchnorm,
    optimize_for_inference,
)

# torchvision's mobilenet_v3_* and timm's mobilenetv4_conv_* (1000 classes); MACs at 224x224
V3_PARAMS = {("large", 1.0): 5_483_032, ("small", 1.0): 2_542_856,
             ("large", 0.75): 3_377_576, ("small", 0.75): 1_653_920}
V3_MACS_M = {"large": 216.6, "small": 56.5}  # papers: 219M / 56M
V4_PARAMS = {"conv_small": 3_774_024, "conv_medium": 9_715_512, "conv_large": 32_590_864}
V4_MACS_M = {"conv_small": 186.0, "conv_medium": 827.6, "conv_large": 2171.3}


def on_meta(make, *args, **kwargs) -> nn.Module:
    """Shapes only: counting a model built on the meta device allocates and computes nothing."""
    with torch.device("meta"):
        return make(*args, **kwargs)


@pytest.mark.parametrize(("variant", "width"), sorted(V3_PARAMS))
def test_mobilenet_v3_parameters(variant: str, width: float) -> None:
    model = on_meta(MobileNetV3, variant, width_mult=width)
    assert param_count(model) == V3_PARAMS[variant, width]


@pytest.mark.parametrize("variant", sorted(V3_MACS_M))
def test_mobilenet_v3_macs(variant: str) -> None:
    macs = mac_count(on_meta(MobileNetV3, variant), 224)
    assert round(macs / 1e6, 1) == V3_MACS_M[variant]


@pytest.mark.parametrize("variant", sorted(V4_PARAMS))
def test_mobilenet_v4_parameters_and_macs(variant: str) -> None:
    model = on_meta(MobileNetV4, variant)
    assert param_count(model) == V4_PARAMS[variant]
    assert round(mac_count(model, 224) / 1e6, 1) == V4_MACS_M[variant]


@pytest.mark.parametrize(("variant", "width"), [("large", 0.75), ("small", 1.0), ("small", 0.5)])
def test_mobilenet_v3_matches_torchvision_architecture(variant: str, width: float) -> None:
    torchvision = pytest.importorskip("torchvision", reason="torchvision (dev extra) not installed")
    ours = on_meta(MobileNetV3, variant, width_mult=width).state_dict()
    reference = on_meta(getattr(torchvision.models, f"mobilenet_v3_{variant}"),
                        width_mult=width).state_dict()
    assert [t.shape for t in ours.values()] == [t.shape for t in reference.values()]


@pytest.mark.parametrize("variant", sorted(V4_PARAMS))
def test_mobilenet_v4_matches_timm_architecture(variant: str) -> None:
    timm = pytest.importorskip("timm", reason="timm (dev extra) not installed")
    ours = on_meta(MobileNetV4, variant).state_dict()
    reference = on_meta(timm.create_model, f"mobilenetv4_{variant}", pretrained=False)
    assert param_count(reference) == V4_PARAMS[variant]
    assert sorted(t.shape for t in ours.values()) == sorted(
        t.shape for t in reference.state_dict().values())


@pytest.mark.parametrize(("variant", "width"), [("conv_small", 0.5), ("conv_medium", 1.5)])
def test_mobilenet_v4_matches_timm_at_other_widths(variant: str, width: float) -> None:
    timm = pytest.importorskip("timm", reason="timm (dev extra) not installed")
    generate = getattr(timm.models.mobilenetv3, "_gen_mobilenet_v4", None)
    if generate is None:
        pytest.skip(f"timm {timm.__version__} has no _gen_mobilenet_v4 (width multipliers)")
    reference = on_meta(generate, f"mobilenetv4_{variant}", width)
    ours = on_meta(MobileNetV4, variant, width_mult=width)
    assert param_count(ours) == param_count(reference)
    assert sorted(t.shape for t in ours.state_dict().values()) == sorted(
        t.shape for t in reference.state_dict().values())


def test_mobilenet_v3_follows_the_tables() -> None:
    large, small = MobileNetV3("large"), MobileNetV3("small")
    assert len(large.features) == 17 and len(small.features) == 13  # stem, blocks, last conv
    assert isinstance(large.features[0].act, nn.Hardswish)
    assert large.features[-1].conv.out_channels == 960 and small.num_features == 576
    assert sum(getattr(b, "se", None) is not None for b in large.features) == 8
    assert sum(getattr(b, "se", None) is not None for b in small.features) == 9
    assert large.classifier[0].out_features == 1280 and small.classifier[0].out_features == 1024
    bn = large.features[0].bn
    assert (bn.eps, bn.momentum) == (0.001, 0.01)  # the reference's BatchNorm
    assert [f["num_chs"] for f in large.feature_info] == [16, 24, 40, 112, 160]
    assert [f["reduction"] for f in small.feature_info] == [2, 4, 8, 16, 32]


def test_mobilenet_v4_head_and_block_types() -> None:
    model = MobileNetV4("conv_medium")
    kinds = [getattr(b, "block_type", type(b).__name__) for b in model.features]
    assert kinds[:3] == ["ConvNormAct", "FusedInvertedResidual", "extra_dw"]
    assert {"extra_dw", "convnext", "ffn"} <= set(kinds)
    assert "ib" in {getattr(b, "block_type", "") for b in MobileNetV4("conv_small").features}
    assert model.num_features == 960 and model.head.conv.out_channels == 1280
    assert [f["num_chs"] for f in model.feature_info] == [32, 48, 80, 160, 256]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: MobileNetV3("medium"),
         "unknown MobileNetV3 variant 'medium'; choose one of: 'large', 'small'"),
        (lambda: MobileNetV4("hybrid_small"),
         "unknown MobileNetV4 variant 'hybrid_small'; choose one of: 'conv_small'"),
        (lambda: create_model("mobilenet_v3_small", variant="large"), "already fixes the variant"),
        (lambda: MobileNetV3(width_mult=0), "width_mult must be a finite number > 0"),
        (lambda: MobileNetV4(total_stride=64), "total_stride must be one of"),
        (lambda: MobileNetV4(num_classes=-2), "num_classes must be an integer >= 0"),
        (lambda: MobileNetV3(dropout=1.0), "dropout must be in"),
    ],
)
def test_bad_model_arguments(make, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        make()
    assert "\n" not in str(error.value)


# ----------------------------------------------------------------- every model of the registry

# every classifier (encoders return feature maps); the big MobileNetV5s are slow even when tiny
ALL_MODELS = [pytest.param(name, marks=pytest.mark.slow) if name.startswith("mobilenet_v5")
              else name for name in sorted(MODELS) if not name.endswith("_encoder")]
NEW_MODELS = [name for name in ALL_MODELS
              if isinstance(name, str) and ("v3" in name or "v4" in name)]


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(name: str, **kwargs) -> nn.Module:
    return create_model(name, width_mult=0.25, num_classes=5, **kwargs)


@pytest.mark.parametrize("name", NEW_MODELS)
@pytest.mark.parametrize(("total_stride", "size"), [(16, 64), (8, 32)])
def test_total_stride_keeps_weights_and_sets_the_final_map(
    name: str, total_stride: int, size: int
) -> None:
    model = tiny(name, total_stride=total_stride).eval()
    assert model.variant == name.split("_", 2)[2]
    with torch.no_grad():
        features = model.forward_features(torch.randn(1, 3, size, size))
        assert model.forward_head(features).shape == (1, 5)
    assert features.shape[-2:] == (4, 4)  # instead of 2x2 / 1x1 with total_stride=32
    assert param_count(model) == param_count(on_meta(tiny, name))
    assert model.feature_info[-1]["reduction"] == total_stride


@pytest.mark.parametrize("name", ALL_MODELS)
def test_feature_info_describes_the_maps(name: str) -> None:
    model = tiny(name).eval()
    extractor = FeatureExtractor(model)
    with torch.no_grad():
        maps = extractor(torch.randn(1, 3, 32, 32))
    assert [m.shape[1] for m in maps] == extractor.channels
    assert [32 // m.shape[-1] for m in maps] == extractor.reductions == [2, 4, 8, 16, 32]


@pytest.mark.parametrize("name", ALL_MODELS)
def test_input_checks_head_reset_freeze_and_training(name: str) -> None:
    model = create_model(name, width_mult=0.25, num_classes=10, in_channels=1).eval()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.forward_head(model.forward_features(x)), model(x))
    with pytest.raises(ValueError, match=r"\(batch, 1, height, width\), got shape \[2, 3, 32"):
        model(torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"got shape \[1, 32, 32\]"):
        model(torch.randn(1, 32, 32))
    model.reset_classifier(4)
    assert model.num_classes == 4
    # a training step of the whole model, then one with the backbone frozen
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = nn.functional.cross_entropy(model(x), torch.tensor([0, 3]))
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss) and all(p.grad is not None for p in model.parameters())
    has_batchnorm = any(isinstance(m, nn.BatchNorm2d) for m in model.features.modules())
    model.freeze_backbone()
    assert not any(p.requires_grad for p in model.features.parameters())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.features.modules())
    assert any(isinstance(m, FrozenBatchNorm2d) for m in model.features.modules()) == has_batchnorm
    model.zero_grad(set_to_none=True)
    model(x).sum().backward()
    assert all(p.grad is None for p in model.features.parameters())
    assert all(p.grad is not None for p in model.classifier.parameters())
    model.unfreeze_backbone()
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("name", ALL_MODELS)
def test_counting_and_summary(name: str) -> None:
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    model = tiny(name).eval()
    report = summary(model, 32)
    assert report.total_params == param_count(model)
    assert sum(layer.params for layer in report.layers) == param_count(model)
    # the math attention kernel runs as matmuls the counter sees (the fused CPU kernel is not
    # counted by FlopCounterMode)
    with FlopCounterMode(display=False) as counter, torch.no_grad(), \
            sdpa_kernel(SDPBackend.MATH):
        model(torch.zeros(1, 3, 32, 32))
    assert report.total_macs == counter.get_total_flops() // 2


@pytest.mark.parametrize("name", ALL_MODELS)
def test_fold_and_optimize_keep_the_logits(name: str) -> None:
    model = randomize_batchnorm(tiny(name)).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        optimized_model = optimize_for_inference(model)  # fold_batchnorm, channels_last
        optimized = optimized_model(x)
    assert max_relative_error(optimized, expected) <= 1e-4
    assert not any(isinstance(m, nn.BatchNorm2d) for m in optimized_model.modules())
    assert type(optimized_model) is type(model)


def test_fold_batchnorm_folds_every_new_block() -> None:
    model = randomize_batchnorm(MobileNetV4("conv_medium", width_mult=0.25, num_classes=3))
    folded = fold_batchnorm(model)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == sum(
        isinstance(m, nn.Conv2d) for m in model.modules())  # every conv of V4 has a BatchNorm
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    with torch.no_grad():
        x = torch.randn(1, 3, 32, 32)
        assert max_relative_error(folded(x), model.eval()(x)) <= 1e-4


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "mobilenet_v4_conv_small"])
def test_forward_matches_cpu_on_every_device(name: str, device: torch.device) -> None:
    model = tiny(name).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        actual = model.to(device)(x.to(device)).cpu()
    torch.testing.assert_close(actual, expected, rtol=1e-3, atol=1e-4)
