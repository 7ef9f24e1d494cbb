"""``benchmark_backends`` and ``mobilecnn bench``: rows, CSV columns, missing backends; tiny
sizes and a few rounds (speed itself is measured by benchmarks, not tests)."""

from __future__ import annotations

import csv

import pytest
import torch

from mobilecnn import MobileNetV2
from mobilecnn.cli import main
from mobilecnn.deploy import BenchResult, benchmark, benchmark_backends
from mobilecnn.deploy import runtimes as runtimes_module
from mobilecnn.deploy.bench import CSV_COLUMNS, format_table, plot_results, write_csv

TIMM_COLUMNS = ("model", "infer_samples_per_sec", "infer_step_time", "infer_batch_size",
                "infer_img_size", "param_count", "gmacs")


@pytest.mark.slow  # TorchScript tracing and matplotlib
@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_round_robin_rows_csv_table_and_plot(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(runtimes_module, "executorch_installed", lambda: False)
    model = MobileNetV2(width_mult=0.25, num_classes=3, total_stride=16).eval()
    calls = []

    def baseline(images: torch.Tensor) -> torch.Tensor:
        calls.append(images.shape)
        return model(images)

    results = benchmark_backends(
        model, 32, 2, backends=["eager", "optimized", "torchscript", "executorch"],
        extra={"baseline": baseline}, model_name="tiny", warmup=1, min_reps=3, max_reps=3,
        budget_s=0.0)
    assert [r.backend for r in results] == ["baseline", "eager", "optimized", "torchscript",
                                            "executorch"]
    timed, missing = results[:4], results[4]
    assert all(r.ok and len(r.step_times) == 3 and r.step_time > 0 for r in timed)
    assert len(calls) == 4 and calls[0] == (2, 3, 32, 32)  # 1 warm-up + 3 timed rounds
    assert missing.status.startswith("not installed") and "mobilecnn[edge]" in missing.status
    assert timed[3].file_bytes and timed[3].file_bytes > 10_000  # the TorchScript file
    assert timed[0].param_count == sum(p.numel() for p in model.parameters())

    path = write_csv(results, tmp_path / "bench.csv")
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == CSV_COLUMNS and CSV_COLUMNS[:7] == TIMM_COLUMNS
    assert rows[0]["speedup"] == "1.0" and rows[1]["infer_batch_size"] == "2"
    assert float(rows[2]["infer_samples_per_sec"]) == pytest.approx(
        2 / (float(rows[2]["infer_step_time"]) / 1e3), rel=0.01)  # both rounded
    assert rows[4]["status"].startswith("not installed") and rows[4]["infer_step_time"] == "nan"
    table = format_table(results)
    assert table.count("\n") == len(results) + 1 and "not installed" in table
    pytest.importorskip("matplotlib", reason="the plot needs matplotlib")
    png = plot_results(results, tmp_path / "bench.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_benchmark_by_name_and_bad_arguments() -> None:
    results = benchmark("mobilenet_v1", 32, 1, backends=["optimized"], width_mult=0.25,
                        num_classes=5, total_stride=16, warmup=0, min_reps=1, max_reps=1,
                        budget_s=0.0)
    assert isinstance(results[0], BenchResult) and results[0].model == "mobilenet_v1"
    assert results[0].gmacs > 0 and results[0].img_size == 32
    with pytest.raises(ValueError, match="unknown backend"):
        benchmark_backends(MobileNetV2(width_mult=0.25), 32, backends=["tensorrt"])
    with pytest.raises(ValueError, match="only apply to a model name"):
        benchmark(MobileNetV2(width_mult=0.25), 32, width_mult=0.5)
    if not torch.cuda.is_available():
        (row,) = benchmark_backends(MobileNetV2(width_mult=0.25), 32, backends=["cuda"],
                                    min_reps=1, max_reps=1, warmup=0)
        assert row.status == "no CUDA device" and not row.ok


def test_cli_bench_writes_csv(tmp_path, capsys) -> None:
    out = tmp_path / "bench.csv"
    assert main(["bench", "mobilenet_v2", "--width", "0.25", "--num-classes", "3",
                 "--input-size", "32", "--total-stride", "16", "--batch-size", "2",
                 "--backends", "eager,optimized", "--budget", "0.01", "--min-reps", "2",
                 "--max-reps", "2", "--warmup", "1", "--threads", "1", "--csv", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| eager | fp32 | cpu |" in printed and f"wrote {out}" in printed
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["backend"] for r in rows] == ["eager", "optimized"]
    assert all(r["threads"] == "1" and r["reps"] == "2" for r in rows)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--backends", "eager,tensorrt"], "--backends: unknown tensorrt"),
        (["--csv", "/no/such/folder/b.csv"], "give a file name in an existing folder"),
    ],
)
def test_cli_bench_errors_are_one_line(capsys, extra, message) -> None:
    assert main(["bench", "mobilenet_v2", "--width", "0.25", "--input-size", "32",
                 *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_litert_rows_without_the_extra_say_how_to_install(monkeypatch) -> None:
    monkeypatch.setattr(runtimes_module, "litert_installed", lambda: False)
    model = MobileNetV2(width_mult=0.25, num_classes=3, total_stride=16).eval()
    rows = benchmark_backends(model, 32, 1, backends=["litert", "litert-int8"], warmup=0,
                              min_reps=1, max_reps=1, budget_s=0.0)
    assert [(r.backend, r.precision) for r in rows] == [("litert", "fp32"),
                                                        ("litert-int8", "int8")]
    for row in rows:
        assert not row.ok and row.status.startswith("not installed")
        assert 'pip install "mobilecnn[litert]"' in row.status
