"""Faults around run folders and resuming: whose folder a run writes into, copies and moves of a
run, resuming into another run's folder, printed paths, and error advice that must lead to a
correct run when followed literally."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import pytest
import torch

import fault_helpers
from data_helpers import make_official
from fault_helpers import TINY, assert_unchanged, copy_run, fails, make_run, snapshot_bytes
from mobilecnn.cli import main
from mobilecnn.train import Checkpoint, TrainConfig, TrainingInterrupted, load_checkpoint, train
from mobilecnn.train.metrics import read_metrics
from mobilecnn.train.run_folder import check_fresh_folder, is_run_config
from mobilecnn.train.signals import TrainHooks

pytestmark = pytest.mark.usefixtures("one_thread")

# the fault suite's module-scoped fixtures: tiny data with its caches, a finished 1-epoch run
data_root, finished_run = fault_helpers.data_root, fault_helpers.finished_run
QUIET = ["--no-progress"]


def printed_paths(out: str) -> list[Path]:
    """The files a finished ``train`` command says it wrote."""
    paths: list[Path] = []
    for line in out.splitlines():
        label, _, rest = line.partition(":")
        if label in ("checkpoints", "metrics", "plots"):
            for item in rest.split(","):
                paths.append(Path(item.strip().removesuffix(" (last)").removesuffix(" (best)")))
    return paths


def inodes(folder: Path) -> dict[str, int]:
    """``name -> inode`` of the files in ``folder`` (an atomic write gives a file a new one)."""
    return {path.name: path.stat().st_ino for path in folder.iterdir()}


def assert_printed_were_written(out: str, before: dict[str, int], folder: Path) -> None:
    """Every path the command printed lies in ``folder`` and was written by the command (or is
    the run's best checkpoint, which is written only when validation improves)."""
    paths = printed_paths(out)
    assert paths, out
    for path in paths:
        assert path.parent == folder and path.is_file(), path
        if path.name != "best.pt":
            assert path.stat().st_ino != before.get(path.name), f"{path}: printed, not written"


# ---------------------------------------------------------------- a fresh run

def test_a_fresh_run_refuses_a_folder_of_files_it_would_overwrite(
    data_root: Path, finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    mine = tmp_path / "myproject"
    mine.mkdir()
    (mine / "config.json").write_text('{"name": "my project"}\n')
    (mine / "loss.png").write_bytes(b"my own plot")
    (mine / "accuracy.png").write_bytes(b"my other plot")
    (mine / "notes.txt").write_text("keep me")
    before = snapshot_bytes(mine)
    line = fails(["train", "--data", str(data_root), "--out", str(mine), *TINY], capsys)
    assert line == (f"mobilecnn: error: {mine} holds config.json, loss.png, accuracy.png but "
                    "no run to continue; a new run would overwrite them: choose another --out "
                    "folder, or move them away (nothing was overwritten)")
    assert_unchanged(before, mine)

    stale = tmp_path / "stale"  # another run's rows, without the run: never appended to
    stale.mkdir()
    shutil.copy(finished_run / "metrics.jsonl", stale / "metrics.jsonl")
    before_stale = snapshot_bytes(stale)
    line = fails(["train", "--data", str(data_root), "--out", str(stale), *TINY], capsys)
    assert f"{stale} holds metrics.jsonl but no run to continue" in line
    assert_unchanged(before_stale, stale)

    # the advice, followed: move them away, and the run starts; the rest is left alone
    for name in ("config.json", "loss.png", "accuracy.png"):
        (mine / name).rename(tmp_path / name)
    assert main(["train", "--data", str(data_root), "--out", str(mine), "--epochs", "1",
                 *TINY]) == 0
    assert (mine / "notes.txt").read_text() == "keep me"
    assert [row["epoch"] for row in read_metrics(mine / "metrics.jsonl")] == [1]
    assert is_run_config(mine / "config.json")


def test_a_run_folder_is_recognized_by_its_config(finished_run: Path, tmp_path: Path) -> None:
    """A run's config.json is marked (and 0.2's, unmarked, is recognized by its options); a
    folder holding only that (a run stopped before its first checkpoint) takes a fresh run."""
    marked = json.loads((finished_run / "config.json").read_text())
    assert marked["format"] == "mobilecnn-run"
    assert TrainConfig.from_dict(marked).batch_size == 12  # the marker reads back
    started = tmp_path / "started"
    started.mkdir()
    shutil.copy(finished_run / "config.json", started / "config.json")
    check_fresh_folder(started)
    del marked["format"]
    (started / "config.json").write_text(json.dumps(marked))  # as mobilecnn 0.2 wrote it
    assert is_run_config(started / "config.json")
    check_fresh_folder(started)
    (started / "config.json").write_text('{"model": "mine", "format": "my-app"}')
    assert not is_run_config(started / "config.json")
    with pytest.raises(ValueError, match="holds config.json but no run to continue"):
        check_fresh_folder(started)


# ---------------------------------------------------------------- where a resumed run writes

def test_a_resumed_copy_or_moved_run_writes_where_its_checkpoint_is(
    data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """The checkpoint records the folder the run started in (A); that decides nothing."""
    original = make_run(data_root, tmp_path / "A")
    copy = copy_run(original, tmp_path / "B")
    before_original, before_copy = snapshot_bytes(original), inodes(copy)
    capsys.readouterr()
    assert main(["train", "--resume", str(copy / "last.pt"), "--epochs", "2", *QUIET]) == 0
    printed = capsys.readouterr().out
    assert_unchanged(before_original, original)
    assert load_checkpoint(copy / "last.pt")["epoch"] == 2
    assert [row["epoch"] for row in read_metrics(copy / "metrics.jsonl")] == [1, 2]
    assert json.loads((copy / "config.json").read_text())["out_dir"] == str(copy)
    assert f"checkpoints: {copy / 'last.pt'} (last)" in printed
    assert_printed_were_written(printed, before_copy, copy)

    moved = tmp_path / "C"
    original.rename(moved)
    assert main(["train", "--resume", str(moved / "last.pt"), "--epochs", "2", *QUIET]) == 0
    assert not original.exists()  # the folder it was started in is not made again
    assert load_checkpoint(moved / "last.pt")["epoch"] == 2


def test_a_data_or_cache_folder_recorded_in_a_checkpoint_is_never_written(
    data_root: Path, finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """A resume reads the data (and caches) its checkpoint names, but builds a cache only where
    the command line says: an edited checkpoint cannot make us write into another folder."""
    victim = tmp_path / "other-app"  # a data set without our caches, and a folder of its own
    shutil.copytree(data_root, victim, ignore=shutil.ignore_patterns(".mobilecnn_cache"))
    elsewhere = tmp_path / "other-app-cache"
    elsewhere.mkdir()
    (elsewhere / "state.db").write_bytes(b"someone else's")
    run = copy_run(finished_run, tmp_path / "run")
    values = torch.load(run / "last.pt", weights_only=True)
    values["config"].update(data=str(victim), cache_dir=str(elsewhere))
    torch.save(values, run / "last.pt")  # the config is not covered by the tensor checksum
    before_victim, before_elsewhere = snapshot_bytes(victim), snapshot_bytes(elsewhere)
    before_run = snapshot_bytes(run)

    line = fails(["train", "--resume", str(run / "last.pt"), "--epochs", "2", *QUIET], capsys)
    assert line.startswith("mobilecnn: error: no up-to-date decoded cache of split 'train' at "
                           f"{elsewhere}"), line
    assert line.endswith(f"a resume builds no cache at a path read from its checkpoint: pass "
                         f"--data {victim} (and --cache-dir DIR if the cache should go "
                         "elsewhere) to build it"), line
    assert_unchanged(before_victim, victim)
    assert_unchanged(before_elsewhere, elsewhere)
    assert_unchanged(before_run, run)

    # the advice, followed: --data given on the command line; the recorded cache folder is
    # dropped (the cache goes under the data folder), and the run continues
    assert main(["train", "--resume", str(run / "last.pt"), "--data", str(victim),
                 "--epochs", "2", *QUIET]) == 0
    assert_unchanged(before_elsewhere, elsewhere)
    assert sorted(path.name for path in (victim / ".mobilecnn_cache").iterdir())
    assert load_checkpoint(run / "last.pt")["epoch"] == 2

    # an unedited checkpoint resumes without --data: its caches exist and are only read
    plain = copy_run(finished_run, tmp_path / "plain")
    assert main(["train", "--resume", str(plain / "last.pt"), "--epochs", "2", *QUIET]) == 0


def test_resuming_into_another_runs_folder_is_refused(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    source = copy_run(finished_run, tmp_path / "source")
    other = copy_run(finished_run, tmp_path / "other")
    before_source, before_other = snapshot_bytes(source), snapshot_bytes(other)
    line = fails(["train", "--resume", str(source / "last.pt"), "--out", str(other),
                  "--epochs", "2", *QUIET], capsys)
    assert line == (f"mobilecnn: error: {other} holds another run ({other / 'last.pt'}); "
                    f"resuming {source / 'last.pt'} there would overwrite it: pass an empty "
                    f"--out folder, or continue that run with --resume {other / 'last.pt'} "
                    "(nothing was overwritten)")
    assert_unchanged(before_source, source)
    assert_unchanged(before_other, other)
    # in its own folder, files that are not the run's are not overwritten either
    mixed = copy_run(finished_run, tmp_path / "mixed")
    (mixed / "config.json").write_text('{"name": "my project"}\n')
    before_mixed = snapshot_bytes(mixed)
    line = fails(["train", "--resume", str(mixed / "last.pt"), "--epochs", "2", *QUIET], capsys)
    assert line == (f"mobilecnn: error: {mixed} holds config.json, not this run's (no mobilecnn "
                    "run's config.json is there); resuming here would overwrite them: move them "
                    "away, or resume into an empty folder with --out DIR (nothing was "
                    "overwritten)")
    assert_unchanged(before_mixed, mixed)

    # a finished run resumed into a new folder would write no checkpoint there: refused
    fork = tmp_path / "fork"
    line = fails(["train", "--resume", str(source / "last.pt"), "--out", str(fork), *QUIET],
                 capsys)
    assert line == (f"mobilecnn: error: checkpoint {source / 'last.pt'}: has finished its 1 "
                    f"epochs: resuming it in {fork} would train nothing and write no checkpoint; "
                    "pass --epochs N with N > 1 to train it longer there")
    assert not fork.exists()
    # the advice, followed: an empty --out folder and more epochs; the source stays as it was
    assert main(["train", "--resume", str(source / "last.pt"), "--out", str(fork),
                 "--epochs", "2", *QUIET]) == 0
    assert_unchanged(before_source, source)
    assert [row["epoch"] for row in read_metrics(fork / "metrics.jsonl")] == [1, 2]
    assert load_checkpoint(fork / "last.pt")["epoch"] == 2


def test_resuming_a_finished_run_in_place_prints_only_what_it_wrote(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    run = copy_run(finished_run, tmp_path / "run")
    (run / "metrics.jsonl").unlink()  # e.g. lost: the resume writes it again from the record
    before, last = inodes(run), (run / "last.pt").read_bytes()
    capsys.readouterr()
    assert main(["train", "--resume", str(run / "last.pt"), *QUIET]) == 0
    printed = capsys.readouterr().out
    assert (f"nothing to train: {run / 'last.pt'} has finished its 1 epochs; pass --epochs N "
            "with N > 1 to train it longer") in printed
    assert "checkpoints:" not in printed  # none was written
    assert (run / "last.pt").read_bytes() == last
    assert f"metrics:     {run / 'metrics.jsonl'}" in printed
    assert_printed_were_written(printed, before, run)


# ---------------------------------------------------------------- advice, followed literally

def test_after_the_data_shrank_the_advice_leads_to_a_correct_run(
    data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """Interrupted at step 3 of epoch 2 (4 steps per epoch); the data then gives 2 steps per
    epoch. Epoch 2 starts over and the schedule ends at zero with the run's last step."""
    out = tmp_path / "run"
    config = TrainConfig(data=str(data_root), out_dir=str(out), epochs=2, width=0.25,
                         batch_size=12, crop="none", lr=0.05, precision="fp32", device="cpu",
                         progress=False, eval_batch_size=64)
    with pytest.raises(TrainingInterrupted) as stopped:
        train(config, _hooks=TrainHooks(interrupt_after_steps=7))
    assert str(stopped.value).endswith(f"continue with --resume {out / 'last.pt'}")
    assert (stopped.value.epoch, stopped.value.step) == (1, 3)
    small = make_official(tmp_path / "small", num_classes=3, train_per_class=8,
                          val_per_class=5, test_images=0, size=16)  # 24 images: 2 steps
    before = snapshot_bytes(out)
    line = fails(["train", "--resume", str(out / "last.pt"), "--data", str(small),
                  "--epochs", "1", *QUIET], capsys)
    assert line.endswith("has already trained 7 steps (epoch 1, step 3 of epoch 2); --epochs "
                         "must be at least 2")
    assert_unchanged(before, out)
    assert main(["train", "--resume", str(out / "last.pt"), "--data", str(small),
                 "--epochs", "2", *QUIET]) == 0
    printed = capsys.readouterr().out
    assert "epoch 2 starts over" in printed
    assert "learning-rate schedule re-planned: 9 steps, continuing at step 7" in printed
    saved = load_checkpoint(out / "last.pt")
    assert (saved["epoch"], saved["step_in_epoch"], saved["global_step"]) == (2, 0, 9)
    rows = read_metrics(out / "metrics.jsonl")
    assert [row["epoch"] for row in rows] == [1, 2]
    assert rows[-1]["lr"] == pytest.approx(0.0, abs=1e-12)  # the schedule's end, not past it


def test_more_epochs_after_the_data_shrank_decay_to_zero_without_climbing(
    data_root: Path, tmp_path: Path,
) -> None:
    """0.2 continued at step 8 of an 8-step plan here, and the learning rate climbed again in
    epochs 3 and 4; now it decays to zero over the 4 steps the run has left."""
    out = make_run(data_root, tmp_path / "run", epochs=2)  # 8 steps of 4 per epoch
    small = make_official(tmp_path / "small", num_classes=3, train_per_class=8,
                          val_per_class=5, test_images=0, size=16)
    assert main(["train", "--resume", str(out / "last.pt"), "--data", str(small),
                 "--epochs", "4", *QUIET]) == 0
    lrs = [row["lr"] for row in read_metrics(out / "metrics.jsonl")]
    # 12 steps, warmup round(3 x 2) = 6: after epoch 3 (step 10) a quarter of the peak, then 0
    assert lrs[2] == pytest.approx(0.05 * (1 + math.cos(math.pi * 4 / 6)) / 2)
    assert lrs[3] == pytest.approx(0.0, abs=1e-12)
    assert load_checkpoint(out / "last.pt")["schedule"]["total_steps"] == 12


def test_a_weights_only_checkpoint_advises_init_and_that_works(
    data_root: Path, finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    weights = dataclasses.replace(Checkpoint.read(finished_run / "best.pt"), optimizer=None,
                                  scheduler=None, rng=None, config=None
                                  ).save(tmp_path / "weights.pt")
    line = fails(["train", "--resume", str(weights), *QUIET], capsys)
    assert line.endswith(f"it cannot be resumed: start a new run from its weights with --init "
                         f"{weights}")
    out = tmp_path / "new"
    assert main(["train", "--data", str(data_root), "--out", str(out), "--init", str(weights),
                 "--epochs", "1", *TINY]) == 0
    assert f"initialized all weights from checkpoint {weights}" in capsys.readouterr().out
    assert load_checkpoint(out / "last.pt")["epoch"] == 1
