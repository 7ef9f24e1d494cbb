"""The ``mobilecnn`` command line: compare and summary, errors with exit status 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fault_helpers import fails, fails_writing_nothing
from mobilecnn.cli import main


def test_compare_prints_the_classic_comparison(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "--in", "128", "--out", "256", "--kernel", "3"]) == 0
    out = capsys.readouterr().out
    assert "294,912" in out and "33,920" in out and "8.69x" in out
    assert "1/N + 1/k^2" in out


def test_compare_other_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "--in", "32", "--out", "64", "--kernel", "5"]) == 0
    out = capsys.readouterr().out
    assert f"{5 * 5 * 32 * 64:,}" in out and f"{5 * 5 * 32 + 32 * 64:,}" in out


def test_summary_prints_table_and_totals(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["summary", "mobilenet_v2", "--input-size", "224", "--width", "1.0",
                 "--num-classes", "1000"])
    assert code == 0
    out = capsys.readouterr().out
    assert "Total params:      3,504,872" in out
    assert "(300.8M)" in out
    assert "features.18.conv" in out


def test_summary_small_input_variant(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "mobilenet_v1", "--input-size", "64", "--total-stride", "16",
                 "--num-classes", "200", "--width", "0.25"]) == 0
    assert "[1, 256, 4, 4]" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["summary", "resnet50"], "invalid choice: 'resnet50'"),
        (["summary", "mobilenet_v2", "--width", "-1"], "expected a positive number, got '-1'"),
        (["summary", "mobilenet_v2", "--input-size", "abc"], "expected a positive integer"),
        (["compare", "--in", "0"], "expected a positive integer, got '0'"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_library_errors_are_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("width_mult must be > 0, got 0")

    monkeypatch.setattr("mobilecnn.models.create_model", broken)
    assert main(["summary", "mobilenet_v2"]) == 2
    err = capsys.readouterr().err
    assert err == "mobilecnn: error: width_mult must be > 0, got 0\n"


def test_console_entry_points_run() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mobilecnn", "compare"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "33,920" in result.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "mobilecnn", "summary", "nope"],
        capture_output=True, text=True, check=False,
    )
    assert bad.returncode == 2
    from mobilecnn import MODELS

    choices = ", ".join(repr(name) for name in sorted(MODELS))
    assert bad.stderr.strip().splitlines() == [
        f"mobilecnn summary: error: argument MODEL: invalid choice: 'nope' (choose from "
        f"{choices}) (see 'mobilecnn summary --help')"
    ]


# ------------------------------------------------- shared options: limits, devices, paths

IMPOSSIBLE_SIZES = [
    (["compare", "--in", "100000"], "--in: expected a positive integer at most 16,384"),
    (["compare", "--kernel", "1001"], "--kernel: expected a positive integer at most 31"),
    (["compare", "--in", "16384", "--out", "16384"],
     "2,415,919,104 weights, more than the 268,435,456"),
    (["export", "mobilenet_v2", "--format", "torchscript", "--out", "m.pt", "--input-size",
      "100000"], "--input-size: expected a positive integer at most 1,024 (pixels"),
    (["bench", "mobilenet_v2", "--input-size", "100000"], "at most 1,024"),
    (["export", "mobilenet_v2", "--format", "onnx", "--out", "m.onnx", "--width", "1e6"],
     "--width: expected a positive number at most 10"),
    (["bench", "mobilenet_v2", "--width", "1e6"], "--width: expected a positive number at most"),
    (["bench", "mobilenet_v2", "--num-classes", "1e9"], "--num-classes: expected a positive "
                                                        "integer, got '1e9'"),
    (["export", "mobilenet_v2", "--format", "onnx", "--out", "m.onnx", "--num-classes",
      "1000000000"], "--num-classes: expected a positive integer at most 100,000"),
    (["summary", "mobilenet_v2", "--num-classes", "1000000000"], "at most 100,000"),
    (["bench", "mobilenet_v2", "--batch-size", "10000000"], "--batch-size: expected a positive "
                                                            "integer at most 65,536"),
    (["predict", "--checkpoint", "c.pt", "x.png", "--input-size", "100000"], "at most 1,024"),
]


@pytest.mark.parametrize(("argv", "message"), IMPOSSIBLE_SIZES, ids=lambda v: " ".join(v[:3])
                         if isinstance(v, list) else None)
def test_impossible_sizes_are_refused_before_anything_is_built(
    argv: list[str], message: str, tmp_path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was built")

    monkeypatch.setattr("mobilecnn.models.create_model", never)
    assert message in fails(argv, capsys)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_cpu_out_of_memory_is_one_line() -> None:
    from mobilecnn.cli import expected_error_message

    error = RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: "
                         "can't allocate memory: you tried to allocate 4000000000000000 bytes.")
    message = expected_error_message(error)
    assert message is not None and message.startswith("out of memory (")
    assert message.endswith("; use a smaller --batch-size, input size or model")


def _no_cuda() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA, so asking for it is not an error here")


def _no_mps() -> None:
    import torch

    if torch.backends.mps.is_available():
        pytest.skip("this machine has MPS, so asking for it is not an error here")


DEVICE_CASES = [
    (["bench", "mobilenet_v2", "--device", "cuda"], _no_cuda,
     "device 'cuda' asked for CUDA, which is not available here; use --device cpu or auto"),
    (["bench", "mobilenet_v2", "--backends", "eager,cuda-amp"], _no_cuda,
     "--backends cuda-amp: GPU rows need CUDA, which is not available here"),
    (["bench", "mobilenet_v2", "--device", "mps"], _no_mps, "asked for Apple's MPS"),
    (["bench", "mobilenet_v2", "--device", "meta"], None,
     "argument --device: device 'meta' holds shapes but no data"),
    (["eval", "--checkpoint", "c.pt", "--data", "d", "--device", "mps"], _no_mps,
     "device 'mps' asked for Apple's MPS, which is not available here"),
    (["eval", "--checkpoint", "c.pt", "--data", "d", "--device", "meta"], None,
     "argument --device: device 'meta'"),
    (["predict", "--checkpoint", "c.pt", "x.png", "--device", "mps"], _no_mps,
     "asked for Apple's MPS"),
    (["predict", "--checkpoint", "c.pt", "x.png", "--device", "gpu"], None,
     "argument --device: device 'gpu' is not a device; use auto (CUDA, then MPS, then CPU)"),
    (["train", "--data", "demo", "--device", "meta"], None, "argument --device: device 'meta'"),
    (["train", "--data", "demo", "--device", "mps"], _no_mps, "asked for Apple's MPS"),
    (["train", "--data", "demo", "--device", "cuda:0"], _no_cuda, "asked for CUDA"),
]


@pytest.mark.parametrize(("argv", "skip", "message"), DEVICE_CASES,
                         ids=[" ".join(case[0][:1] + case[0][-2:]) for case in DEVICE_CASES])
def test_an_unavailable_device_is_one_line_and_writes_nothing(
    argv: list[str], skip, message: str, tmp_path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    if skip is not None:
        skip()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.pt").write_bytes(b"not read: the device is checked first")
    (tmp_path / "x.png").write_bytes(b"")
    before = sorted(tmp_path.iterdir())
    assert message in fails(argv, capsys)
    assert sorted(tmp_path.iterdir()) == before


@pytest.mark.parametrize(("argv", "message"), [
    (["bench", "mobilenet_v2", "--backends", "eager,,"],
     "--backends: an empty name in 'eager,,'; give comma-separated names from eager,"),
    (["bench", "mobilenet_v2", "--backends", ""], "--backends: an empty name in ''"),
    (["bench", "mobilenet_v2", "--csv", ""], "argument --csv: expected a path, got ''"),
    (["export", "mobilenet_v2", "--format", "onnx", "--out", ""],
     "argument --out: expected a path, got ''; give a file or folder name"),
    (["export", "mobilenet_v2", "--format", "torchscript", "--out", "m.pt", "--int8"],
     "--int8 works with --format onnx, pte or tflite (torchscript int8 is not supported)"),
])
def test_empty_and_wrong_values_are_refused(
    argv: list[str], message: str, tmp_path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    assert message in fails_writing_nothing(argv, tmp_path, monkeypatch, capsys)


def _checkpoint_declaring(tmp_path, **changes: object):
    """A real tiny checkpoint whose recorded entries are then edited by hand."""
    import torch

    from mobilecnn import MobileNetV2
    from mobilecnn.train.checkpoints import save_checkpoint

    kwargs = {"width_mult": 0.25, "num_classes": 3, "total_stride": 8}
    path = save_checkpoint({"model_name": "mobilenet_v2", "model_kwargs": kwargs,
                            "model": MobileNetV2(**kwargs).state_dict(),
                            "classes": ["a", "b", "c"], "class_names": ["a", "b", "c"],
                            "epoch": 1, "image_size": 32}, tmp_path / "declared.pt")
    values = torch.load(path, weights_only=True)
    for key, value in changes.items():
        if key in kwargs:
            values["model_kwargs"][key] = value
        else:
            values[key] = value
    torch.save(values, path)
    return path


@pytest.mark.parametrize(("changes", "message"), [
    ({"image_size": 100_000}, "image_size must be at most 4,096 (pixels; a decoded image that "
                              "size is 50 MB), got 100000; the file is damaged or not from"),
    ({"width_mult": 1e6}, "width_mult must be at most 10"),
    ({"num_classes": 10**9}, "num_classes must be at most 100,000"),
    ({"image_size": 2048}, "records must be at most 1,024 (pixels; larger inputs need "
                           "gigabytes of activations), got 2048; pass a smaller --input-size"),
])
def test_sizes_a_checkpoint_declares_are_bounded_when_it_is_read(
    changes: dict, message: str, tmp_path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    path = _checkpoint_declaring(tmp_path, **changes)

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was built")

    if "image_size" not in changes:
        monkeypatch.setattr("mobilecnn.models.create_model", never)
        monkeypatch.setattr("mobilecnn.train.checkpoints.create_model", never)
    before = sorted(tmp_path.iterdir())
    line = fails(["export", str(path), "--format", "torchscript", "--out",
                  str(tmp_path / "m.pt")], capsys)
    assert message in line and str(path) in line
    assert sorted(tmp_path.iterdir()) == before
    if changes.get("image_size") != 2048:
        assert message in fails(["predict", "--checkpoint", str(path), str(path)], capsys)


def test_progress_is_spelled_one_way_everywhere() -> None:
    from mobilecnn.cli import build_parser
    from mobilecnn.cli.options import show_progress

    parser = build_parser()
    for command in (["prepare", "--data", "d"], ["download", "tiny-imagenet", "--root", "r"],
                    ["bench", "mobilenet_v2"], ["demo"], ["train"]):
        assert parser.parse_args([*command, "--progress"]).progress is True
        off = parser.parse_args([*command, "--no-progress"])
        assert off.progress is False and show_progress(off) is False
    assert build_parser().parse_args(["prepare", "--data", "d"]).progress is None  # terminal
