"""--init: torchvision ImageNet weights and mobilecnn checkpoints; layer-wise lr groups."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mobilecnn import MobileNetV2, create_model, freeze_backbone, to_torchvision_state_dict
from mobilecnn.train import layerwise_lr_groups, load_init, save_checkpoint


def small_v2(num_classes: int = 5, width: float = 0.5) -> MobileNetV2:
    model = create_model("mobilenet_v2", num_classes=num_classes, width_mult=width,
                         total_stride=16)
    assert isinstance(model, MobileNetV2)
    return model


def test_torchvision_init_loads_the_backbone_into_the_small_input_model(tmp_path: Path) -> None:
    # an "ImageNet" model (stride 32, 1000 classes) saved under torchvision's key names
    torch.manual_seed(1)
    imagenet = MobileNetV2(num_classes=1000, width_mult=0.5)
    path = tmp_path / "mobilenet_v2.pth"
    torch.save(to_torchvision_state_dict(imagenet), path)
    model = small_v2()
    classifier = model.classifier[1].weight.clone()
    message = load_init(model, f"torchvision:{path}")
    assert "backbone" in message
    for (name, ours), theirs in zip(model.features.state_dict().items(),
                                    imagenet.features.state_dict().values(), strict=True):
        assert torch.equal(ours, theirs), name
    assert torch.equal(model.classifier[1].weight, classifier)  # new classes: new head


def test_torchvision_init_of_the_wrong_architecture(tmp_path: Path) -> None:
    models = pytest.importorskip("torchvision.models", reason="a foreign architecture")
    path = tmp_path / "resnet.pth"
    torch.save(models.resnet18(num_classes=10).state_dict(), path)
    model = small_v2()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="does not fit mobilenet_v2") as caught:
        load_init(model, f"torchvision:{path}")
    assert "\n" not in str(caught.value)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    wide = tmp_path / "wide.pth"
    torch.save(to_torchvision_state_dict(MobileNetV2(width_mult=1.0)), wide)
    with pytest.raises(ValueError, match="width 0.5"):
        load_init(model, f"torchvision:{wide}")


def test_checkpoint_init(tmp_path: Path) -> None:
    source = small_v2()
    path = save_checkpoint({"model_name": "mobilenet_v2",
                            "model_kwargs": {"num_classes": 5, "width_mult": 0.5,
                                             "total_stride": 16},
                            "model": source.state_dict(), "classes": list("abcde"),
                            "class_names": list("abcde"), "epoch": 3}, tmp_path / "c.pt")
    same = small_v2()
    assert "all weights" in load_init(same, str(path), classes=list("abcde"))
    assert all(torch.equal(a, b) for a, b in zip(same.state_dict().values(),
                                                 source.state_dict().values(), strict=True))
    other = small_v2(num_classes=3)
    assert "backbone" in load_init(other, str(path), classes=list("xyz"))
    assert torch.equal(other.features[0].conv.weight, source.features[0].conv.weight)
    with pytest.raises(ValueError, match="does not fit this model"):
        load_init(small_v2(width=0.25), str(path), classes=list("abcde"))


def test_layerwise_lr_groups() -> None:
    model = small_v2()
    groups = layerwise_lr_groups(model, weight_decay=1e-4, lr_decay=0.5)
    params = [p for group in groups for p in group["params"]]
    assert len(params) == len(list(model.parameters())) == len({id(p) for p in params})
    stem = next(g for g in groups if any(p is model.features[0].conv.weight for p in g["params"]))
    head = next(g for g in groups if any(p is model.classifier[1].weight for p in g["params"]))
    assert head["lr_scale"] == 1.0 and stem["lr_scale"] == 0.5 ** len(model.features)
    assert stem["weight_decay"] == 1e-4
    assert all(g["weight_decay"] == 0.0 for g in groups if g["params"][0].ndim < 2)
    freeze_backbone(model)
    frozen = layerwise_lr_groups(model, weight_decay=1e-4, lr_decay=0.5)
    assert sum(len(g["params"]) for g in frozen) == 2  # only the classifier
    with pytest.raises(ValueError, match="lr decay"):
        layerwise_lr_groups(model, 1e-4, lr_decay=0.0)
