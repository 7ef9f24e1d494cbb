"""TrainConfig validation and round trips; optimizer parameter groups and the LR schedule."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mobilecnn import MobileNetV2
from mobilecnn.train.config import TrainConfig, demo_config
from mobilecnn.train.optim import build_optimizer, build_scheduler, param_groups


def test_defaults_are_the_64px_recipe() -> None:
    config = TrainConfig(data="somewhere")
    assert config.total_stride == 16
    assert config.optimizer == "sgd" and config.momentum == 0.9
    assert config.label_smoothing == 0.1
    assert config.channels_last


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"batch_size": 2.5}, "batch_size must be a positive integer"),
        ({"optimizer": "adam"}, "optimizer must be one of auto, sgd, adamw, rmsprop"),
        ({"precision": "fp8"}, "precision must be one of"),
        ({"model": "resnet"}, "model must be one of"),
        ({"total_stride": 4}, "total_stride must be 8, 16 or 32"),
        ({"label_smoothing": 1.0}, "label_smoothing must be in"),
        ({"warmup_epochs": -1}, "warmup_epochs must be a number >= 0"),
        ({"lr": -0.1}, "lr must be a positive number"),
        ({"crop": "center"}, "crop must be one of"),
        ({"seed": -1}, "seed must be an integer >= 0"),
    ],
)
def test_bad_values_name_the_field(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(data="x", **changes)


def test_dict_round_trip_and_unknown_keys() -> None:
    config = TrainConfig(data="x", epochs=3, lr=0.05, grad_clip=2.0)
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown training option.*learning_rate"):
        TrainConfig.from_dict({**config.to_dict(), "learning_rate": 1.0})


def test_the_model_chooses_the_optimizer_unless_given() -> None:
    """MobileNetV5 (RMSNorm, attention, layer scales) diverges under SGD: "auto" gives it
    AdamW, the convolutional models SGD; a given optimizer always wins, and the resolved one
    is what the config records."""
    v5 = TrainConfig(data="x", model="mobilenet_v5_base", batch_size=16)
    assert v5.optimizer == "adamw" and v5.peak_lr == pytest.approx(2e-3 * 16 / 256)
    assert TrainConfig(data="x", model="mobilenet_v4_hybrid_medium").optimizer == "sgd"
    assert TrainConfig(data="x", model="mobilenet_v5_300m", optimizer="sgd").optimizer == "sgd"
    assert v5.to_dict()["optimizer"] == "adamw"
    assert TrainConfig.from_dict(v5.to_dict()) == v5


def test_lr_scales_with_the_global_batch() -> None:
    assert TrainConfig(data="x", batch_size=256).peak_lr == pytest.approx(0.1)
    assert TrainConfig(data="x", batch_size=512).peak_lr == pytest.approx(0.2)
    assert TrainConfig(data="x", batch_size=128, optimizer="adamw").peak_lr == pytest.approx(1e-3)
    assert TrainConfig(data="x", batch_size=512, lr=0.3).peak_lr == 0.3
    assert TrainConfig(data="x", optimizer="adamw").effective_weight_decay == 0.05
    assert demo_config(epochs=2).data == "demo"


def _tiny_model() -> MobileNetV2:
    return MobileNetV2(num_classes=5, width_mult=0.25,
                       inverted_residual_setting=[[1, 8, 1, 1], [2, 8, 1, 2]])


def test_no_weight_decay_on_norm_and_bias() -> None:
    model = _tiny_model()
    decay, no_decay = param_groups(model, 1e-4)
    assert decay["weight_decay"] == 1e-4 and no_decay["weight_decay"] == 0.0
    ids_decay = {id(p) for p in decay["params"]}
    ids_no = {id(p) for p in no_decay["params"]}
    bn_and_bias = {id(m.weight) for m in model.modules() if isinstance(m, nn.BatchNorm2d)}
    bn_and_bias |= {id(m.bias) for m in model.modules()
                    if isinstance(m, (nn.BatchNorm2d, nn.Linear))}
    convs = {id(m.weight) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    assert bn_and_bias == ids_no
    assert convs == ids_decay
    assert ids_decay | ids_no == {id(p) for p in model.parameters()}


@pytest.mark.parametrize(("name", "kind"), [("sgd", torch.optim.SGD),
                                            ("adamw", torch.optim.AdamW),
                                            ("rmsprop", torch.optim.RMSprop)])
def test_optimizers(name: str, kind: type) -> None:
    optimizer = build_optimizer(_tiny_model(), name, lr=0.1, weight_decay=1e-4)
    assert isinstance(optimizer, kind)
    if name == "sgd":
        assert optimizer.defaults["nesterov"] is True
    with pytest.raises(ValueError, match="optimizer must be one of"):
        build_optimizer(_tiny_model(), "lamb", lr=0.1, weight_decay=0.0)


def test_warmup_then_cosine() -> None:
    optimizer = build_optimizer(_tiny_model(), "sgd", lr=1.0, weight_decay=0.0)
    scheduler = build_scheduler(optimizer, total_steps=100, warmup_steps=10)
    lrs = []
    for _ in range(100):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(0.1)  # 1/warmup of the peak
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:11], strict=True))  # rising
    assert lrs[10] == pytest.approx(1.0)
    assert lrs[55] == pytest.approx(0.5 * (1 + math.cos(math.pi * 45 / 90)))
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))  # falling
    assert lrs[-1] < 0.001
    # the same schedule after a state_dict round trip
    clone_opt = build_optimizer(_tiny_model(), "sgd", lr=1.0, weight_decay=0.0)
    clone = build_scheduler(clone_opt, total_steps=100, warmup_steps=10)
    clone.load_state_dict(scheduler.state_dict())
    assert clone.last_epoch == scheduler.last_epoch
