"""MobileNetV3/V4 downstream of the model: ONNX export checked in onnxruntime (one export per
family), TorchScript, and `mobilecnn train --model mobilenet_v3_small` on tiny data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from data_helpers import make_official
from deploy_helpers import max_relative_error, needs_onnx, randomize_batchnorm, run_onnx
from mobilecnn import create_model
from mobilecnn.cli import main
from mobilecnn.deploy import export_onnx, export_torchscript


@needs_onnx
@pytest.mark.slow
@pytest.mark.parametrize("name", ["mobilenet_v3_small", "mobilenet_v4_conv_small"])
def test_onnx_export_matches_pytorch(tmp_path: Path, name: str) -> None:
    model = randomize_batchnorm(create_model(name, width_mult=0.25, num_classes=10,
                                             total_stride=16)).eval()
    path = export_onnx(model, tmp_path / f"{name}.onnx", input_size=32)
    for batch in (1, 3):
        x = torch.randn(batch, 3, 32, 32)
        with torch.no_grad():
            expected = model(x)
        assert max_relative_error(run_onnx(path, x), expected) <= 1e-4


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_torchscript_export_of_mobilenet_v4(tmp_path: Path) -> None:
    model = randomize_batchnorm(create_model("mobilenet_v4_conv_small", width_mult=0.25,
                                             num_classes=4)).eval()
    scripted = torch.jit.load(export_torchscript(model, tmp_path / "v4.pt", input_size=32))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert max_relative_error(scripted(x), model(x)) <= 1e-4


@pytest.mark.slow
def test_train_cli_trains_mobilenet_v3_small(tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        root = make_official(tmp_path / "data", num_classes=3, train_per_class=8,
                             val_per_class=4, test_images=0, size=16)
        out = tmp_path / "run"
        assert main(["train", "--model", "mobilenet_v3_small", "--data", str(root), "--out",
                     str(out), "--epochs", "1", "--width", "0.25", "--batch-size", "8",
                     "--crop", "none", "--lr", "0.05", "--precision", "fp32", "--device", "cpu",
                     "--no-progress"]) == 0
    finally:
        torch.set_num_threads(threads)
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "mobilenet_v3_small"
    from mobilecnn.train.checkpoints import load_model

    model, _ = load_model(out / "last.pt")
    assert type(model).__name__ == "MobileNetV3" and getattr(model, "variant", None) == "small"
