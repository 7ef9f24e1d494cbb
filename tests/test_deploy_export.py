"""ONNX and TorchScript export, and the ``mobilecnn export`` command."""

from __future__ import annotations

import pytest
import torch

from deploy_helpers import max_relative_error, needs_onnx, randomize_batchnorm, run_onnx
from mobilecnn import MobileNetV1, MobileNetV2
from mobilecnn.cli import main
from mobilecnn.deploy import export_onnx, export_torchscript, optimize_for_inference


@needs_onnx
@pytest.mark.slow
def test_onnx_matches_pytorch_with_dynamic_batch(tmp_path) -> None:
    model = randomize_batchnorm(MobileNetV2(width_mult=0.25, num_classes=10)).eval()
    path = export_onnx(model, tmp_path / "v2.onnx", input_size=32)
    assert path == tmp_path / "v2.onnx" and path.stat().st_size > 0
    import onnx

    graph = onnx.load(str(path)).graph
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param  # a symbolic batch axis
    assert not any(node.op_type == "BatchNormalization" for node in graph.node)
    for batch in (1, 3):
        x = torch.randn(batch, 3, 32, 32)
        with torch.no_grad():
            expected = model(x)
        assert max_relative_error(run_onnx(path, x), expected) <= 1e-4


def save_test_checkpoint(model, kwargs: dict, name: str, path) -> object:
    checkpoints = pytest.importorskip("mobilecnn.train.checkpoints",
                                      reason="the training package is not available")
    return checkpoints.save_checkpoint(
        {"model_name": name, "model_kwargs": kwargs, "model": model.state_dict(),
         "classes": ["a", "b", "c"], "class_names": ["a", "b", "c"], "epoch": 1,
         "image_size": 32},
        path,
    )


@needs_onnx
@pytest.mark.slow
def test_cli_exports_a_mobilenet_v1_checkpoint_to_onnx(tmp_path, capsys) -> None:
    kwargs = {"num_classes": 3, "width_mult": 0.25, "total_stride": 16}
    model = randomize_batchnorm(MobileNetV1(**kwargs)).eval()
    checkpoint = save_test_checkpoint(model, kwargs, "mobilenet_v1", tmp_path / "best.pt")
    out = tmp_path / "v1.onnx"
    assert main(["export", str(checkpoint), "--format", "onnx", "--out", str(out)]) == 0
    assert "input 3x32x32" in capsys.readouterr().out  # the size recorded in the checkpoint
    for batch in (1, 4):
        x = torch.randn(batch, 3, 32, 32)
        with torch.no_grad():
            assert max_relative_error(run_onnx(out, x), model(x)) <= 1e-4
    assert main(["export", str(checkpoint), "--format", "onnx", "--out", str(out),
                 "--width", "0.5"]) == 2
    assert "only apply to a model name" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
@pytest.mark.parametrize("model_class", [MobileNetV1, MobileNetV2])
def test_torchscript_round_trip_is_identical(tmp_path, model_class: type) -> None:
    model = randomize_batchnorm(model_class(width_mult=0.25, num_classes=6)).eval()
    optimized = optimize_for_inference(model)
    path = export_torchscript(model, tmp_path / "model.pt", input_size=32)
    loaded = torch.jit.load(str(path))
    torch.jit.save(loaded, str(tmp_path / "again.pt"))
    reloaded = torch.jit.load(str(tmp_path / "again.pt"))
    x = torch.randn(3, 3, 32, 32)  # a different batch size than the trace used
    with torch.no_grad():
        scripted = loaded(x)
        assert torch.equal(reloaded(x), scripted)
        assert torch.allclose(scripted, optimized(x), rtol=0, atol=1e-6)
        assert max_relative_error(scripted, model(x)) <= 1e-4


def test_export_refuses_bad_paths(tmp_path) -> None:
    model = MobileNetV2(width_mult=0.25)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export_torchscript(model, tmp_path / "missing" / "m.pt", input_size=32)
    with pytest.raises(ValueError, match="is a directory"):
        export_torchscript(model, tmp_path, input_size=32)
    with pytest.raises(ValueError, match="must be positive"):
        export_torchscript(model, tmp_path / "m.pt", input_size=0)


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_cli_torchscript_from_model_name(tmp_path, capsys) -> None:
    out = tmp_path / "v2.pt"
    assert main(["export", "mobilenet_v2", "--format", "torchscript", "--out", str(out),
                 "--width", "0.25", "--num-classes", "3", "--input-size", "32",
                 "--total-stride", "16"]) == 0
    assert "torchscript" in capsys.readouterr().out
    loaded = torch.jit.load(str(out))
    with torch.no_grad():
        assert loaded(torch.randn(2, 3, 32, 32)).shape == (2, 3)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["export", "no_such_model_or_file.pt", "--format", "torchscript", "--out", "x.pt"],
         "neither a model name"),
        (["export", "mobilenet_v2", "--format", "torchscript", "--out", "missing_dir/m.pt"],
         "does not exist"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, monkeypatch, capsys, argv, message) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_cli_unknown_format_exits_nonzero(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "mobilenet_v2", "--format", "keras", "--out", "m.keras"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'keras'" in capsys.readouterr().err


def test_cli_corrupt_checkpoint_is_one_line(tmp_path, capsys) -> None:
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"\x00garbage")
    assert main(["export", str(broken), "--format", "torchscript",
                 "--out", str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err
    assert "broken.pt" in err and err.count("\n") == 1
