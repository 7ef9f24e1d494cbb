"""LiteRT (.tflite) files, fp32 and int8, run in LiteRT's own interpreter against PyTorch.

Skipped with a reason where the ``litert`` extra is missing; one conversion per precision
(each takes tens of seconds to minutes on a busy 2-core machine).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from deploy_helpers import TinyRun, max_relative_error, shared_tiny_run, top1_agreement
from mobilecnn.deploy import export_tflite, load_runtime_model
from mobilecnn.deploy import runtimes as runtimes_module

LITERT_MISSING = [n for n in ("litert_torch", "ai_edge_litert", "torchao")
                  if importlib.util.find_spec(n) is None]
needs_litert = pytest.mark.skipif(
    bool(LITERT_MISSING), reason=f"{', '.join(LITERT_MISSING)} not installed (pip install "
                                 "'mobilecnn[litert]')")


@pytest.fixture(scope="module")
def run() -> TinyRun:
    return shared_tiny_run()


def interpreter_logits(path, images: torch.Tensor) -> torch.Tensor:
    """Logits of the .tflite file for ``images``, straight from LiteRT's interpreter, one image
    at a time, (de)quantizing int8 input and output with the file's own scales."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]
    target = interpreter.get_output_details()[0]
    outputs = []
    for image in images:
        feed = image[None].numpy()
        if source["dtype"] == np.int8:
            scale, zero = source["quantization"]
            feed = np.clip(np.round(feed / scale) + zero, -128, 127).astype(np.int8)
        interpreter.set_tensor(source["index"], feed)
        interpreter.invoke()
        result = interpreter.get_tensor(target["index"]).astype(np.float32)
        if target["dtype"] == np.int8:
            scale, zero = target["quantization"]
            result = (result - zero) * scale
        outputs.append(torch.from_numpy(result))
    return torch.cat(outputs)


@needs_litert
@pytest.mark.slow
def test_fp32_tflite_matches_pytorch(run, tmp_path) -> None:
    path = export_tflite(run.model, tmp_path / "fp32.tflite", 32)
    images = run.val_images[:8]
    with torch.no_grad():
        reference = run.model(images)
    assert max_relative_error(interpreter_logits(path, images), reference) <= 1e-4
    loaded = load_runtime_model(path, threads=1)
    assert loaded.runtime == "LiteRT" and loaded.precision == "fp32"
    assert loaded.input_shape == (3, 32, 32)
    assert max_relative_error(loaded(images), reference) <= 1e-4  # the batch is resized


@needs_litert
@pytest.mark.slow
def test_int8_tflite_agrees_with_fp32(run, tmp_path) -> None:
    path = export_tflite(run.model, tmp_path / "int8.tflite", int8_calibration=run.calibration)
    fp32_bytes = sum(p.numel() * 4 for p in run.model.parameters())
    assert path.stat().st_size <= 0.6 * fp32_bytes  # int8 weights (plus graph and scales)
    logits = interpreter_logits(path, run.val_images)
    with torch.no_grad():
        reference = run.model(run.val_images)
    assert top1_agreement(logits, reference) >= 0.97
    assert max_relative_error(logits, reference) <= 0.25  # int8 rounding, not garbage
    loaded = load_runtime_model(path, threads=1)
    assert loaded.precision == "int8" and loaded.input_shape == (3, 32, 32)
    assert torch.equal(loaded(run.val_images[:1]), logits[:1])


def test_tflite_without_litert_is_one_line(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(runtimes_module, "litert_installed", lambda: False)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten())
    with pytest.raises(ImportError, match=r'pip install "mobilecnn\[litert\]"'):
        export_tflite(model, tmp_path / "m.tflite", 8)
    assert not (tmp_path / "m.tflite").exists()


def test_cli_tflite_without_litert_is_one_line(monkeypatch, tmp_path, capsys) -> None:
    from mobilecnn.cli import main

    monkeypatch.setattr(runtimes_module, "litert_installed", lambda: False)
    out = tmp_path / "m.tflite"
    assert main(["export", "mobilenet_v2", "--width", "0.25", "--input-size", "32",
                 "--format", "tflite", "--int8", "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("mobilecnn: error:") and "\n" not in error
    assert 'pip install "mobilecnn[litert]"' in error and not out.exists()


def test_load_rejects_unknown_suffix(tmp_path) -> None:
    path = tmp_path / "model.tfl"
    path.write_bytes(b"x")
    with pytest.raises(ValueError, match=r"expected a \.onnx, \.pte or \.tflite file"):
        load_runtime_model(path)
