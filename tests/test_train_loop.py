"""The training loop on tiny in-memory data: files, metrics, resume equivalence, precision."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from data_helpers import VAL, tiny_config, without_timing
from data_helpers import train_on_splits as run
from mobilecnn.train import TrainingInterrupted, autocast_dtype, evaluate
from mobilecnn.train.checkpoints import CheckpointError, load_checkpoint, load_model
from mobilecnn.train.metrics import read_metrics
from mobilecnn.train.signals import TrainHooks


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread (before the module-scoped reference run: bit-identical results
    need the same thread count); tiny models on a shared 2-core machine run faster so."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory):
    """One uninterrupted 3-epoch run."""
    return run(tiny_config(tmp_path_factory.mktemp("reference")))


def test_a_run_writes_checkpoints_metrics_and_plots(reference) -> None:
    out = reference.out_dir
    assert len(reference.history) == 3
    assert [row["epoch"] for row in read_metrics(out / "metrics.jsonl")] == [1, 2, 3]
    for name in ("last.pt", "best.pt", "loss.png", "accuracy.png", "config.json",
                 "val_per_class.csv", "result.json"):
        assert (out / name).is_file(), name
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    last = load_checkpoint(out / "last.pt")
    assert last["epoch"] == 3 and last["step_in_epoch"] == 0
    assert last["class_names"] == VAL.class_names
    assert {"optimizer", "scheduler", "rng", "config", "mobilecnn_version"} <= set(last)
    best = load_checkpoint(out / "best.pt")
    best_row = max(reference.history, key=lambda row: row["val_top1"])
    assert best["epoch"] == best_row["epoch"]
    final = reference.final
    assert 0 <= final["val_top1"] <= final["val_top5"] <= 1
    assert all(torch.isfinite(torch.tensor(row["train_loss"])) for row in reference.history)
    assert final["lr"] < 1e-3  # cosine went (almost) to zero at the end
    # the checkpoint's model reproduces the logged val accuracy over the whole split
    model, checkpoint = load_model(out / "last.pt")
    metrics = evaluate(model, VAL.images, VAL.labels, mean=checkpoint["mean"],
                       std=checkpoint["std"])
    assert metrics.count == len(VAL.labels)
    assert metrics.top1_acc == pytest.approx(final["val_top1"])
    assert metrics.loss == pytest.approx(final["val_loss"], rel=1e-5)


def test_same_seed_same_run_bit_for_bit(reference, tmp_path: Path) -> None:
    again = run(tiny_config(tmp_path / "again"))
    assert without_timing(again.history) == without_timing(reference.history)
    assert again.rank_checksums == reference.rank_checksums


def test_interrupted_and_resumed_ends_identically(reference, tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "run")  # 4 steps per epoch
    with pytest.raises(TrainingInterrupted) as stopped:
        run(config, _hooks=TrainHooks(interrupt_after_steps=6))
    assert stopped.value.epoch == 1 and stopped.value.step == 2
    saved = load_checkpoint(tmp_path / "run" / "last.pt")
    assert saved["epoch"] == 1 and saved["step_in_epoch"] == 2
    assert len(read_metrics(tmp_path / "run" / "metrics.jsonl")) == 1
    # what a SIGKILL in epoch 2 leaves: only the end-of-epoch-1 checkpoint (best.pt holds it)
    killed = tmp_path / "killed"
    shutil.copytree(tmp_path / "run", killed)
    shutil.copy(killed / "best.pt", killed / "last.pt")
    assert load_checkpoint(killed / "last.pt")["step_in_epoch"] == 0

    resumed = run(config, resume=True)
    assert without_timing(resumed.history) == without_timing(reference.history)
    assert resumed.rank_checksums == reference.rank_checksums
    assert len(read_metrics(tmp_path / "run" / "metrics.jsonl")) == 3

    resumed = run(config.replace(out_dir=str(killed)), resume="last")
    assert without_timing(resumed.history) == without_timing(reference.history)
    assert resumed.rank_checksums == reference.rank_checksums


def test_a_fresh_run_never_overwrites_an_existing_one(reference, tmp_path: Path) -> None:
    before = (reference.out_dir / "last.pt").read_bytes()
    with pytest.raises(ValueError, match="already holds a run.*--resume"):
        run(tiny_config(reference.out_dir))
    assert (reference.out_dir / "last.pt").read_bytes() == before


def test_bad_or_incompatible_resume_checkpoints_are_refused(reference, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    broken = out / "last.pt"
    good = (reference.out_dir / "last.pt").read_bytes()
    broken.write_bytes(good[: len(good) // 3])
    with pytest.raises(CheckpointError, match=r"last\.pt: cannot be read"):
        run(tiny_config(out), resume=True)
    assert broken.read_bytes() == good[: len(good) // 3]  # left as it was
    with pytest.raises(CheckpointError, match="width_mult.*same model options"):
        run(tiny_config(tmp_path / "other", width=0.5), resume=reference.out_dir / "last.pt")
    with pytest.raises(CheckpointError, match="batch_size=12.*batch_size=6"):
        run(tiny_config(tmp_path / "other", batch_size=6), resume=reference.out_dir / "last.pt")
    assert not (tmp_path / "other" / "last.pt").exists()


def test_gradient_clipping_and_adamw_run(tmp_path: Path) -> None:
    result = run(tiny_config(tmp_path / "clip", epochs=1, grad_clip=0.5, optimizer="adamw"))
    assert result.history[0]["train_loss"] > 0


def test_precision_choices() -> None:
    cpu = torch.device("cpu")
    assert autocast_dtype("fp32", cpu) is None
    assert autocast_dtype("bf16", cpu) is torch.bfloat16
    assert autocast_dtype("auto", cpu) in (None, torch.bfloat16)
    with pytest.raises(ValueError, match="fp16 autocast is for GPUs"):
        autocast_dtype("fp16", cpu)


def test_bf16_training_step_runs_and_learns(tmp_path: Path) -> None:
    result = run(tiny_config(tmp_path / "bf16", epochs=2, precision="bf16"))
    assert result.final["train_loss"] < result.history[0]["train_loss"] * 1.5
    payload = json.loads((tmp_path / "bf16" / "result.json").read_text())
    assert payload["final"]["val_top1"] == result.final["val_top1"]


def test_cuda_training_with_amp_and_scaler(device: torch.device, tmp_path: Path) -> None:
    result = run(tiny_config(tmp_path / "dev", epochs=1, device=str(device), precision="auto"))
    checkpoint = load_checkpoint(tmp_path / "dev" / "last.pt")
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        assert checkpoint["scaler"] is not None  # fp16 needs the scaler, and it is saved
    assert result.history[0]["val_top1"] >= 0
