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


def test_a_recipe_scales_ema_and_warmup_to_the_run_and_says_so() -> None:
    from mobilecnn.train.recipes import fit_to_run

    recipe = get_recipe("tinyimagenet")  # 100 epochs x 390 steps, EMA 0.9995 (2,000 steps)
    assert recipe.design_steps == 39_000
    fit = fit_to_run(recipe, epochs=10, batch_size=64, train_images=3_000, warmup_epochs=3.0,
                     ema_decay=0.9995)
    window = 2_000 / 39_000 * 10 * (3_000 // 64)  # the same share of the run's 460 steps
    assert fit.changes["ema_decay"] == pytest.approx(1 - 1 / window, abs=1e-5)
    assert fit.changes["warmup_epochs"] == pytest.approx(0.3)
    assert fit.note is not None and "\n" not in fit.note
    assert "designed for 100 epochs on 100,000 images" in fit.note and "10 epochs" in fit.note
    # what was given stays; the designed run changes nothing and says nothing
    given = fit_to_run(recipe, epochs=10, batch_size=64, train_images=3_000,
                       warmup_epochs=3.0, ema_decay=0.9995,
                       given=frozenset({"ema_decay", "warmup_epochs"}))
    assert dict(given.changes) == {}
    designed = fit_to_run(recipe, epochs=100, batch_size=256, train_images=100_000,
                          warmup_epochs=3.0, ema_decay=0.9995)
    assert dict(designed.changes) == {} and designed.note is None
    tiny = fit_to_run(recipe, epochs=1, batch_size=64, train_images=64, warmup_epochs=3.0,
                      ema_decay=0.9995)
    assert tiny.changes["ema_decay"] == 0.9  # never a shorter average than 10 steps


def test_recipe_config_and_print_config_show_the_scaled_values(
        capsys: pytest.CaptureFixture) -> None:
    from mobilecnn.cli import main
    from mobilecnn.train import recipe_config

    with pytest.warns(UserWarning, match="designed for 200 epochs"):
        config = recipe_config("tinyimagenet-strong", data="demo", epochs=10, batch_size=64)
    assert config.ema_decay == pytest.approx(0.96609) and config.warmup_epochs == 0.15
    kept = recipe_config("tinyimagenet", data="demo", epochs=10, ema_decay=0.99,
                         train_images=100_000)
    assert kept.ema_decay == 0.99 and kept.warmup_epochs == 0.3

    assert main(["train", "--data", "demo", "--recipe", "tinyimagenet-strong", "--epochs", "10",
                 "--print-config"]) == 0
    captured = capsys.readouterr()
    assert '"ema_decay": 0.96609' in captured.out and '"warmup_epochs": 0.15' in captured.out
    assert len(captured.err.strip().splitlines()) == 1 and "note: recipe" in captured.err
    assert main(["train", "--recipe", "tinyimagenet", "--print-config"]) == 0
    captured = capsys.readouterr()  # without --data: the designed data, the designed run
    assert '"ema_decay": 0.9995' in captured.out and captured.err == ""
