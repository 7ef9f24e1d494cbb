"""The size limits: one place, one check, one-line errors that name the argument and the fix."""

from __future__ import annotations

import pytest

from mobilecnn import limits
from mobilecnn.limits import IMAGE_SIZE, INPUT_SIZE, WIDTH, check_size


def test_a_value_within_the_limit_is_returned_unchanged() -> None:
    assert check_size("input_size", 224, INPUT_SIZE) == 224
    assert check_size("width", 10.0, WIDTH) == 10.0
    assert check_size("width", 1, WIDTH) == 1  # an int is a number


def test_too_large_names_the_argument_the_limit_why_and_the_fix() -> None:
    with pytest.raises(ValueError) as caught:
        check_size("--input-size", 100_000, INPUT_SIZE)
    assert str(caught.value) == (
        "--input-size must be at most 1,024 (pixels; larger inputs need gigabytes of "
        "activations), got 100000; use a smaller --input-size")
    with pytest.raises(ValueError, match=r"^width must be at most 10 \(.*\), got 1000000.0; "
                                         r"use a smaller --width$"):
        check_size("width", 1e6, WIDTH, fix="use a smaller --width")


@pytest.mark.parametrize("value", [0, -3, True, 2.0, "64", None, float("nan")])
def test_an_integer_limit_needs_a_positive_integer(value: object) -> None:
    with pytest.raises(ValueError, match="^image_size must be a positive integer, got "):
        check_size("image_size", value, IMAGE_SIZE)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [float("inf"), float("nan"), -1.0, 0.0, False, "1.0"])
def test_a_float_limit_needs_a_finite_positive_number(value: object) -> None:
    with pytest.raises(ValueError, match="^width must be a positive number, got "):
        check_size("width", value, WIDTH)  # type: ignore[arg-type]


def test_each_limit_has_its_constant_and_a_reason() -> None:
    named = {name: getattr(limits, name) for name in limits.__all__
             if isinstance(getattr(limits, name), limits.Limit)}
    assert len(named) >= 8
    for name, limit in named.items():
        assert getattr(limits, f"MAX_{name}") == limit.maximum
        assert limit.why
