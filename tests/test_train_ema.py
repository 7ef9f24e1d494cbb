"""ModelEma: the average, the warmup of the decay, buffers and exact state round trips."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mobilecnn.train import ModelEma, ema_decay_at


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(64, 2))


def test_decay_warmup() -> None:
    assert ema_decay_at(0, 0.999) == 0.0  # the first update copies the model
    values = [ema_decay_at(step, 0.999) for step in range(0, 100_000, 1000)]
    assert values == sorted(values) and values[-1] == 0.999
    assert ema_decay_at(10, 0.999, warmup=False) == 0.999
    assert ema_decay_at(3, 0.999, warmup_power=0.75) == pytest.approx(1 - 4**-0.75)


def test_average_of_weights_and_buffers() -> None:
    model = small_model()
    model(torch.randn(2, 3, 6, 6))
    ema = ModelEma(model, decay=0.5, warmup=False)
    before = {k: v.clone() for k, v in ema.module.state_dict().items()}
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)
    model.train()
    model(torch.randn(4, 3, 6, 6))  # moves the BatchNorm statistics
    ema.update(model)
    now = model.state_dict()
    for key, value in ema.module.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(value, 0.5 * before[key] + 0.5 * now[key])
        else:
            assert torch.equal(value, now[key])  # num_batches_tracked is copied
    assert ema.updates == 1 and not ema.module.training
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_state_round_trip_is_exact() -> None:
    model = small_model()
    model(torch.randn(2, 3, 6, 6))
    ema = ModelEma(model, decay=0.9)
    for _ in range(3):
        with torch.no_grad():
            model[0].weight.mul_(1.1)
        ema.update(model)
    state = ema.state_dict()
    restored = ModelEma(small_model().requires_grad_(True), decay=0.1)
    restored.module(torch.randn(2, 3, 6, 6))
    restored.load_state_dict(state)
    assert restored.updates == 3 and restored.decay == 0.9
    for (_, a), (_, b) in zip(restored.module.state_dict().items(),
                              ema.module.state_dict().items(), strict=True):
        assert torch.equal(a, b)
    ema.update(model)
    restored.update(model)
    assert torch.equal(ema.module[0].weight, restored.module[0].weight)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="decay"):
        ModelEma(small_model(), decay=1.0)
    ema = ModelEma(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="unwrapped"):
        ema.update(nn.Sequential(nn.Linear(2, 2)))
