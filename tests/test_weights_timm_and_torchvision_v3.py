"""torchvision MobileNetV3 and timm MobileNetV4 weights in and out of mobilecnn (random weights,
built without network access)."""

from __future__ import annotations

import pytest
import torch

from equivalence_helpers import assert_same_logits, randomize
from mobilecnn import MobileNetV2, MobileNetV3, MobileNetV4, create_model
from mobilecnn.deploy import (
    load_timm_state_dict,
    load_torchvision_state_dict,
    timm_key_map,
    to_timm_state_dict,
    to_torchvision_state_dict,
    torchvision_key_map,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("variant", ["large", "small"])
def test_torchvision_mobilenet_v3_logits_and_round_trip(variant: str) -> None:
    torchvision = pytest.importorskip(
        "torchvision", reason="torchvision is not installed (pip install 'mobilecnn[dev]')")
    reference = randomize(getattr(torchvision.models, f"mobilenet_v3_{variant}")(
        weights=None, num_classes=10))
    model = MobileNetV3(variant, num_classes=10)
    assert load_torchvision_state_dict(model, reference.state_dict()) is model
    assert_same_logits(model, reference, 64)
    exported = to_torchvision_state_dict(model)
    assert list(exported) == list(reference.state_dict())
    assert all(torch.equal(exported[k], v) for k, v in reference.state_dict().items())


@pytest.mark.parametrize("variant", ["conv_small", "conv_medium", "conv_large"])
def test_timm_mobilenet_v4_logits_and_round_trip(variant: str) -> None:
    timm = pytest.importorskip(
        "timm", reason="timm is not installed (pip install 'mobilecnn[dev]')")
    reference = randomize(timm.create_model(f"mobilenetv4_{variant}", pretrained=False,
                                            num_classes=10))
    model = create_model(f"mobilenet_v4_{variant}", num_classes=10)
    assert load_timm_state_dict(model, reference.state_dict()) is model
    assert_same_logits(model, reference, 32)
    exported = to_timm_state_dict(model)
    assert list(exported) == list(reference.state_dict())
    assert all(torch.equal(exported[k], v) for k, v in reference.state_dict().items())


def test_key_map_rules() -> None:
    v3 = torchvision_key_map(MobileNetV3("large", width_mult=0.25))
    assert v3["features.0.conv.weight"] == "features.0.0.weight"
    assert v3["features.1.depthwise.conv.weight"] == "features.1.block.0.0.weight"  # no expand
    assert v3["features.1.project.bn.bias"] == "features.1.block.1.1.bias"
    assert v3["features.4.expand.conv.weight"] == "features.4.block.0.0.weight"
    assert v3["features.4.se.fc1.weight"] == "features.4.block.2.fc1.weight"
    assert v3["features.4.project.conv.weight"] == "features.4.block.3.0.weight"
    assert v3["classifier.3.bias"] == "classifier.3.bias"
    v4 = timm_key_map(MobileNetV4("conv_small", width_mult=0.25))
    assert v4["features.0.bn.running_var"] == "bn1.running_var"
    assert v4["features.2.conv.weight"] == "blocks.0.1.conv.weight"
    assert v4["features.5.start_depthwise.conv.weight"] == "blocks.2.0.dw_start.conv.weight"
    assert v4["features.5.middle_depthwise.bn.bias"] == "blocks.2.0.dw_mid.bn.bias"
    assert v4["features.17.conv.weight"] == "blocks.4.0.conv.weight"  # the 960 conv
    assert v4["head.bn.weight"] == "norm_head.weight"
    assert v4["classifier.1.weight"] == "classifier.weight"
    fused = timm_key_map(MobileNetV4("conv_medium", width_mult=0.25))
    assert fused["features.1.expand.conv.weight"] == "blocks.0.0.conv_exp.weight"
    assert fused["features.1.project.bn.bias"] == "blocks.0.0.bn2.bias"
    for mapping in (v3, v4, fused):
        assert len(set(mapping.values())) == len(mapping)


def test_key_maps_do_not_depend_on_total_stride() -> None:
    assert timm_key_map(MobileNetV4("conv_large", width_mult=0.25, total_stride=8)) == \
        timm_key_map(MobileNetV4("conv_large", width_mult=0.25))


@pytest.mark.parametrize(
    ("model", "source", "names"),
    [
        (lambda: MobileNetV3("large", width_mult=0.25), lambda: MobileNetV3("small"),
         ("torchvision mobilenet_v3_large", "create_model('mobilenet_v3_small')")),
        (lambda: MobileNetV3("small", width_mult=0.25), lambda: MobileNetV2(width_mult=0.25),
         ("torchvision mobilenet_v3_small", "create_model('mobilenet_v2')")),
        (lambda: MobileNetV4("conv_small", width_mult=0.25),
         lambda: MobileNetV4("conv_medium", width_mult=0.25),
         ("timm mobilenet_v4_conv_small", "create_model('mobilenet_v4_conv_medium')")),
    ],
)
def test_a_state_dict_of_another_variant_is_named(model, source, names) -> None:
    target = model()
    before = {k: v.clone() for k, v in target.state_dict().items()}
    other = source()
    exported = (to_timm_state_dict(other) if isinstance(other, MobileNetV4)
                else to_torchvision_state_dict(other))
    load = load_timm_state_dict if isinstance(target, MobileNetV4) else load_torchvision_state_dict
    with pytest.raises(ValueError) as error:
        load(target, exported)
    message = str(error.value)
    assert "\n" not in message
    assert all(name in message for name in names), message
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())


def test_wrong_width_and_include_classifier_false() -> None:
    source = to_timm_state_dict(MobileNetV4("conv_small", width_mult=0.5, num_classes=10))
    first_difference = r"shape mismatch at timm tensor 'blocks\.0\.0\.conv\.weight'"  # stem kept
    with pytest.raises(ValueError, match=first_difference):
        load_timm_state_dict(MobileNetV4("conv_small", width_mult=0.25, num_classes=10), source)
    model = MobileNetV4("conv_small", width_mult=0.5, num_classes=3)
    classifier_before = model.classifier[1].weight.clone()
    load_timm_state_dict(model, source, include_classifier=False)
    assert torch.equal(model.head.conv.weight, source["conv_head.weight"])
    assert torch.equal(model.classifier[1].weight, classifier_before)
    v3 = MobileNetV3("small", width_mult=0.25, num_classes=3)
    load_torchvision_state_dict(v3, to_torchvision_state_dict(MobileNetV3("small",
                                width_mult=0.25)), include_classifier=False)


def test_wrong_model_types() -> None:
    with pytest.raises(TypeError, match="only for MobileNetV2 and MobileNetV3.*load_timm"):
        torchvision_key_map(MobileNetV4(width_mult=0.25))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="only for MobileNetV1, MobileNetV4 and MobileNetV5"):
        timm_key_map(MobileNetV3(width_mult=0.25))  # type: ignore[arg-type]
