"""Checkpoints (atomic writes, clear errors for bad files) and whole-split metrics."""

from __future__ import annotations

import csv
import json
import math
import struct
import zipfile
from pathlib import Path

import pytest
import torch

from mobilecnn import MobileNetV2
from mobilecnn.train.checkpoints import (
    CheckpointError,
    load_checkpoint,
    load_model,
    save_checkpoint,
)
from mobilecnn.train.metrics import (
    MetricLog,
    SplitMetrics,
    read_metrics,
    topk_correct,
    write_per_class_csv,
)

KWARGS = {"num_classes": 3, "width_mult": 0.25, "total_stride": 16,
          "inverted_residual_setting": [[1, 8, 1, 1], [2, 8, 1, 2]]}


def _checkpoint(model: MobileNetV2, epoch: int = 1) -> dict:
    return {"model_name": "mobilenet_v2", "model_kwargs": KWARGS, "model": model.state_dict(),
            "classes": ["a", "b", "c"], "class_names": ["A", "B", "C"], "epoch": epoch}


def test_round_trip_gives_the_same_model_in_eval_mode(tmp_path: Path) -> None:
    model = MobileNetV2(**KWARGS)
    path = save_checkpoint(_checkpoint(model), tmp_path / "run" / "last.pt")
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temp file left
    loaded, data = load_model(path)
    assert not loaded.training
    assert data["format"] == "mobilecnn-checkpoint" and data["format_version"] == 1
    assert data["class_names"] == ["A", "B", "C"] and data["mobilecnn_version"]
    x = torch.randn(2, 3, 16, 16)
    model.eval()
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_failed_write_keeps_the_old_checkpoint(tmp_path: Path) -> None:
    path = save_checkpoint(_checkpoint(MobileNetV2(**KWARGS), epoch=1), tmp_path / "last.pt")
    before = path.read_bytes()
    bad = _checkpoint(MobileNetV2(**KWARGS), epoch=2)
    bad["not_picklable"] = lambda: None
    with pytest.raises(Exception):  # noqa: B017 - whatever pickle raises
        save_checkpoint(bad, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
    assert load_checkpoint(path)["epoch"] == 1


def test_truncated_file(tmp_path: Path) -> None:
    path = save_checkpoint(_checkpoint(MobileNetV2(**KWARGS)), tmp_path / "last.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"last\.pt.*truncated"):
        load_checkpoint(path)
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"last\.pt.*empty"):
        load_model(path)


def test_missing_folder_foreign_and_future_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="nope.pt: no such file"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="is a folder"):
        load_checkpoint(tmp_path)
    foreign = tmp_path / "foreign.pt"
    torch.save(MobileNetV2(**KWARGS).state_dict(), foreign)
    with pytest.raises(CheckpointError, match="foreign.pt: is not a mobilecnn checkpoint"):
        load_model(foreign)
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="notes.pt: cannot be read"):
        load_model(text)
    future = tmp_path / "future.pt"
    save_checkpoint(_checkpoint(MobileNetV2(**KWARGS)), future)
    data = torch.load(future, weights_only=True)
    data["format_version"] = 99
    torch.save(data, future)
    with pytest.raises(CheckpointError, match="format_version 99"):
        load_model(future)


def test_incompatible_weights_and_unknown_model(tmp_path: Path) -> None:
    checkpoint = _checkpoint(MobileNetV2(**KWARGS))
    checkpoint["model_kwargs"] = {**KWARGS, "num_classes": 7}
    path = save_checkpoint(checkpoint, tmp_path / "mismatch.pt")
    with pytest.raises(CheckpointError, match=r"mismatch\.pt: weights do not fit.*size mismatch"):
        load_model(path)
    checkpoint["model_name"] = "resnet50"
    save_checkpoint(checkpoint, path)
    with pytest.raises(CheckpointError, match="cannot build.*unknown model 'resnet50'"):
        load_model(path)
    assert issubclass(CheckpointError, ValueError)


def test_topk_counts() -> None:
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5]])
    labels = torch.tensor([1, 1, 0])
    assert topk_correct(logits, labels, (1, 2, 5)) == [1, 2, 3]


def test_split_metrics_count_the_whole_split_not_batch_averages() -> None:
    metrics = SplitMetrics(num_classes=2)
    # batch of 1 right, then a batch of 3 all wrong: the mean of batch means would be 50%
    metrics.add(torch.tensor([[2.0, 0.0]]), torch.tensor([0]), loss_sum=0.5)
    metrics.add(torch.tensor([[2.0, 0.0]] * 3), torch.tensor([1, 1, 1]), loss_sum=6.0)
    assert metrics.count == 4
    assert metrics.top1_acc == pytest.approx(0.25)
    assert metrics.loss == pytest.approx(6.5 / 4)
    assert metrics.per_class_accuracy() == [1.0, 0.0]
    restored = SplitMetrics(num_classes=2)
    restored.load_state_dict(metrics.state_dict())
    assert restored.top1 == 1 and restored.class_total.tolist() == [1, 3]
    assert math.isnan(SplitMetrics(num_classes=2).top1_acc)


def test_per_class_csv_and_metric_log(tmp_path: Path) -> None:
    metrics = SplitMetrics(num_classes=3)
    metrics.add(torch.eye(3)[[0, 1, 1]], torch.tensor([0, 1, 2]), loss_sum=1.0)
    path = write_per_class_csv(tmp_path / "pc.csv", metrics, ["n1", "n2", "n3"],
                               ["cat", "dog", "eel"])
    rows = list(csv.DictReader(path.open()))
    assert [r["class_name"] for r in rows] == ["cat", "dog", "eel"]
    assert [float(r["accuracy"]) for r in rows] == [1.0, 1.0, 0.0]
    log = MetricLog(tmp_path / "metrics.jsonl")
    log.append({"epoch": 1, "val_top1": 0.5})
    log.append({"epoch": 2, "val_top1": 0.75})
    assert [row["epoch"] for row in read_metrics(log.path)] == [1, 2]
    log.rewrite([{"epoch": 1, "val_top1": 0.5}])
    assert json.loads(log.path.read_text()) == {"epoch": 1, "val_top1": 0.5}


def _flip_a_bit_in_the_largest_tensor(path: Path) -> None:
    """Flip one bit in the middle of the largest tensor record of a torch.save zip file."""
    with zipfile.ZipFile(path) as archive:
        member = max((info for info in archive.infolist() if "/data/" in info.filename),
                     key=lambda info: info.file_size)
    with path.open("r+b") as file:
        file.seek(member.header_offset + 26)
        name_length, extra_length = struct.unpack("<HH", file.read(4))
        offset = member.header_offset + 30 + name_length + extra_length + member.file_size // 2
        file.seek(offset)
        byte = file.read(1)[0]
        file.seek(offset)
        file.write(bytes([byte ^ 0x10]))


def test_a_changed_bit_in_the_tensors_is_a_checkpoint_error_naming_the_file(
    tmp_path: Path,
) -> None:
    model = MobileNetV2(**KWARGS)
    path = save_checkpoint(_checkpoint(model), tmp_path / "best.pt")
    assert isinstance(torch.load(path, weights_only=True)["tensor_crc32"], int)
    _flip_a_bit_in_the_largest_tensor(path)
    with pytest.raises(CheckpointError, match=(
            f"checkpoint {path}: is damaged: its tensors do not match their checksum")):
        load_model(path)
    # a file without a checksum (mobilecnn 0.2.0 and earlier) still loads, damaged or not
    old = torch.load(path, weights_only=True)
    del old["tensor_crc32"]
    torch.save(old, tmp_path / "old.pt")
    assert load_checkpoint(tmp_path / "old.pt")["epoch"] == 1
    # saving again computes a fresh checksum (the stale one is not carried along)
    again = save_checkpoint(load_checkpoint(tmp_path / "old.pt"), tmp_path / "again.pt")
    assert load_checkpoint(again)["epoch"] == 1


def test_non_finite_weights_are_refused_unless_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    from mobilecnn.cli import main

    model = MobileNetV2(**KWARGS)
    state = model.state_dict()
    state["classifier.1.weight"][0, 0] = math.nan
    values = _checkpoint(model)
    values["model"] = state
    path = save_checkpoint(values, tmp_path / "nan.pt")
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match=(
            r"has NaN or infinite weights in 1 tensor\(s\) \(classifier.1.weight\).*"
            "allow_nonfinite=True")):
        load_model(path)
    loaded, _ = load_model(path, allow_nonfinite=True)
    assert loaded.classifier[1].weight.isnan().any()
    image = tmp_path / "image.png"
    Image.new("RGB", (16, 16), (10, 200, 30)).save(image)
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(path), str(image)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"mobilecnn: error: checkpoint {path}: has NaN or infinite weights")
    assert main(["predict", "--checkpoint", str(path), str(image), "--allow-nonfinite"]) == 0
    assert "nan%" in capsys.readouterr().out
    out = tmp_path / "model.pt"
    assert main(["export", str(path), "--format", "torchscript", "--out", str(out)]) == 2
    assert "--allow-nonfinite on eval, predict and export" in capsys.readouterr().err
    assert not out.exists()
    from mobilecnn.cli import build_parser

    parsed = build_parser().parse_args(["eval", "--checkpoint", str(path), "--data", "d",
                                        "--allow-nonfinite"])
    assert parsed.allow_nonfinite is True
    assert path.read_bytes() == before
