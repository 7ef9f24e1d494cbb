"""Exported files run in their own runtimes (ONNX Runtime, ExecuTorch) against PyTorch, and
exports never damage a file: atomic writes, refusing to overwrite the input checkpoint."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import torch

from deploy_helpers import (
    MODEL_KWARGS,
    TinyRun,
    max_relative_error,
    needs_executorch,
    needs_onnx,
    shared_tiny_run,
    simulated_int8,
    top1_agreement,
)
from mobilecnn.cli import main
from mobilecnn.deploy import export_torchscript, load_runtime_model
from mobilecnn.deploy import runtimes as runtimes_module


@pytest.fixture(scope="module")
def run() -> TinyRun:
    return shared_tiny_run()


@pytest.fixture(scope="module")
def checkpoint(run: TinyRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    checkpoints = pytest.importorskip("mobilecnn.train.checkpoints",
                                      reason="the training package is not available")
    folder = tmp_path_factory.mktemp("run")
    return checkpoints.save_checkpoint(
        {"model_name": "mobilenet_v2", "model_kwargs": MODEL_KWARGS,
         "model": run.model.state_dict(), "classes": list("abcd"), "class_names": list("abcd"),
         "epoch": 1, "image_size": 32},
        folder / "best.pt",
    )


def param_bytes(model: torch.nn.Module) -> int:
    return sum(p.numel() * 4 for p in model.parameters())


@needs_onnx
@pytest.mark.slow
def test_int8_onnx_export_runs_in_onnxruntime(run, checkpoint, tmp_path, capsys) -> None:
    import onnx
    import onnxruntime

    out = tmp_path / "int8.onnx"
    assert main(["export", str(checkpoint), "--format", "onnx", "--int8", "--out", str(out),
                 "--calibration", str(run.root), "--calibration-images", "192"]) == 0
    printed = capsys.readouterr().out
    assert "onnx int8, calibrated on 192 training images" in printed
    graph = onnx.load(str(out)).graph
    ops = {node.op_type for node in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ format
    weights = {init.name: init for init in graph.initializer}
    conv_weights = [weights[node.input[1]] for node in graph.node if node.op_type == "Conv"
                    and node.input[1] in weights]
    quantized_weights = [init for init in graph.initializer
                         if init.data_type == onnx.TensorProto.INT8]
    assert not conv_weights and quantized_weights  # Conv weights come through DequantizeLinear
    # A tiny model's file is mostly graph and per-channel scales (MobileNetV2 1.0: 0.28x)
    assert out.stat().st_size <= 0.6 * param_bytes(run.model)
    # Its own runtime, straight from the file:
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"images": run.val_images.numpy()})
    logits = torch.from_numpy(logits)
    simulated = simulated_int8(run.model, [b for b in run.calibration])
    with torch.no_grad():
        assert top1_agreement(logits, simulated(run.val_images)) >= 0.99
        assert top1_agreement(logits, run.model(run.val_images)) >= 0.95
    loaded = load_runtime_model(out)
    assert loaded.precision == "int8" and loaded.input_shape == (3, 32, 32)
    assert torch.equal(loaded(run.val_images[:5]), logits[:5])


@needs_executorch
@pytest.mark.slow
def test_pte_exports_run_in_executorch(run, checkpoint, tmp_path, capsys) -> None:
    from executorch.runtime import Runtime

    fp32, int8 = tmp_path / "fp32.pte", tmp_path / "int8.pte"
    assert main(["export", str(checkpoint), "--format", "pte", "--out", str(fp32)]) == 0
    assert main(["export", str(checkpoint), "--format", "pte", "--int8", "--out", str(int8),
                 "--calibration", str(run.root), "--calibration-images", "192"]) == 0
    assert "pte int8" in capsys.readouterr().out
    method = Runtime.get().load_program(fp32).load_method("forward")
    x = run.val_images[:1].contiguous()
    with torch.no_grad():
        assert max_relative_error(method.execute([x])[0], run.model(x)) <= 1e-4
    assert int8.stat().st_size <= 0.45 * fp32.stat().st_size  # MobileNetV2 1.0: 0.27x
    quantized = load_runtime_model(int8)
    assert quantized.precision == "int8" and load_runtime_model(fp32).precision == "fp32"
    logits = quantized(run.val_images)
    simulated = simulated_int8(run.model, [image[None] for b in run.calibration for image in b])
    with torch.no_grad():
        assert top1_agreement(logits, simulated(run.val_images)) >= 0.99


def test_pte_without_executorch_is_one_line(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setattr(runtimes_module, "executorch_installed", lambda: False)
    assert main(["export", "mobilenet_v2", "--width", "0.25", "--input-size", "32",
                 "--format", "pte", "--out", str(tmp_path / "m.pte")]) == 2
    err = capsys.readouterr().err
    assert 'pip install "mobilecnn[edge]"' in err and err.count("\n") == 1
    assert not (tmp_path / "m.pte").exists()


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_export_refuses_to_overwrite_its_checkpoint(tmp_path, capsys) -> None:
    checkpoints = pytest.importorskip("mobilecnn.train.checkpoints",
                                      reason="the training package is not available")
    from mobilecnn import MobileNetV2

    checkpoint = checkpoints.save_checkpoint(
        {"model_name": "mobilenet_v2", "model_kwargs": MODEL_KWARGS,
         "model": MobileNetV2(**MODEL_KWARGS).state_dict(), "classes": list("abcd"),
         "class_names": list("abcd"), "epoch": 1, "image_size": 32},
        tmp_path / "best.pt",
    )
    before = checkpoint.read_bytes()
    assert main(["export", str(checkpoint), "--format", "torchscript",
                 "--out", str(checkpoint)]) == 2
    err = capsys.readouterr().err
    assert "also an input" in err and err.count("\n") == 1
    assert checkpoint.read_bytes() == before
    assert main(["export", str(checkpoint), "--format", "torchscript", "--int8",
                 "--out", str(checkpoint.with_name("m.pt"))]) == 2
    assert "--int8 works with --format onnx, pte or tflite" in capsys.readouterr().err


def test_export_to_a_device_file_is_refused(capsys) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    assert main(["export", "mobilenet_v2", "--width", "0.25", "--input-size", "32",
                 "--format", "torchscript", "--out", "/dev/full"]) == 2
    err = capsys.readouterr().err
    assert "not a regular file" in err and err.count("\n") == 1
    assert stat.S_ISCHR(Path("/dev/full").stat().st_mode)  # still the device


@pytest.mark.slow  # two TorchScript traces
@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_failed_write_keeps_the_previous_file(monkeypatch, tmp_path, capsys) -> None:
    from mobilecnn import MobileNetV2

    out = tmp_path / "model.pt"
    out.write_bytes(b"the previous good export")

    def disk_full(*args, **kwargs):
        raise RuntimeError("PytorchStreamWriter failed writing file: No space left on device")

    monkeypatch.setattr(torch.jit, "save", disk_full)
    with pytest.raises(OSError, match="could not write .*No space left on device"):
        export_torchscript(MobileNetV2(width_mult=0.25), out, input_size=32)
    assert main(["export", "mobilenet_v2", "--width", "0.25", "--input-size", "32",
                 "--format", "torchscript", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and err.count("\n") == 1
    assert out.read_bytes() == b"the previous good export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]  # no temporary left
