"""Multi-scale feature extraction, reset_classifier, backbone freezing and the timm-style
names of the registry (list_models, is_model, create_model arguments)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from mobilecnn import MobileNetV1, MobileNetV2
from mobilecnn.models import FeatureExtractor, create_feature_extractor
from mobilecnn.models.freeze import FrozenBatchNorm2d, freeze_backbone, unfreeze_backbone


def test_mobilenet_v2_levels_without_running_the_model() -> None:
    extractor = FeatureExtractor(MobileNetV2())
    assert extractor.channels == [16, 24, 32, 96, 320]
    assert extractor.reductions == [2, 4, 8, 16, 32]
    assert extractor.out_indices == (0, 1, 2, 3, 4)


def test_mobilenet_v1_levels() -> None:
    extractor = FeatureExtractor(MobileNetV1(width_mult=0.5))
    assert extractor.channels == [32, 64, 128, 256, 512]
    assert extractor.reductions == [2, 4, 8, 16, 32]


@pytest.mark.parametrize("model_class", [MobileNetV1, MobileNetV2])
@pytest.mark.parametrize("total_stride", [32, 16])
def test_output_shapes_match_feature_info(model_class: type, total_stride: int) -> None:
    model = model_class(width_mult=0.25, total_stride=total_stride, num_classes=3).eval()
    extractor = FeatureExtractor(model)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        maps = extractor(x)
        final = model.forward_features(x)
    assert len(maps) == len(extractor.feature_info)
    for feature, channels, reduction in zip(maps, extractor.channels, extractor.reductions,
                                            strict=True):
        assert feature.shape == (2, channels, 32 // reduction, 32 // reduction)
    assert extractor.reductions[-1] == total_stride
    if model_class is MobileNetV1:  # its last block is the last feature level
        assert torch.equal(maps[-1], final)


def test_selected_levels_are_the_full_run_levels() -> None:
    model = MobileNetV2(width_mult=0.35, num_classes=3).eval()
    everything = FeatureExtractor(model)
    chosen = create_feature_extractor(model, out_indices=(1, -1))
    assert chosen.out_indices == (1, 4)
    assert chosen.channels == [everything.channels[1], everything.channels[4]]
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        all_maps = everything(x)
        some = chosen(x)
    assert torch.equal(some[0], all_maps[1]) and torch.equal(some[1], all_maps[4])


def test_truncated_extractor_keeps_only_needed_layers_and_model_keys() -> None:
    model = MobileNetV2(width_mult=0.25)
    extractor = FeatureExtractor(model, out_indices=(0, 1, 2))
    assert len(extractor.features) == 7  # stem + blocks 1..6 (stride-8 level ends at 6)
    model_state = model.state_dict()
    for key, value in extractor.state_dict().items():
        assert torch.equal(model_state[key], value)
    assert extractor.features[0] is model.features[0]  # shared, not copied


def test_create_by_name() -> None:
    extractor = create_feature_extractor("mobilenet_v2", out_indices=[2, 3], width_mult=0.5)
    assert extractor.channels == [16, 48]
    with pytest.raises(ValueError, match="unknown model"):
        create_feature_extractor("resnet50")
    with pytest.raises(ValueError, match="only used when model is a name"):
        create_feature_extractor(MobileNetV2(width_mult=0.25), width_mult=0.5)


@pytest.mark.parametrize("bad", [(), (5,), (-6,), (2, 1), (1, 1), (0.5,)])
def test_bad_out_indices(bad: tuple) -> None:
    with pytest.raises(ValueError, match="out_indices"):
        FeatureExtractor(MobileNetV2(width_mult=0.25), out_indices=bad)


def test_bad_model_and_input() -> None:
    with pytest.raises(TypeError, match="MobileNetBase"):
        FeatureExtractor(nn.Conv2d(3, 3, 1))  # type: ignore[arg-type]
    extractor = FeatureExtractor(MobileNetV2(width_mult=0.25))
    with pytest.raises(ValueError, match=r"unsqueeze|shape \(batch, 3"):
        extractor(torch.randn(3, 32, 32))


def test_extractor_on_device(device: torch.device) -> None:
    extractor = FeatureExtractor(MobileNetV2(width_mult=0.25).to(device).eval())
    with torch.no_grad():
        maps = extractor(torch.randn(1, 3, 32, 32, device=device))
    assert all(m.device.type == device.type for m in maps)


def test_reset_classifier_for_fine_tuning() -> None:
    model = MobileNetV2(width_mult=0.25, num_classes=1000)
    model.reset_classifier(7)
    assert model.num_classes == 7
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)


def _train_step(model: nn.Module) -> None:
    model.train()
    loss = model(torch.randn(4, 3, 32, 32)).square().mean()
    loss.backward()


def test_freeze_backbone_trains_only_the_head() -> None:
    model = MobileNetV2(width_mult=0.25, num_classes=5)
    model.freeze_backbone()
    assert not any(p.requires_grad for p in model.features.parameters())
    assert all(p.requires_grad for p in model.classifier.parameters())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.features.modules())
    stats_before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    _train_step(model)
    assert all(p.grad is None for p in model.features.parameters())
    assert model.classifier[1].weight.grad is not None
    after = model.state_dict()
    assert all(torch.equal(stats_before[k], after[k]) for k in stats_before)


def test_frozen_batchnorm_matches_eval_batchnorm_and_loads_bn_state() -> None:
    bn = nn.BatchNorm2d(6)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 1.5)
    frozen = FrozenBatchNorm2d.from_batchnorm(bn)
    x = torch.randn(2, 6, 4, 4)
    frozen.train()
    assert torch.allclose(frozen(x), bn.eval()(x), atol=1e-6)
    other = FrozenBatchNorm2d(6)
    other.load_state_dict(bn.state_dict())  # num_batches_tracked is accepted and dropped
    assert torch.allclose(other(x), frozen(x))


def test_freeze_without_norm_and_unfreeze() -> None:
    model = MobileNetV1(width_mult=0.25, num_classes=5)
    freeze_backbone(model, freeze_norm=False)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.features.modules())
    unfreeze_backbone(freeze_backbone(model))
    assert all(p.requires_grad for p in model.parameters())
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in model.modules())
    _train_step(model)
    assert model.features[0].conv.weight.grad is not None
    with pytest.raises(TypeError, match="'features' backbone"):
        freeze_backbone(nn.Linear(2, 2))


def test_freeze_extractor_backbone() -> None:
    extractor = freeze_backbone(FeatureExtractor(MobileNetV2(width_mult=0.25)))
    assert not any(p.requires_grad for p in extractor.parameters())


# ------------------------------------------------------ timm-style names: registry and feature_info


def test_list_models_and_is_model() -> None:
    from mobilecnn import MODELS, is_model, list_models

    assert list_models() == sorted(MODELS)
    assert list_models("mobilenet_v3*") == ["mobilenet_v3_large", "mobilenet_v3_small"]
    assert list_models(["*_v1", "*_v2"]) == ["mobilenet_v1", "mobilenet_v2"]
    assert list_models("resnet*") == []
    assert is_model("mobilenet_v2") and not is_model("mobilenetv2_100")
    with pytest.raises(TypeError, match="pattern must be a string"):
        list_models([3])  # type: ignore[list-item]


def test_create_model_takes_timm_argument_names() -> None:
    from mobilecnn.models import create_model

    model = create_model("mobilenet_v2", width_mult=0.25, num_classes=0, in_chans=1,
                         drop_rate=0.3, total_stride=16)
    assert (model.in_channels, model.num_classes) == (1, 0)
    assert model.classifier[0].p == 0.3
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, model.head_hidden_size)
    extractor = create_model("mobilenet_v2", width_mult=0.25, features_only=True,
                             out_indices=(2, 3, 4), total_stride=16)
    assert isinstance(extractor, FeatureExtractor)
    assert extractor.feature_info.reduction() == [4, 8, 16]
    assert extractor.feature_info.channels(0) == 8
    assert extractor.feature_info.module_name() == ["features.6", "features.13", "features.17"]
    assert extractor.pretrained_cfg["architecture"] == "mobilenet_v2"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"pretrained": True}, ValueError, r"random weights only.*mobilecnn.create_model"),
        ({"in_chans": 1, "in_channels": 1}, ValueError, "in_chans= and in_channels= are the same"),
        ({"drop_rate": 0.1, "dropout": 0.1}, ValueError, "drop_rate= and dropout= are the same"),
        ({"out_indices": (1, 2)}, ValueError, "pass features_only=True too"),
        ({"features_only": "yes"}, TypeError, "features_only must be True or False"),
        ({"features_only": True, "out_indices": 3}, ValueError, "out_indices must be a sequence"),
        ({"activation": "swishy"}, ValueError, r"activation 'swishy' is unknown; use one of "),
        ({"activation": 3}, TypeError, "activation must be an activation name"),
    ],
)
def test_create_model_refuses_bad_arguments_in_one_line(kwargs: dict, error: type,
                                                        message: str) -> None:
    from mobilecnn.models import create_model

    with pytest.raises(error, match=message) as raised:
        create_model("mobilenet_v2", **kwargs)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("model_class", [MobileNetV1, MobileNetV2])
def test_activation_by_name(model_class: type) -> None:
    by_name = model_class(width_mult=0.25, activation="hardswish")
    assert any(isinstance(m, nn.Hardswish) for m in by_name.modules())
    assert not any(isinstance(m, (nn.ReLU, nn.ReLU6)) for m in by_name.modules())


def test_head_hidden_size_is_the_pre_logits_width() -> None:
    from mobilecnn.models import create_model

    sizes = {name: create_model(name, num_classes=0).head_hidden_size
             for name in ("mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large",
                          "mobilenet_v3_small", "mobilenet_v4_conv_small")}
    assert sizes == {"mobilenet_v1": 1024, "mobilenet_v2": 1280, "mobilenet_v3_large": 1280,
                     "mobilenet_v3_small": 1024, "mobilenet_v4_conv_small": 1280}


def test_feature_extractor_grad_checkpointing_matches() -> None:
    model = MobileNetV2(width_mult=0.25, num_classes=3, total_stride=16).train()
    plain = FeatureExtractor(model, out_indices=(1, 3))
    checkpointed = FeatureExtractor(copy.deepcopy(model), out_indices=(1, 3))
    checkpointed.set_grad_checkpointing()
    x = torch.randn(2, 3, 32, 32)
    grads = []
    for extractor in (plain, checkpointed):
        maps = extractor(x)
        sum(m.square().mean() for m in maps).backward()
        grads.append([p.grad for p in extractor.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(b, a)
    for (key, a), b in zip(plain.state_dict().items(), checkpointed.state_dict().values(),
                           strict=True):
        assert torch.equal(a, b), key
