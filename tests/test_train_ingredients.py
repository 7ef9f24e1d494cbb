"""The ingredients inside the training loop: EMA, Mixup/CutMix, RandAugment, distillation,
--init and recipes; exact resume with them; bad input refused before anything is written."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import torch

from data_helpers import make_split, without_timing
from data_helpers import tiny_config as shared_tiny_config
from data_helpers import train_on_splits as run
from mobilecnn.train import (
    TrainingInterrupted,
    get_recipe,
    load_checkpoint,
    recipe_config,
    train,
)
from mobilecnn.train.checkpoints import Checkpoint
from mobilecnn.train.metrics import read_metrics
from mobilecnn.train.signals import TrainHooks

STRONG = {"ema": True, "ema_decay": 0.9, "mixup_alpha": 0.2, "cutmix_alpha": 1.0,
          "auto_augment": "randaugment", "random_erasing": 0.25}


pytestmark = pytest.mark.usefixtures("one_thread")


# the shared tiny config, with padded random crops
tiny_config = functools.partial(shared_tiny_config, crop="pad")


@pytest.fixture(scope="module")
def strong(tmp_path_factory: pytest.TempPathFactory):
    """One uninterrupted run with EMA + Mixup/CutMix + RandAugment + random erasing."""
    return run(tiny_config(tmp_path_factory.mktemp("strong"), **STRONG))


def test_ema_is_evaluated_saved_and_chosen_for_best(strong) -> None:
    rows = read_metrics(strong.out_dir / "metrics.jsonl")
    assert all({"ema_val_top1", "ema_val_loss", "ema_val_top5"} <= set(row) for row in rows)
    assert any(row["ema_val_loss"] != row["val_loss"] for row in rows)
    last = Checkpoint.read(strong.out_dir / "last.pt")
    assert last.ema_state is not None
    assert any(not torch.equal(last.model[k], last.ema_state[k]) for k in last.model)
    best = Checkpoint.read(strong.out_dir / "best.pt")
    best_row = max(rows, key=lambda row: row["ema_val_top1"])
    assert best.epoch == best_row["epoch"]
    assert best.ema_state is not None
    assert all(torch.equal(best.model[k], best.ema_state[k]) for k in best.model)
    assert strong.best_val_top1 == best_row["ema_val_top1"]


@pytest.mark.slow
def test_resume_with_ema_mixup_randaugment_is_exact(strong, tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "run", **STRONG)
    with pytest.raises(TrainingInterrupted):
        run(config, _hooks=TrainHooks(interrupt_after_steps=6))  # in epoch 2
    assert load_checkpoint(tmp_path / "run" / "last.pt")["step_in_epoch"] == 2
    resumed = run(config, resume=True)
    assert without_timing(resumed.history) == without_timing(strong.history)
    assert resumed.rank_checksums == strong.rank_checksums
    ours = Checkpoint.read(tmp_path / "run" / "last.pt").ema_state
    reference = Checkpoint.read(strong.out_dir / "last.pt").ema_state
    assert ours is not None and reference is not None
    assert all(torch.equal(ours[k], reference[k]) for k in reference)


def test_distillation_from_a_checkpoint_and_bad_teachers(strong, tmp_path: Path) -> None:
    teacher = str(strong.out_dir / "last.pt")
    result = run(tiny_config(tmp_path / "student", epochs=1, teacher=teacher,
                             distill_alpha=0.7))
    assert len(result.history) == 1 and result.final["train_loss"] > 0
    wrong = make_split(4, seed=3, num_classes=2)
    with pytest.raises(ValueError, match="predicts 3 classes, the data has 2"):
        train(tiny_config(tmp_path / "wrong", teacher=teacher, batch_size=4),
              train_split=wrong, val_split=wrong)
    assert not (tmp_path / "wrong").exists()


def test_init_from_a_checkpoint_and_from_a_wrong_file(strong, tmp_path: Path) -> None:
    result = run(tiny_config(tmp_path / "fine", epochs=1, init=str(strong.out_dir / "last.pt"),
                             layer_lr_decay=0.5, freeze_backbone=True))
    state = Checkpoint.read(tmp_path / "fine" / "last.pt")
    source = Checkpoint.read(strong.out_dir / "last.pt")
    assert torch.equal(state.model["features.0.conv.weight"],
                       source.model["features.0.conv.weight"])  # frozen: unchanged
    assert not torch.equal(state.model["classifier.1.weight"],
                           source.model["classifier.1.weight"])
    assert result.history
    bogus = tmp_path / "bogus.pth"
    torch.save({"conv.weight": torch.zeros(3, 3, 3, 3)}, bogus)
    with pytest.raises(ValueError, match="does not fit mobilenet_v2") as caught:
        run(tiny_config(tmp_path / "bad", init=f"torchvision:{bogus}"))
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "bad").exists()


def test_layerwise_lr_is_kept_through_the_schedule(tmp_path: Path) -> None:
    result = run(tiny_config(tmp_path / "lw", epochs=1, layer_lr_decay=0.5))
    optimizer = load_checkpoint(tmp_path / "lw" / "last.pt")["optimizer"]
    scales = sorted({group["lr_scale"] for group in optimizer["param_groups"]})
    assert scales[0] < 0.01 and scales[-1] == 1.0
    assert result.history


def test_recipe_config_and_overrides(tmp_path: Path) -> None:
    config = recipe_config("tinyimagenet", epochs=5)
    assert config.recipe == "tinyimagenet" and config.epochs == 5
    assert config.ema and config.cutmix_alpha == get_recipe("tinyimagenet").settings[
        "cutmix_alpha"]
    with pytest.raises(ValueError, match="known recipes"):
        recipe_config("bogus")


def test_cli_print_config_and_one_line_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mobilecnn.cli import main

    monkeypatch.chdir(tmp_path)

    def cli(*args: str) -> tuple[int, str, str]:
        try:
            code = main(["train", *args])
        except SystemExit as exit_:
            code = int(exit_.code or 0)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    code, out, err = cli("--recipe", "tinyimagenet-strong", "--random-erasing", "0.3",
                         "--print-config")
    assert code == 0, err
    values = json.loads(out)
    assert values["auto_augment"] == "trivialaugment" and values["random_erasing"] == 0.3
    assert values["recipe"] == "tinyimagenet-strong" and values["epochs"] == 200
    code, _, err = cli("--recipe", "imagenet", "--print-config")
    assert code == 2 and "known recipes: tinyimagenet" in err
    code, _, err = cli("--data", "demo", "--recipe", "finetune")
    assert code == 2 and "add --init" in err
    code, _, err = cli("--mixup-alpha", "-1", "--print-config")
    assert code == 2 and "mixup_alpha must be a number >= 0" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow  # quantizes with ONNX Runtime
def test_qat_fine_tuning_writes_an_int8_model(strong, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime", reason="--qat writes an ONNX Runtime int8 model")
    from mobilecnn.deploy import load_runtime_model

    config = tiny_config(tmp_path / "qat", epochs=1, lr=0.005, qat=True,
                         init=str(strong.out_dir / "last.pt"))
    result = run(config)
    path = tmp_path / "qat" / "model_int8.onnx"
    quantized = load_runtime_model(path)
    logits = quantized(torch.randn(2, 3, 16, 16))
    assert logits.shape == (2, 3) and result.history
