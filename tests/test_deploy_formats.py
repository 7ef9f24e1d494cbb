"""``export_model``: every format of ``EXPORT_FORMATS`` through one call; calibration images."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from data_helpers import make_official
from mobilecnn import MobileNetV2
from mobilecnn.cli import build_parser
from mobilecnn.deploy import EXPORT_FORMATS, calibration_images, export_model


def _tiny() -> MobileNetV2:
    torch.manual_seed(0)
    return MobileNetV2(num_classes=3, width_mult=0.25, total_stride=8).eval()


def test_torchscript_through_the_dispatcher_matches_the_model(tmp_path: Path) -> None:
    model = _tiny()
    written = export_model(model, tmp_path / "tiny.pt", "torchscript", 32)
    loaded = torch.jit.load(str(written))
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded(images), model(images), atol=1e-4)


def test_unknown_formats_and_missing_int8_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="^format must be one of onnx, pte, tflite, "
                                         "torchscript"):
        export_model(_tiny(), tmp_path / "m.bin", "keras")
    with pytest.raises(ValueError, match="^torchscript has no int8 export; int8 works with "
                                         "onnx, pte, tflite"):
        export_model(_tiny(), tmp_path / "m.pt", "torchscript", 32,
                     int8_calibration=[torch.randn(2, 3, 32, 32)])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow  # quantizes with ONNX Runtime
def test_int8_onnx_through_the_dispatcher(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime", reason="int8 ONNX needs the [onnx] extra")
    from mobilecnn.deploy import load_runtime_model

    model = _tiny()
    calibration = calibration_images(None, 32, count=16, batch_size=8)
    written = export_model(model, tmp_path / "m.onnx", "onnx", 32, int8_calibration=calibration)
    quantized = load_runtime_model(written)
    assert quantized.precision == "int8"
    assert quantized(calibration[0]).shape == (8, 3)


def test_the_export_command_offers_exactly_the_dispatchers_formats() -> None:
    export = build_parser()._subparsers._group_actions[0].choices["export"]
    (action,) = [a for a in export._actions if a.dest == "format"]
    assert tuple(action.choices) == tuple(EXPORT_FORMATS)
    for name, spec in EXPORT_FORMATS.items():
        assert spec.help in " ".join(export.format_help().split()), name


def test_calibration_images_random_and_from_a_data_set(tmp_path: Path) -> None:
    random = calibration_images(None, 16, count=10, batch_size=4)
    assert [tuple(batch.shape) for batch in random] == [(4, 3, 16, 16)] * 2 + [(2, 3, 16, 16)]
    assert torch.equal(random[0], calibration_images(None, 16, count=10, batch_size=4)[0])
    root = make_official(tmp_path / "data", num_classes=2, train_per_class=3, val_per_class=1,
                         size=16)
    images = calibration_images(root, 16, count=4, mean=[0.5] * 3, std=[0.25] * 3)
    (batch,) = images
    assert batch.shape == (4, 3, 16, 16) and batch.dtype == torch.float32
    assert batch.min() >= -2.0 and batch.max() <= 2.0  # (x/255 - 0.5) / 0.25
    with pytest.raises(ValueError, match="is not a folder"):
        calibration_images(tmp_path / "nothing", 16)
    with pytest.raises(ValueError, match="input_size must be at most 1,024"):
        calibration_images(None, 100_000)
