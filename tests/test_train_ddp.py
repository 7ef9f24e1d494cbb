"""DDP on CPU: the same `mobilecnn train` command under torchrun with 2 gloo processes."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed as dist

from data_helpers import make_official
from mobilecnn.train.checkpoints import load_model
from mobilecnn.train.distributed import model_checksum
from mobilecnn.train.metrics import read_metrics

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                       reason="torch.distributed with gloo is not available in this build"),
]


def test_two_gloo_processes_train_in_sync(tmp_path: Path) -> None:
    # 3 classes x 16 train images (global batch 12 -> 6 per process, 4 steps per epoch);
    # 3 x 5 = 15 val images, which 2 processes cannot split evenly
    root = make_official(tmp_path, num_classes=3, train_per_class=16, val_per_class=5,
                         test_images=0, size=16)
    out = tmp_path / "run"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "mobilecnn", "train", "--data", str(root), "--out", str(out), "--epochs", "2",
        "--batch-size", "12", "--width", "0.25", "--crop", "none", "--lr", "0.05",
        "--precision", "fp32", "--device", "cpu", "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env,
                          cwd=tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "2 process(es) on cpu" in output and "global batch 12" in output
    assert "4 steps/epoch" in output  # global batch: 48 images / 12, whatever the process count
    assert done.stdout.count("epoch   1/2") == 1  # only rank 0 prints
    # only rank 0 writes: one row per epoch, not one per process
    assert [row["epoch"] for row in read_metrics(out / "metrics.jsonl")] == [1, 2]
    result = json.loads((out / "result.json").read_text())
    checksums = result["rank_checksums"]
    assert len(checksums) == 2 and checksums[0] == checksums[1]  # identical on both ranks
    model, _ = load_model(out / "last.pt")
    assert model_checksum(model) == checksums[0]  # ... and what rank 0 saved
    # validation counted every image exactly once over both processes (no padding repeats)
    rows = list(csv.DictReader((out / "val_per_class.csv").open()))
    assert sum(int(row["total"]) for row in rows) == 15
    assert [int(row["total"]) for row in rows] == [5, 5, 5]
