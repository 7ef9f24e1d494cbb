"""BatchNorm statistics that fit the weights: the routine, the automatic rule, the trainer's
use of it (exact resume, no RNG leak), and the eval warning with its fix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from data_helpers import make_official
from mobilecnn import create_model
from mobilecnn.cli import main
from mobilecnn.train import TrainConfig, TrainingInterrupted, train
from mobilecnn.train.batchnorm_stats import (
    batchnorm_layers,
    batchnorm_warning,
    calibration_batches,
    recalibrate_batchnorm,
    recalibrate_checkpoint,
    run_needs_recalibration,
)
from mobilecnn.train.checkpoints import load_checkpoint, load_model
from mobilecnn.train.evaluation import evaluate, with_batch_statistics
from mobilecnn.train.signals import TrainHooks

pytestmark = pytest.mark.usefixtures("one_thread")


def test_recalibration_is_the_equal_weight_average_of_batch_statistics() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, momentum=0.01), nn.ReLU(),
                          nn.Dropout(0.5), nn.Flatten())
    model.train()
    batches = [torch.randn(8, 3, 6, 6) * (1 + i) + i for i in range(3)]
    with torch.no_grad():
        features = [model[0](batch) for batch in batches]
    expected_mean = torch.stack([f.mean(dim=(0, 2, 3)) for f in features]).mean(0)
    expected_var = torch.stack([f.transpose(0, 1).reshape(4, -1).var(dim=1)
                                for f in features]).mean(0)
    rng = torch.get_rng_state()
    assert recalibrate_batchnorm(model, batches) == 24
    norm = model[1]
    torch.testing.assert_close(norm.running_mean, expected_mean)
    torch.testing.assert_close(norm.running_var, expected_var)
    assert int(norm.num_batches_tracked) == 3
    # modes, momentum and the global RNG stream are as they were (dropout stayed off)
    assert norm.momentum == 0.01 and model.training and model[3].training
    assert torch.equal(torch.get_rng_state(), rng)
    with pytest.raises(ValueError, match="no batches"):
        recalibrate_batchnorm(model, [])


def test_the_automatic_rule_compares_the_run_with_the_momentum() -> None:
    v3 = create_model("mobilenet_v3_small", num_classes=3, width_mult=0.25)
    v2 = create_model("mobilenet_v2", num_classes=3, width_mult=0.25)
    assert run_needs_recalibration(v3, 9_999) and not run_needs_recalibration(v3, 10_000)
    assert run_needs_recalibration(v2, 999) and not run_needs_recalibration(v2, 1_000)
    assert not run_needs_recalibration(nn.Linear(2, 2), 1)
    with pytest.raises(ValueError, match="recalibrate_bn must be True, False or None"):
        TrainConfig(recalibrate_bn="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bn_calibration_images must be a positive integer"):
        TrainConfig(bn_calibration_images=0)


def test_calibration_batches_draw_without_the_global_rng() -> None:
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 3, 2, 2)
    rng = torch.get_rng_state()
    batches = list(calibration_batches(images, lambda x: x.float(), torch.device("cpu"),
                                       count=7, batch_size=3, seed=1))
    assert torch.equal(torch.get_rng_state(), rng)
    assert [b.shape[0] for b in batches] == [3, 3]  # equal batches; the remainder dropped
    seen = torch.cat([b[:, 0, 0, 0] for b in batches])
    assert seen.unique().numel() == 6  # without replacement
    again = list(calibration_batches(images, lambda x: x.float(), torch.device("cpu"),
                                     count=7, batch_size=3, seed=1))
    assert all(torch.equal(a, b) for a, b in zip(batches, again, strict=True))


@dataclass
class Split:
    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    class_names: list[str]


def colour_split(per_class: int, seed: int) -> Split:
    generator = torch.Generator().manual_seed(seed)
    colours = torch.tensor([[200, 40, 40], [40, 200, 40], [40, 40, 200]])
    labels = torch.arange(3).repeat_interleave(per_class)
    noise = torch.randint(0, 90, (labels.numel(), 3, 16, 16), generator=generator)
    images = (colours[labels].view(-1, 3, 1, 1) * 0.6 + noise).clamp(0, 255).to(torch.uint8)
    return Split(images, labels, ["a", "b", "c"], ["a", "b", "c"])


TRAIN, VAL = colour_split(16, seed=1), colour_split(8, seed=2)


def v3_config(out: Path, **changes: object) -> TrainConfig:
    values: dict = {"data": "in-memory", "out_dir": str(out), "model": "mobilenet_v3_small",
                    "width": 0.25, "epochs": 3, "batch_size": 12, "lr": 0.05,
                    "warmup_epochs": 0.5, "crop": "none", "precision": "fp32", "device": "cpu",
                    "eval_batch_size": 32, "progress": False, "ema": True, "ema_decay": 0.9,
                    "bn_calibration_images": 24}
    values.update(changes)
    return TrainConfig(**values)


def _history(result) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in ("epoch_seconds", "images_per_second")}
            for row in result.history]


def test_recalibrating_leaves_training_unchanged_and_resume_exact(tmp_path: Path) -> None:
    fitted = train(v3_config(tmp_path / "on"), train_split=TRAIN, val_split=VAL)
    stale = train(v3_config(tmp_path / "off", recalibrate_bn=False), train_split=TRAIN,
                  val_split=VAL)
    # the same training steps (dropout's random stream untouched), other evaluations
    assert [r["train_loss"] for r in fitted.history] == [r["train_loss"] for r in stale.history]
    assert [r["val_loss"] for r in fitted.history] != [r["val_loss"] for r in stale.history]
    # what was evaluated is what was saved: the raw model in last.pt, the EMA in best.pt
    model, saved = load_model(tmp_path / "on" / "last.pt")
    metrics = evaluate(model, VAL.images, VAL.labels, mean=saved["mean"], std=saved["std"])
    assert metrics.loss == pytest.approx(fitted.final["val_loss"], rel=1e-5)
    assert int(batchnorm_layers(model)[0].num_batches_tracked) == 2  # 24 images, batches of 12

    config = v3_config(tmp_path / "resumed")
    with pytest.raises(TrainingInterrupted):
        train(config, train_split=TRAIN, val_split=VAL,
              _hooks=TrainHooks(interrupt_after_steps=6))
    resumed = train(config, resume=True, train_split=TRAIN, val_split=VAL)
    assert _history(resumed) == _history(fitted)
    assert resumed.rank_checksums == fitted.rank_checksums
    ema_a = load_checkpoint(tmp_path / "on" / "last.pt")["ema_state"]
    ema_b = load_checkpoint(tmp_path / "resumed" / "last.pt")["ema_state"]
    assert all(torch.equal(ema_a[key], ema_b[key]) for key in ema_a)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_official(tmp_path_factory.mktemp("data"), num_classes=3, train_per_class=16,
                         val_per_class=5, test_images=0, size=16)


@pytest.fixture(scope="module")
def stale_run(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("stale")
    assert main(["train", "--data", str(data_root), "--out", str(out), "--epochs", "2",
                 "--model", "mobilenet_v3_small", "--width", "0.25", "--batch-size", "12",
                 "--crop", "none", "--device", "cpu", "--no-progress", "--precision", "fp32",
                 "--no-recalibrate-bn"]) == 0
    return out


def test_eval_warns_about_stale_statistics_and_recalibrates(
        stale_run: Path, data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    common = ["--data", str(data_root), "--device", "cpu", "--per-class",
              str(tmp_path / "per_class.csv")]
    assert main(["eval", "--checkpoint", str(stale_run / "last.pt"), *common]) == 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "BatchNorm statistics may be stale" in err and "--recalibrate-bn" in err

    fixed = tmp_path / "fixed.pt"
    assert main(["eval", "--checkpoint", str(stale_run / "last.pt"), *common,
                 "--recalibrate-bn", str(fixed)]) == 0
    captured = capsys.readouterr()
    assert "recalibrated BatchNorm statistics" in captured.out and captured.err == ""
    assert load_checkpoint(fixed)["batchnorm_recalibrated"]["images"] == 48
    model, saved = load_model(fixed)
    assert batchnorm_warning(model, saved) is None
    original = load_checkpoint(stale_run / "last.pt")
    assert all(torch.equal(original["model"][k], v) for k, v in saved["model"].items()
               if "running" not in k and "num_batches" not in k)
    with pytest.raises(ValueError, match="another file"):
        recalibrate_checkpoint(fixed, data_root, fixed)


def test_untrained_statistics_are_named(tmp_path: Path) -> None:
    model = create_model("mobilenet_v2", num_classes=3, width_mult=0.25)
    model.eval()
    warning = batchnorm_warning(model, {"global_step": 1000})
    assert warning is not None and "still hold their initial statistics" in warning
    assert "\n" not in warning
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 32, 32))
    model.eval()
    # momentum 0.1 after 1,000 steps: nothing of the initial statistics is left
    assert batchnorm_warning(model, {"global_step": 1000}) is None
    assert "stale" in (batchnorm_warning(model, {"global_step": 10}) or "")


def test_batch_statistics_twin_ignores_the_running_statistics() -> None:
    model = create_model("mobilenet_v3_small", num_classes=3, width_mult=0.25, dropout=0.0)
    model.eval()
    images = torch.randint(0, 255, (8, 3, 32, 32), dtype=torch.uint8)
    twin = with_batch_statistics(model)
    with torch.no_grad():
        for layer in batchnorm_layers(model):
            layer.running_mean.fill_(5.0)
        normalized = images.float() / 255
        model.train()
        expected = model(normalized)
        model.eval()
        twin.eval()
        assert torch.allclose(twin(normalized), expected, atol=1e-5)
        assert not torch.allclose(model(normalized), expected, atol=1e-3)
