"""torchvision MobileNetV2 weights in and out of mobilecnn.MobileNetV2 (random weights only)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from equivalence_helpers import randomize
from mobilecnn import MobileNetV1, MobileNetV2
from mobilecnn.deploy import (
    load_torchvision_state_dict,
    to_torchvision_state_dict,
    torchvision_key_map,
)

torchvision = pytest.importorskip(
    "torchvision", reason="torchvision is not installed (pip install 'mobilecnn[dev]')"
)


def random_torchvision_model(width_mult: float, num_classes: int = 1000) -> nn.Module:
    """torchvision's mobilenet_v2 with random weights and random BatchNorm statistics."""
    return randomize(torchvision.models.mobilenet_v2(weights=None, width_mult=width_mult,
                                                     num_classes=num_classes))


@pytest.mark.parametrize("width_mult", [0.5, 1.0])
def test_loaded_model_matches_torchvision(width_mult: float) -> None:
    reference = random_torchvision_model(width_mult)
    model = MobileNetV2(width_mult=width_mult)
    returned = load_torchvision_state_dict(model, reference.state_dict())
    assert returned is model
    model.eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        expected = reference(x)
        actual = model(x)
    assert expected.abs().max() > 0.1  # the comparison is not between two near-zero outputs
    assert (actual - expected).abs().max().item() <= 1e-5


def test_round_trip_back_into_torchvision(tmp_path) -> None:
    reference = random_torchvision_model(0.35, num_classes=10)
    path = tmp_path / "tv.pth"
    torch.save(reference.state_dict(), path)
    model = load_torchvision_state_dict(MobileNetV2(width_mult=0.35, num_classes=10), path)
    exported = to_torchvision_state_dict(model)
    assert list(exported) == list(reference.state_dict())
    fresh = torchvision.models.mobilenet_v2(weights=None, width_mult=0.35, num_classes=10)
    fresh.load_state_dict(exported, strict=True)
    fresh.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(fresh(x), reference(x))


def test_key_map_rules() -> None:
    mapping = torchvision_key_map(MobileNetV2(width_mult=0.25))
    assert mapping["features.0.conv.weight"] == "features.0.0.weight"
    assert mapping["features.0.bn.running_var"] == "features.0.1.running_var"
    # t == 1 block: depthwise then projection, no expansion
    assert mapping["features.1.depthwise.conv.weight"] == "features.1.conv.0.0.weight"
    assert mapping["features.1.project.conv.weight"] == "features.1.conv.1.weight"
    assert mapping["features.1.project.bn.bias"] == "features.1.conv.2.bias"
    # t == 6 block: expansion, depthwise, projection
    assert mapping["features.2.expand.conv.weight"] == "features.2.conv.0.0.weight"
    assert mapping["features.2.depthwise.bn.weight"] == "features.2.conv.1.1.weight"
    assert mapping["features.2.project.conv.weight"] == "features.2.conv.2.weight"
    assert mapping["features.2.project.bn.running_mean"] == "features.2.conv.3.running_mean"
    assert mapping["features.18.conv.weight"] == "features.18.0.weight"
    assert mapping["classifier.1.weight"] == "classifier.1.weight"
    assert len(set(mapping.values())) == len(mapping)


def test_wrong_width_names_first_mismatch_and_leaves_model_unchanged() -> None:
    model = MobileNetV2(width_mult=1.0, num_classes=10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError) as error:
        load_torchvision_state_dict(model, random_torchvision_model(0.5, 10).state_dict())
    message = str(error.value)
    assert "'features.0.0.weight'" in message
    assert "(16, 3, 3, 3)" in message and "(32, 3, 3, 3)" in message
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_wrong_num_classes_and_include_classifier_false() -> None:
    source = random_torchvision_model(0.35, num_classes=1000).state_dict()
    model = MobileNetV2(width_mult=0.35, num_classes=10)
    with pytest.raises(ValueError, match=r"'classifier.1.weight'.*\(1000, 1280\).*\(10, 1280\)"):
        load_torchvision_state_dict(model, source)
    classifier_before = model.classifier[1].weight.clone()
    load_torchvision_state_dict(model, source, include_classifier=False)
    assert torch.equal(model.features[0].conv.weight, source["features.0.0.weight"])
    assert torch.equal(model.classifier[1].weight, classifier_before)


def test_wrong_architecture_lists_missing_and_unexpected_keys() -> None:
    short = MobileNetV2(width_mult=0.35, num_classes=10,
                        inverted_residual_setting=[[1, 16, 1, 1], [6, 24, 2, 2]])
    with pytest.raises(ValueError, match=r"missing \(first: features\.4\.0\.weight.*unexpected"):
        load_torchvision_state_dict(short, random_torchvision_model(0.35, 10).state_dict())


def test_wrapped_and_prefixed_checkpoints_load() -> None:
    source = random_torchvision_model(0.35, num_classes=10).state_dict()
    wrapped = {"state_dict": {f"module.{k}": v for k, v in source.items()}, "epoch": 3}
    model = load_torchvision_state_dict(MobileNetV2(width_mult=0.35, num_classes=10), wrapped)
    assert torch.equal(model.classifier[1].weight, source["classifier.1.weight"])


def test_bad_inputs() -> None:
    with pytest.raises(TypeError, match="only for MobileNetV2"):
        torchvision_key_map(MobileNetV1())  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="no state_dict file"):
        load_torchvision_state_dict(MobileNetV2(width_mult=0.35), "/nonexistent/weights.pth")
    with pytest.raises(ValueError, match="expected a state_dict"):
        load_torchvision_state_dict(MobileNetV2(width_mult=0.35), [1, 2])  # type: ignore[arg-type]


def test_corrupt_file_is_a_clear_error(tmp_path) -> None:
    path = tmp_path / "broken.pth"
    path.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="not a loadable PyTorch state_dict"):
        load_torchvision_state_dict(MobileNetV2(width_mult=0.35), path)
