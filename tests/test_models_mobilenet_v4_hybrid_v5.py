"""MobileNetV4 hybrids and MobileNetV5: counts and logits equal timm's (random timm weights with
random norm statistics, reduced sizes), key maps, the encoder, total stride, export, training."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import torch
from torch import nn

from data_helpers import make_official
from deploy_helpers import needs_onnx
from equivalence_helpers import assert_same_logits, randomize
from mobilecnn import (
    MobileNetV4,
    MobileNetV5,
    MobileNetV5Encoder,
    create_model,
    mac_count,
    param_count,
)
from mobilecnn.cli import main
from mobilecnn.deploy import load_timm_state_dict, timm_key_map, to_timm_state_dict
from mobilecnn.layers import LayerScale2d, MobileMQA, RMSNorm2d

pytestmark = pytest.mark.usefixtures("one_thread")

COUNTS = {  # parameters at 1000 classes (timm 1.0.31)
    "mobilenet_v4_hybrid_medium": 11_074_648,
    "mobilenet_v4_hybrid_large": 37_764_624,
    "mobilenet_v5_base": 82_647_976,
    "mobilenet_v5_300m": 296_175_912,  # timm's mobilenetv5_300m defaults to no classifier:
    "mobilenet_v5_300m_encoder": 294_126_912,  # 294,126,912, as its encoder
}
TIMM_NAMES = {"mobilenet_v4_hybrid_medium": "mobilenetv4_hybrid_medium",
              "mobilenet_v4_hybrid_large": "mobilenetv4_hybrid_large",
              "mobilenet_v5_base": "mobilenetv5_base", "mobilenet_v5_300m": "mobilenetv5_300m",
              "mobilenet_v5_300m_encoder": "mobilenetv5_300m_enc"}


def timm_module():
    return pytest.importorskip("timm", reason="timm is not installed (pip install "
                                              "'mobilecnn[dev]')")


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_parameter_counts_equal_timm(name: str) -> None:
    with torch.device("meta"):
        model = create_model(name)
    assert param_count(model) == COUNTS[name]
    timm = timm_module()
    kwargs = {"num_classes": 1000} if name == "mobilenet_v5_300m" else {}
    with torch.device("meta"):
        reference = timm.create_model(TIMM_NAMES[name], **kwargs)
    assert param_count(reference) == COUNTS[name]
    assert set(timm_key_map(model).values()) == set(reference.state_dict())


@pytest.mark.parametrize(("name", "timm_name", "width"), [
    ("mobilenet_v4_hybrid_medium", "mobilenetv4_hybrid_medium", 1.0),
    ("mobilenet_v4_hybrid_large", "mobilenetv4_hybrid_large_075", 0.75),
])
def test_v4_hybrid_logits_equal_timm_and_round_trip(name: str, timm_name: str,
                                                    width: float) -> None:
    reference = randomize(timm_module().create_model(timm_name, num_classes=10))
    model = create_model(name, num_classes=10, width_mult=width)
    assert load_timm_state_dict(model, reference.state_dict()) is model
    assert_same_logits(model, reference, 64, tolerance=2e-5)
    exported = to_timm_state_dict(model)
    assert list(exported) == list(reference.state_dict())


def timm_v5(name: str, width: float, **kwargs) -> nn.Module:
    from timm.models._efficientnet_builder import round_channels

    return randomize(timm_module().create_model(
        name, round_chs_fn=partial(round_channels, multiplier=width), fix_stem=width < 1,
        **kwargs))


def test_v5_base_logits_equal_timm() -> None:
    reference = timm_v5("mobilenetv5_base", 0.25, num_classes=10)
    model = create_model("mobilenet_v5_base", num_classes=10, width_mult=0.25)
    load_timm_state_dict(model, reference.state_dict())
    # the 4x4 map is resized to 16x16 (bilinear)
    assert_same_logits(model, reference, 64, tolerance=2e-5)
    assert_same_logits(model, reference, 96, tolerance=2e-5)  # 6x6 -> 16x16


@pytest.mark.slow
def test_v5_300m_and_encoder_load_and_equal_timm() -> None:
    reference = timm_v5("mobilenetv5_300m", 0.25, num_classes=10)
    model = create_model("mobilenet_v5_300m", num_classes=10, width_mult=0.25)
    load_timm_state_dict(model, reference.state_dict())
    assert_same_logits(model, reference, 64, tolerance=2e-5)
    encoder_reference = timm_v5("mobilenetv5_300m_enc", 0.25)
    encoder = MobileNetV5Encoder(width_mult=0.25)
    load_timm_state_dict(encoder, encoder_reference.state_dict())
    # odd maps: TensorFlow "same" padding
    assert_same_logits(encoder, encoder_reference, 66, tolerance=2e-5)


def test_key_map_rules() -> None:
    hybrid = timm_key_map(MobileNetV4("hybrid_medium", width_mult=0.25))
    assert hybrid["features.8.norm.running_var"] == "blocks.2.4.norm.running_var"
    assert hybrid["features.8.attn.key_down.conv.weight"] == "blocks.2.4.attn.key.down_conv.weight"
    assert hybrid["features.8.attn.value_down.bn.bias"] == "blocks.2.4.attn.value.norm.bias"
    assert hybrid["features.8.attn.out_proj.weight"] == "blocks.2.4.attn.output.proj.weight"
    assert hybrid["features.8.layer_scale.gamma"] == "blocks.2.4.layer_scale.gamma"
    assert hybrid["features.5.layer_scale.gamma"] == "blocks.2.1.layer_scale.gamma"  # UIB
    v5 = timm_key_map(MobileNetV5("base", width_mult=0.25))
    assert v5["features.0.conv.bias"] == "conv_stem.conv.bias"
    assert v5["features.0.bn.weight"] == "conv_stem.bn.weight"
    assert v5["fusion.ffn.expand.conv.weight"] == "msfa.ffn.pw_exp.conv.weight"
    assert v5["fusion.norm.weight"] == "msfa.norm.weight"
    assert "classifier.1.weight" not in timm_key_map(MobileNetV5Encoder(width_mult=0.25))
    for mapping in (hybrid, v5):
        assert len(set(mapping.values())) == len(mapping)


def test_a_v5_state_dict_of_another_variant_is_named() -> None:
    source = to_timm_state_dict(MobileNetV5("base", width_mult=0.25))
    with pytest.raises(ValueError, match="timm weights for mobilenet_v5_base") as error:
        load_timm_state_dict(MobileNetV4("hybrid_medium", width_mult=0.25), source)
    assert "\n" not in str(error.value)


def test_blocks_activations_and_norms_of_each_model() -> None:
    medium, large = MobileNetV4("hybrid_medium"), MobileNetV4("hybrid_large")
    assert sum(isinstance(b, MobileMQA) for b in medium.features) == 8
    assert sum(isinstance(b, MobileMQA) for b in large.features) == 8
    assert isinstance(large.head.act, nn.GELU) and isinstance(medium.head.act, nn.ReLU)
    assert medium.features[8].attn.kv_stride == 2 and medium.features[24].attn.kv_stride == 1
    assert all(b.layer_scale is not None for b in medium.features if isinstance(b, MobileMQA))
    assert MobileNetV4("conv_medium").features[2].layer_scale is None  # conv variants: none
    base = MobileNetV5("base", width_mult=0.25)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in base.modules())
    assert sum(isinstance(m, RMSNorm2d) for m in base.modules()) > 0
    assert sum(isinstance(m, LayerScale2d) for m in base.modules()) == 36  # 5 + 16 + 15 UIB and MQA
    assert base.fusion_taps == [24, 39]  # the last blocks at stride 16 and 32


def test_total_stride_feature_info_and_macs_of_the_hybrids() -> None:
    model = MobileNetV4("hybrid_medium", width_mult=0.25, num_classes=5, total_stride=16)
    with torch.no_grad():
        assert model.eval().forward_features(torch.randn(1, 3, 64, 64)).shape[-2:] == (4, 4)
    assert [f["reduction"] for f in model.feature_info] == [1, 2, 4, 8, 16]
    full = MobileNetV4("hybrid_medium", width_mult=0.25, num_classes=5)
    assert param_count(full) == param_count(model)
    assert mac_count(model, 64) > mac_count(full, 64)  # same weights on 4x larger maps


def test_v5_small_inputs_and_encoder() -> None:
    model = MobileNetV5("base", width_mult=0.25, num_classes=5, total_stride=16,
                        fusion_size=None).eval()
    with torch.no_grad():
        assert model.forward_features(torch.randn(1, 3, 64, 64)).shape == (1, 2048, 8, 8)
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 5)
    encoder = create_model("mobilenet_v5_300m_encoder", width_mult=0.25).eval()
    with torch.no_grad():
        assert encoder(torch.randn(1, 3, 64, 64)).shape == (1, 2048, 16, 16)
    with pytest.raises(ValueError, match="has no classifier"):
        encoder.reset_classifier(10)
    with pytest.raises(ValueError, match="num_classes must be 0") as error:
        create_model("mobilenet_v5_300m_encoder", num_classes=10)
    assert "\n" not in str(error.value)


def test_hybrid_traces_scripts_and_exports() -> None:
    model = randomize(MobileNetV4("hybrid_medium", width_mult=0.25, num_classes=5))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        torch.testing.assert_close(torch.jit.script(model)(x), expected)
        features = torch.fx.symbolic_trace(model.features)
        torch.testing.assert_close(model.forward_head(features(x)), expected)
        exported = torch.export.export(model, (x,)).module()
        torch.testing.assert_close(exported(x), expected)


@needs_onnx
@pytest.mark.slow
def test_hybrid_onnx_export_runs_in_onnxruntime(tmp_path: Path) -> None:
    import onnxruntime

    from mobilecnn.deploy import export_onnx

    model = randomize(MobileNetV4("hybrid_medium", width_mult=0.25, num_classes=5,
                                  total_stride=16))
    path = export_onnx(model, tmp_path / "hybrid.onnx", 64)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, 64, 64)
    (logits,) = session.run(None, {"images": x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(logits), model(x), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_train_cli_trains_a_tiny_hybrid(tmp_path: Path) -> None:
    root = make_official(tmp_path / "data", num_classes=3, train_per_class=8, val_per_class=3,
                         test_images=0, size=16)
    out = tmp_path / "run"
    assert main(["train", "--model", "mobilenet_v4_hybrid_medium", "--data", str(root),
                 "--out", str(out), "--epochs", "1", "--width", "0.25", "--batch-size", "8",
                 "--crop", "none", "--precision", "fp32", "--device", "cpu",
                 "--no-progress"]) == 0
    assert any(out.rglob("*.pt"))
