"""Named recipes: data with rationale and sources; unknown names are a one-line error."""

from __future__ import annotations

import dataclasses

import pytest

from mobilecnn.train import RECIPES, get_recipe


def test_the_named_recipes_exist_with_reasons_and_sources() -> None:
    assert set(RECIPES) == {"tinyimagenet", "tinyimagenet-strong", "finetune"}
    for name, recipe in RECIPES.items():
        assert recipe.name == name and get_recipe(name) is recipe
        assert recipe.rationale and recipe.aims and recipe.sources and recipe.settings
    assert RECIPES["tinyimagenet"].settings["ema"] is True


def test_unknown_recipe() -> None:
    with pytest.raises(ValueError, match="known recipes: tinyimagenet, tinyimagenet-strong, "
                                         "finetune") as caught:
        get_recipe("imagenet")
    assert "\n" not in str(caught.value)


def test_recipes_are_read_only() -> None:
    recipe = get_recipe("finetune")
    with pytest.raises(TypeError):
        recipe.settings["epochs"] = 1  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.name = "x"  # type: ignore[misc]
