"""Faults around training runs: concurrent runs, old files in the run folder, NaN training,
resume with changed options, 0.1.0 checkpoints, and the CLI error boundary."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import fault_helpers
from data_helpers import make_split, tiny_config
from fault_helpers import (
    TINY,
    assert_unchanged,
    copy_run,
    fails,
    snapshot_bytes,
)
from mobilecnn.cli import expected_error_message, main
from mobilecnn.fileio import FolderLockedError, lock_folder
from mobilecnn.train import TrainingDiverged, load_checkpoint, train
from mobilecnn.train.metrics import strict_json
from mobilecnn.train.signals import TrainHooks

pytestmark = pytest.mark.usefixtures("one_thread")

# the fault suite's module-scoped fixtures: tiny data with its caches, a finished 1-epoch run
data_root, finished_run = fault_helpers.data_root, fault_helpers.finished_run


def strict_rows(path: Path) -> list[dict]:
    def no_constants(name: str) -> None:
        raise AssertionError(f"{path} holds the non-JSON constant {name}")

    return [json.loads(line, parse_constant=no_constants)
            for line in path.read_text().splitlines()]


# ---------------------------------------------------------------- one run per folder

def test_a_second_run_on_the_same_folder_is_refused_naming_the_holder(
    data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         "fd = os.open(sys.argv[1], os.O_RDONLY); fcntl.flock(fd, fcntl.LOCK_EX)\n"
         "print('locked', flush=True); time.sleep(120)", str(out)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        line = fails(["train", "--data", str(data_root), "--out", str(out), *TINY], capsys)
        assert f"'{out}' is in use by process {holder.pid}" in line
        assert list(out.iterdir()) == []
        holder.send_signal(signal.SIGKILL)  # the kernel drops the lock with the process
        holder.wait()
        with lock_folder(out, "run folder"), pytest.raises(
                FolderLockedError, match=f"in use by process {os.getpid()}"), lock_folder(out):
            pass  # pragma: no cover
    finally:
        holder.kill()
        holder.wait()



def test_the_lock_removes_only_the_empty_folders_it_created(tmp_path: Path) -> None:
    """A run refused before writing leaves no folder; a folder with anything in it stays."""
    with pytest.raises(ValueError, match="refused"), lock_folder(tmp_path / "a" / "b"):
        raise ValueError("refused")
    assert list(tmp_path.iterdir()) == []
    with lock_folder(tmp_path / "c" / "d") as folder:
        (folder / "last.pt").write_bytes(b"x")
    assert (tmp_path / "c" / "d" / "last.pt").read_bytes() == b"x"
    (tmp_path / "e").mkdir()
    with lock_folder(tmp_path / "e"):
        pass
    assert (tmp_path / "e").is_dir()  # it existed before: never removed

def test_a_new_run_never_overwrites_a_lone_best_checkpoint(
    finished_run: Path, data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "old"
    out.mkdir()
    (out / "best.pt").write_bytes((finished_run / "best.pt").read_bytes())
    before = snapshot_bytes(out)
    line = fails(["train", "--data", str(data_root), "--out", str(out), *TINY], capsys)
    assert "best.pt but no last.pt" in line and "move best.pt away" in line
    assert_unchanged(before, out)


# ---------------------------------------------------------------- NaN / inf

def test_a_diverging_run_stops_and_keeps_the_good_checkpoints(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    run = copy_run(finished_run, tmp_path / "run")
    before = snapshot_bytes(run)
    line = fails(["train", "--out", str(run), "--resume", "--epochs", "3", "--lr", "1e30",
                  "--no-progress"], capsys)
    assert line.startswith("mobilecnn: error: training diverged: the loss became NaN or "
                           "infinite in epoch 2")
    assert f"the last good checkpoint {run / 'last.pt'} is unchanged" in line
    assert "--skip-nonfinite" in line
    assert_unchanged(before, run)
    strict_rows(run / "metrics.jsonl")


def test_skip_nonfinite_skips_just_the_bad_step(tmp_path: Path) -> None:
    train_split, val_split = make_split(16, seed=1), make_split(4, seed=2)

    def nan_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return logits.sum() * float("nan")

    swapped: dict = {}

    def poison_step_three(global_step: int, step: object) -> None:
        if global_step == 2:  # the next step (3) gets a NaN loss
            swapped["criterion"] = step.criterion  # type: ignore[attr-defined]
            step.criterion = nan_loss  # type: ignore[attr-defined]
        elif global_step == 3:
            step.criterion = swapped["criterion"]  # type: ignore[attr-defined]

    hooks = TrainHooks(after_step=poison_step_three)
    with pytest.raises(TrainingDiverged, match="epoch 1"):
        train(tiny_config(tmp_path / "stop", epochs=2), train_split=train_split,
              val_split=val_split, _hooks=hooks)
    assert not (tmp_path / "stop" / "last.pt").exists()
    result = train(tiny_config(tmp_path / "skip", epochs=2, skip_nonfinite=True),
                   train_split=train_split, val_split=val_split, _hooks=hooks)
    rows = strict_rows(tmp_path / "skip" / "metrics.jsonl")
    assert [row["skipped_steps"] for row in rows] == [1, 0]
    assert all(torch.isfinite(torch.tensor(row["train_loss"])) for row in rows)
    assert result.history == rows
    assert strict_json({"a": float("nan"), "b": [float("inf")]}) == '{"a": null, "b": [null]}'


# ---------------------------------------------------------------- resume with changes

def test_resume_applies_and_records_changes_or_refuses_them(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    run = copy_run(finished_run, tmp_path / "run")
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--resume", "--epochs", "3", "--lr", "0.02",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "applying changed options: epochs 1 -> 3, lr 0.05 -> 0.02" in printed
    assert "schedule re-planned: 12 steps, continuing at step 4" in printed
    saved = load_checkpoint(run / "last.pt")
    assert saved["resumes"] == [{"global_step": 4, "changed": {"epochs": [1, 3],
                                                               "lr": [0.05, 0.02]}}]
    assert saved["schedule"]["total_steps"] == 12 and saved["schedule"]["peak_lr"] == 0.02
    assert json.loads((run / "config.json").read_text())["lr"] == 0.02
    rows = strict_rows(run / "metrics.jsonl")
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    assert rows[-1]["lr"] == pytest.approx(0.0, abs=1e-12)  # the new plan ends at zero
    # lr after epoch 2 (step 8 of 12, warmup round(3 x 4) capped at 11 steps: still warming up)
    assert rows[1]["lr"] == pytest.approx(0.02 * (1 + 10 * 8 / 11) / 11)
    before = snapshot_bytes(run)
    line = fails(["train", "--out", str(run), "--resume", "--batch-size", "6"], capsys)
    assert "was trained with batch_size=12, this run has batch_size=6" in line
    line = fails(["train", "--out", str(run), "--resume", "--epochs", "2"], capsys)
    assert "has already trained 12 steps (epoch 3); --epochs must be at least 3" in line
    line = fails(["train", "--out", str(run), "--resume", "--width", "0.5"], capsys)
    assert "use the same model options" in line
    assert_unchanged(before, run)


def test_a_0_1_checkpoint_still_resumes_evaluates_and_predicts(
    finished_run: Path, data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    run = copy_run(finished_run, tmp_path / "old")
    for name in ("last.pt", "best.pt"):  # rewrite as mobilecnn 0.1.0 wrote it
        values = torch.load(run / name, weights_only=True)
        for key in ("global_step", "schedule", "resumes", "ema_state", "tensor_crc32"):
            del values[key]
        values["mobilecnn_version"] = "0.1.0"
        values["partial_train"] = values["partial_train"][:3]
        config = values["config"]
        for key in ("skip_bad", "image_size", "skip_nonfinite"):
            del config[key]
        config["interrupt_after_steps"] = None
        torch.save(values, run / name)
    assert main(["eval", "--checkpoint", str(run / "best.pt"), "--data", str(data_root),
                 "--device", "cpu"]) == 0
    image = next((data_root / "val" / "images").iterdir())
    assert main(["predict", "--checkpoint", str(run / "best.pt"), str(image)]) == 0
    exported = tmp_path / "model.torchscript"
    assert main(["export", str(run / "best.pt"), "--format", "torchscript", "--out",
                 str(exported)]) == 0
    assert exported.read_bytes()[:2] == b"PK"  # a TorchScript zip archive
    assert "input 3x16x16" in capsys.readouterr().out  # the recorded training image size
    assert main(["train", "--out", str(run), "--resume", "--epochs", "2", "--no-progress"]) == 0
    assert "schedule re-planned: 8 steps, continuing at step 4" in capsys.readouterr().out
    assert load_checkpoint(run / "last.pt")["epoch"] == 2


# ---------------------------------------------------------------- the CLI error boundary

@pytest.mark.parametrize(("argv", "message"), [
    (["summary", "mobilenet_v2", "--input-size", "100000"],
     "expected a positive integer at most 1,024"),
    (["summary", "mobilenet_v2", "--width", "inf"], "expected a positive number, got 'inf'"),
    (["train", "--data", "demo", "--width", "inf"], "width must be a positive number (finite)"),
    (["train", "--data", "demo", "--width", "1e6"], "width must be at most 10"),
    (["train", "--data", "demo", "--epochs", "nan"], "expected an integer, got 'nan'"),
    (["prepare", "--data", ".", "--image-size", "100000"], "at most 4,096"),
])
def test_absurd_values_are_refused_up_front(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert message in fails(argv, capsys)


def test_expected_errors_are_one_line_and_bugs_keep_their_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def overflow(*args: object, **kwargs: object) -> None:
        raise OverflowError("cannot convert float infinity to integer")

    monkeypatch.setattr("mobilecnn.models.create_model", overflow)
    assert fails(["summary", "mobilenet_v2"], capsys) == (
        "mobilecnn: error: a number is too large: cannot convert float infinity to integer")
    monkeypatch.setenv("MOBILECNN_DEBUG", "1")
    assert main(["summary", "mobilenet_v2"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().endswith("to integer")

    def bug(*args: object, **kwargs: object) -> None:
        raise KeyError("a bug")

    monkeypatch.delenv("MOBILECNN_DEBUG")
    monkeypatch.setattr("mobilecnn.models.create_model", bug)
    with pytest.raises(KeyError, match="a bug"):  # not hidden: python prints the traceback
        main(["summary", "mobilenet_v2"])


@pytest.mark.parametrize(("error", "message"), [
    (MemoryError(), "out of memory; use a smaller --batch-size, input size or model"),
    (ImportError('ONNX export needs onnx: pip install "mobilecnn[onnx]"'),
     'ONNX export needs onnx: pip install "mobilecnn[onnx]"'),
    (OSError(5, "Input/output error", "runs/v2/last.pt"),
     "runs/v2/last.pt: an input/output error: the disk or network file system failed"),
    (FolderLockedError("runs/v2", 42, "run folder"),
     "run folder 'runs/v2' is in use by process 42 (another mobilecnn run); wait for it to "
     "finish or choose another folder"),
    (ValueError("a message\nover two lines"), "a message over two lines"),
    (ImportError("cannot import name 'x'"), None),  # a broken install or a bug: traceback
    (RuntimeError("boom"), None),
])
def test_which_errors_are_expected_and_how_they_read(error: BaseException,
                                                      message: str | None) -> None:
    assert expected_error_message(error) == message
