"""Faults: SIGKILL during every kind of file the library writes.

A forked child starts the write and kills itself at the worst moments: halfway through the
data, and after the data is complete but before the rename. The file a user had must be exactly
as before (or still absent), never unreadable; the temporary file the dead process left is
removed by the next run (``clean_stale_temps``). A last test kills a real writer at random
times.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from data_helpers import make_official
from fault_helpers import snapshot_bytes
from mobilecnn import MobileNetV2
from mobilecnn.data import load_cache, prepare_cache
from mobilecnn.fileio import clean_stale_temps, write_text_atomic
from mobilecnn.train.checkpoints import Checkpoint, load_checkpoint, save_checkpoint
from mobilecnn.train.metrics import MetricLog, SplitMetrics, read_metrics, write_per_class_csv
from mobilecnn.train.plots import plot_history

KWARGS = {"num_classes": 3, "width_mult": 0.25, "total_stride": 16,
          "inverted_residual_setting": [[1, 8, 1, 1], [2, 8, 1, 2]]}


def checkpoint_dict(epoch: int) -> dict:
    torch.manual_seed(epoch)
    return {"model_name": "mobilenet_v2", "model_kwargs": KWARGS,
            "model": MobileNetV2(**KWARGS).state_dict(), "classes": ["a", "b", "c"],
            "class_names": ["A", "B", "C"], "epoch": epoch}


def killed_in(write: Callable[[], object], moment: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run ``write`` in a forked child that SIGKILLs itself at ``moment``:
    ``"mid-data"`` (the first fsync of the temporary file, i.e. data written but maybe not all
    flushed, is replaced by a kill after truncating it) or ``"before-rename"``."""
    pid = os.fork()
    if pid == 0:  # the child: never returns
        try:
            if moment == "before-rename":
                monkeypatch.setattr("mobilecnn.fileio.os.replace",
                                    lambda *a: os.kill(os.getpid(), signal.SIGKILL))
            else:
                def half_then_die(path: Path) -> None:
                    size = Path(path).stat().st_size
                    os.truncate(path, size // 2)
                    os.kill(os.getpid(), signal.SIGKILL)

                monkeypatch.setattr("mobilecnn.fileio._fsync_file", half_then_die)
                monkeypatch.setattr("mobilecnn.fileio.os.fsync",
                                    lambda fd: os.kill(os.getpid(), signal.SIGKILL))
            write()
        finally:
            os._exit(3)  # the kill did not happen: the parent sees status 3
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status


def check_killed_write(folder: Path, write: Callable[[], object],
                       monkeypatch: pytest.MonkeyPatch) -> None:
    before = snapshot_bytes(folder)
    for moment in ("mid-data", "before-rename"):
        killed_in(write, moment, monkeypatch)
        after = snapshot_bytes(folder)
        temps = [name for name in after if ".tmp-" in name]
        assert temps, "the kill left no temporary file: did it hit the write at all?"
        assert {k: v for k, v in after.items() if k not in temps} == before
        assert [p.name for p in clean_stale_temps(folder)] == [Path(t).name for t in temps]
        assert snapshot_bytes(folder) == before


def test_killed_checkpoint_save(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_checkpoint(checkpoint_dict(1), tmp_path / "last.pt")
    check_killed_write(tmp_path, lambda: save_checkpoint(checkpoint_dict(2), path), monkeypatch)
    assert load_checkpoint(path)["epoch"] == 1
    Checkpoint.from_dict(checkpoint_dict(3)).save(path)  # the next save cleans up and works
    assert load_checkpoint(path)["epoch"] == 3


def test_killed_metrics_config_csv_and_plot_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = MetricLog(tmp_path / "metrics.jsonl")
    row = {"epoch": 1, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 1.1, "val_top1": 0.4,
           "val_top5": 1.0}
    log.append(row)
    write_text_atomic(tmp_path / "config.json", json.dumps({"epochs": 1}))
    metrics = SplitMetrics(num_classes=2)
    metrics.add(torch.eye(2), torch.tensor([0, 1]), loss_sum=0.5)
    write_per_class_csv(tmp_path / "val_per_class.csv", metrics, ["a", "b"], ["A", "B"])
    plot_history([row], tmp_path)
    check_killed_write(tmp_path, lambda: log.append({**row, "epoch": 2}), monkeypatch)
    check_killed_write(tmp_path, lambda: write_text_atomic(tmp_path / "config.json", "{}"),
                       monkeypatch)
    check_killed_write(tmp_path, lambda: write_per_class_csv(
        tmp_path / "val_per_class.csv", metrics, ["a", "b"], ["X", "Y"]), monkeypatch)
    check_killed_write(tmp_path, lambda: plot_history([row, {**row, "epoch": 2}], tmp_path),
                       monkeypatch)
    assert read_metrics(log.path) == [row]


def test_killed_cache_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_official(tmp_path / "data", num_classes=2, train_per_class=4, val_per_class=3,
                         test_images=0, size=8)
    cache = tmp_path / "cache"
    first = prepare_cache(root, "val", cache_dir=cache, num_workers=1, progress=False)
    (root / "val" / "images" / "val_0.JPEG").touch()  # the source changed: a rebuild is due
    os.utime(root / "val" / "images" / "val_0.JPEG", ns=(1, 1))
    check_killed_write(cache, lambda: prepare_cache(root, "val", cache_dir=cache,
                                                    num_workers=1, progress=False), monkeypatch)
    assert len(load_cache(first)) == 6  # the old cache is intact and verifies


WRITER = textwrap.dedent("""
    import sys, torch
    from mobilecnn import MobileNetV2
    from mobilecnn.train.checkpoints import save_checkpoint
    kwargs = {"num_classes": 3, "width_mult": 0.5, "total_stride": 16}
    def save(epoch):
        save_checkpoint({"model_name": "mobilenet_v2", "model_kwargs": kwargs,
                         "model": MobileNetV2(**kwargs).state_dict(), "classes": ["a", "b", "c"],
                         "class_names": ["A", "B", "C"], "epoch": epoch}, sys.argv[1])
    save(1)
    print("ready", flush=True)
    epoch = 1
    while True:
        epoch += 1
        save(epoch)
""")


@pytest.mark.slow
def test_checkpoint_writer_killed_at_random_times_is_always_readable(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    rng = random.Random(0)
    epochs = []
    for _ in range(2):
        process = subprocess.Popen([sys.executable, "-c", WRITER, str(path)],
                                   stdout=subprocess.PIPE, text=True)
        assert process.stdout is not None and process.stdout.readline() == "ready\n"
        time.sleep(rng.uniform(0.2, 0.8))
        process.kill()
        process.wait()
        epochs.append(load_checkpoint(path)["epoch"])  # never truncated, never foreign
        clean_stale_temps(tmp_path)
        assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
    assert all(epoch >= 1 for epoch in epochs)
