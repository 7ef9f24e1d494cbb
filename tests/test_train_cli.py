"""`mobilecnn train / eval / predict / demo` end to end, bad checkpoints, real signals."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from data_helpers import make_official
from mobilecnn.cli import main
from mobilecnn.train.checkpoints import load_checkpoint
from mobilecnn.train.metrics import read_metrics

TIMING_KEYS = {"epoch_seconds", "images_per_second"}
TINY = ["--width", "0.25", "--batch-size", "12", "--crop", "none", "--lr", "0.05",
        "--precision", "fp32", "--device", "cpu", "--no-progress"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_official(tmp_path_factory.mktemp("data"), num_classes=3, train_per_class=16,
                         val_per_class=5, test_images=0, size=16)


@pytest.fixture(scope="module")
def trained(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--data", str(data_root), "--out", str(out), "--epochs", "2",
                 *TINY]) == 0
    return out


def test_train_prints_where_things_are(trained: Path, capsys: pytest.CaptureFixture) -> None:
    # the output of the fixture's run went to an earlier capture; check the files instead
    assert {"last.pt", "best.pt", "metrics.jsonl", "loss.png", "accuracy.png"} <= {
        p.name for p in trained.iterdir()}
    config = json.loads((trained / "config.json").read_text())
    assert config["batch_size"] == 12 and config["total_stride"] == 16


def test_eval_prints_topk_and_writes_per_class_csv(
    trained: Path, data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    csv_path = tmp_path / "per_class.csv"
    assert main(["eval", "--checkpoint", str(trained / "last.pt"), "--data", str(data_root),
                 "--per-class", str(csv_path), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    final = read_metrics(trained / "metrics.jsonl")[-1]
    assert f"top-1 {100 * final['val_top1']:.2f}%" in printed
    assert f"top-5 {100 * final['val_top5']:.2f}%" in printed
    rows = list(csv.DictReader(csv_path.open()))
    assert [row["class_name"] for row in rows] == [f"class {i} name, synonym" for i in range(3)]
    assert sum(int(row["total"]) for row in rows) == 15


def test_predict_prints_ranked_classes_with_names(
    trained: Path, data_root: Path, capsys: pytest.CaptureFixture
) -> None:
    image = next((data_root / "val" / "images").iterdir())
    assert main(["predict", "--checkpoint", str(trained / "best.pt"), str(image)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{image}:"
    assert [line.split(".")[0].strip() for line in lines[1:]] == ["1", "2", "3"]  # 3 classes
    assert all("class " in line and "(n0000000" in line for line in lines[1:])
    probabilities = [float(line.split("%")[0].split()[-1]) for line in lines[1:]]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) == pytest.approx(100, abs=0.2)


def _one_line_error(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_bad_checkpoints_give_one_line_errors(
    trained: Path, data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    truncated = tmp_path / "truncated.pt"
    data = (trained / "last.pt").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    assert main(["eval", "--checkpoint", str(truncated), "--data", str(data_root)]) == 2
    assert "truncated.pt: cannot be read: it is truncated" in _one_line_error(capsys)
    foreign = tmp_path / "weights.pt"
    torch.save({"conv.weight": torch.zeros(1)}, foreign)
    assert main(["predict", "--checkpoint", str(foreign), "x.png"]) == 2
    assert "weights.pt: is not a mobilecnn checkpoint" in _one_line_error(capsys)
    assert main(["predict", "--checkpoint", str(trained / "last.pt"),
                 str(tmp_path / "missing.png")]) == 2
    assert "missing.png does not exist" in _one_line_error(capsys)


def test_resume_from_a_truncated_checkpoint_overwrites_nothing(
    trained: Path, data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    data = (trained / "last.pt").read_bytes()[:1000]
    (out / "last.pt").write_bytes(data)
    assert main(["train", "--data", str(data_root), "--out", str(out), "--resume"]) == 2
    assert "last.pt: cannot be read" in _one_line_error(capsys)
    assert (out / "last.pt").read_bytes() == data
    assert sorted(p.name for p in out.iterdir()) == ["last.pt"]
    # a fresh run into a folder that holds a run is refused too
    assert main(["train", "--data", str(data_root), "--out", str(trained), *TINY]) == 2
    assert "already holds a run" in _one_line_error(capsys)


# ---------------------------------------------------------------- real signals, subprocesses

def _command(data_root: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "mobilecnn", "train", "--data", str(data_root), "--out",
            str(out), "--epochs", "12", *TINY, *extra]


ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _final(out: Path) -> tuple[list[dict], list[str]]:
    rows = [{k: v for k, v in row.items() if k not in TIMING_KEYS}
            for row in read_metrics(out / "metrics.jsonl")]
    return rows, json.loads((out / "result.json").read_text())["rank_checksums"]


@pytest.fixture(scope="module")
def uninterrupted(data_root: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("uninterrupted")
    done = subprocess.run(_command(data_root, out), env=ENV, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return _final(out)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_a_signalled_run_resumes_to_the_same_result(
    signum: int, uninterrupted, data_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    process = subprocess.Popen(_command(data_root, out), env=ENV, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    metrics = out / "metrics.jsonl"
    while not (metrics.exists() and metrics.read_text().count("\n") >= 1):
        assert process.poll() is None, "training ended before it could be interrupted"
        assert time.monotonic() < deadline, "no epoch finished in time"
        time.sleep(0.02)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=240)
    rows_before = len(read_metrics(metrics))
    assert rows_before < 12, "the run finished before the signal arrived; nothing was tested"
    if signum == signal.SIGKILL:
        assert process.returncode == -signal.SIGKILL
    else:
        assert process.returncode == 130, stderr
        assert "checkpoint saved to" in stdout and "--resume" in stdout
        saved = load_checkpoint(out / "last.pt")
        assert saved["epoch"] * 4 + saved["step_in_epoch"] >= 4  # at least one epoch's steps
    resumed = subprocess.run(
        [sys.executable, "-m", "mobilecnn", "train", "--out", str(out), "--resume",
         "--no-progress"], env=ENV, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout
    assert _final(out) == uninterrupted


@pytest.mark.slow
def test_demo_learns_with_fewer_epochs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`mobilecnn demo` shortened to 2 epochs (the default has more): well above the 10%
    chance level, and it says where everything is and that the data is generated."""
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--epochs", "2"]) == 0
    printed = capsys.readouterr().out
    final = read_metrics(out / "metrics.jsonl")[-1]
    assert final["epoch"] == 2
    assert final["val_top1"] >= 0.4, final
    for name in ("last.pt", "best.pt", "metrics.jsonl", "loss.png", "accuracy.png"):
        assert str(out / name) in printed
    assert "GENERATED data" in printed
    checkpoint = load_checkpoint(out / "best.pt")
    assert checkpoint["model_kwargs"]["total_stride"] == 16
    assert len(checkpoint["class_names"]) == 10
