"""param_count, mac_count, summary and the conv comparison."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mobilecnn import MobileNetV2, conv_comparison, mac_count, param_count, summary


def test_param_count_standard_conv() -> None:
    assert param_count(nn.Conv2d(128, 256, 3, bias=False)) == 294_912
    assert param_count(nn.Conv2d(128, 256, 3)) == 294_912 + 256


def test_param_count_trainable_only() -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    model[0].requires_grad_(False)
    assert param_count(model) == (4 * 3 + 3) + (3 * 2 + 2)
    assert param_count(model, trainable_only=True) == 3 * 2 + 2


def test_mac_count_counts_grouped_convs_by_their_fan_in() -> None:
    depthwise = nn.Conv2d(32, 32, 3, padding=1, groups=32, bias=False)
    pointwise = nn.Conv2d(32, 64, 1, bias=False)
    grouped = nn.Conv2d(32, 64, 3, padding=1, groups=4, bias=False)
    assert mac_count(depthwise, (32, 10, 10)) == 10 * 10 * 32 * 9
    assert mac_count(pointwise, (32, 10, 10)) == 10 * 10 * 64 * 32
    assert mac_count(grouped, (32, 10, 10)) == 10 * 10 * 64 * (32 // 4) * 9


def test_mac_count_strided_conv_and_linear() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.Flatten(), nn.Linear(8 * 16 * 16, 10)
    )
    assert mac_count(model, (3, 32, 32)) == 16 * 16 * 8 * 3 * 9 + 8 * 16 * 16 * 10


def test_mac_count_accepts_int_and_pairs() -> None:
    model = MobileNetV2(width_mult=0.35, num_classes=10)
    assert mac_count(model, 64) == mac_count(model, (64, 64)) == mac_count(model, (3, 64, 64))
    assert mac_count(model, (64, 128)) > mac_count(model, 64)


@pytest.mark.parametrize("bad", [0, -1, (3, 0, 4), (1, 2, 3, 4), "64"])
def test_bad_input_size(bad: object) -> None:
    with pytest.raises(ValueError, match="input_size"):
        mac_count(nn.Conv2d(3, 3, 1), bad)  # type: ignore[arg-type]


def test_summary_rows_and_totals() -> None:
    model = MobileNetV2(width_mult=0.35, num_classes=10)
    model.train()
    result = summary(model, 64)
    assert model.training, "summary must restore the training mode"
    assert result.total_params == param_count(model)
    assert result.total_macs == sum(layer.macs for layer in result.layers) == mac_count(model, 64)
    assert sum(layer.params for layer in result.layers) == result.total_params
    first, last = result.layers[0], result.layers[-1]
    assert (first.name, first.layer_type, first.output_shape) == ("features.0.conv", "Conv2d",
                                                                  (1, 16, 32, 32))
    assert (last.name, last.output_shape) == ("classifier.1", (1, 10))
    table = str(result)
    assert "features.17.project.conv" in table
    assert f"Total params:      {result.total_params:,}" in table
    assert "Output shape" in table and "MACs" in table


def test_summary_uses_the_model_device_and_dtype() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3)).to(torch.float64)
    result = summary(model, 8)
    assert result.layers[0].output_shape == (1, 4, 6, 6)


def test_conv_comparison_reproduces_the_classic_numbers() -> None:
    comparison = conv_comparison(128, 256, 3)
    assert comparison.standard_params == 294_912
    assert comparison.separable_params == 33_920
    assert comparison.standard_macs_per_pixel == 294_912
    assert comparison.separable_macs_per_pixel == 33_920
    assert comparison.ratio == pytest.approx(8.69, abs=0.005)
    assert comparison.theoretical_cost == pytest.approx(1 / 256 + 1 / 9)
    # the measured ratio is exactly the inverse of the paper's cost formula
    assert comparison.ratio == pytest.approx(1 / comparison.theoretical_cost)
    text = str(comparison)
    assert "294,912" in text and "33,920" in text and "8.69x" in text


def test_conv_comparison_rejects_bad_numbers() -> None:
    with pytest.raises(ValueError, match="kernel_size must be a positive integer, got 0"):
        conv_comparison(8, 8, 0)
