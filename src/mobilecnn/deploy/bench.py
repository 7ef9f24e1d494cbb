"""Inference speed of one model on every backend of this machine, timed side by side.

:func:`benchmark_backends` builds each backend (PyTorch eager and optimized, TorchScript,
``torch.compile`` when asked, ONNX Runtime, ExecuTorch and LiteRT fp32/int8, int8 PyTorch, CUDA
eager/AMP where a GPU exists), then times them round-robin (one call of each in turn, after a
warm-up) so that load from other processes hits them alike, and returns one
:class:`BenchResult` per backend with the median step time and its spread. A backend whose
package is missing gets a row saying ``not installed`` instead of a traceback.
:func:`write_csv` writes timm's benchmark columns plus ours; :func:`format_table` and
:func:`plot_results` present them. ``mobilecnn bench`` is the command line.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import io
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..counting import mac_count, param_count
from ..fileio import atomic_path, write_text_atomic
from .backends import BACKENDS
from .fold import optimize_for_inference
from .runtimes import RuntimeModel

__all__ = ["BACKENDS", "CSV_COLUMNS", "BenchResult", "benchmark", "benchmark_backends",
           "format_table", "plot_results", "write_csv"]

Runner = Callable[[torch.Tensor], Any]


_PRECISION = {"onnxruntime-int8": "int8", "executorch-int8": "int8", "pytorch-int8": "int8",
              "litert-int8": "int8",
              "cuda-amp": "amp", "cuda-compile": "amp"}

CSV_COLUMNS = ("model", "infer_samples_per_sec", "infer_step_time", "infer_batch_size",
               "infer_img_size", "param_count", "gmacs", "backend", "precision", "device",
               "threads", "file_bytes", "infer_step_time_q1", "infer_step_time_q3", "reps",
               "speedup", "status")
"""timm's benchmark columns (``infer_step_time`` in ms, ``param_count`` in millions,
``gmacs`` per image) followed by mobilecnn's."""


@dataclass(frozen=True)
class BenchResult:
    """One backend's timing: ``step_times`` are seconds per batch (empty if not run)."""

    model: str
    backend: str
    precision: str
    device: str
    threads: int
    batch_size: int
    img_size: int
    param_count: int
    gmacs: float
    step_times: list[float] = field(default_factory=list)
    file_bytes: int | None = None
    status: str = "ok"
    """``"ok"``, ``"not installed: ..."``, ``"no CUDA device"`` or ``"failed: ..."``."""

    @property
    def ok(self) -> bool:
        """Whether it was timed."""
        return bool(self.step_times)

    @property
    def step_time(self) -> float:
        """Median seconds per batch (``nan`` if not timed)."""
        return statistics.median(self.step_times) if self.step_times else float("nan")

    @property
    def samples_per_sec(self) -> float:
        """Images per second at the median step time."""
        return self.batch_size / self.step_time if self.step_times else float("nan")

    def quartiles(self) -> tuple[float, float]:
        """First and third quartile of the step times, in seconds (the spread)."""
        if len(self.step_times) < 2:
            return (self.step_time, self.step_time)
        q1, _, q3 = statistics.quantiles(self.step_times, n=4, method="inclusive")
        return (q1, q3)

    def row(self, baseline: BenchResult | None = None) -> dict[str, Any]:
        """The CSV row (:data:`CSV_COLUMNS`); ``speedup`` is relative to ``baseline``."""
        q1, q3 = self.quartiles()
        speedup = (baseline.step_time / self.step_time
                   if baseline is not None and baseline.ok and self.ok else float("nan"))
        return {
            "model": self.model, "infer_samples_per_sec": round(self.samples_per_sec, 2),
            "infer_step_time": round(self.step_time * 1e3, 3),
            "infer_batch_size": self.batch_size, "infer_img_size": self.img_size,
            "param_count": round(self.param_count / 1e6, 3), "gmacs": round(self.gmacs, 4),
            "backend": self.backend, "precision": self.precision, "device": self.device,
            "threads": self.threads, "file_bytes": "" if self.file_bytes is None
            else self.file_bytes, "infer_step_time_q1": round(q1 * 1e3, 3),
            "infer_step_time_q3": round(q3 * 1e3, 3), "reps": len(self.step_times),
            "speedup": round(speedup, 3), "status": self.status,
        }


# --------------------------------------------------------------------------- builders


def _fp32_runtime(file_format: str, model: nn.Module, size: int, batch: int) -> RuntimeModel:
    """The fp32 file ``export_onnx`` / ``export_executorch`` / ``export_tflite`` writes, loaded."""
    from .export import export_executorch, export_onnx
    from .litert import export_tflite

    with tempfile.TemporaryDirectory(prefix="mobilecnn-bench-") as folder:
        path = Path(folder) / f"model.{file_format}"
        if file_format == "onnx":
            export_onnx(model, path, size)
        elif file_format == "pte":
            export_executorch(model, path, size, batch_size=batch)
        else:
            export_tflite(model, path, size, batch_size=batch)
        return RuntimeModel(path.read_bytes(), file_format, "fp32")


def _pytorch_int8(model: nn.Module, calibration: list[torch.Tensor]) -> nn.Module:
    from .runtimes import require_executorch

    require_executorch()  # torchao comes with the edge extra
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as x86
    from torchao.quantization.pt2e.lowering import lower_pt2e_quantized_to_x86
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from .export import exported_program

    quantizer = x86.X86InductorQuantizer()
    quantizer.set_global(x86.get_default_x86_inductor_quantization_config())
    folded = optimize_for_inference(model, channels_last=False)
    example = calibration[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_pt2e(exported_program(folded, example).module(), quantizer)
        with torch.no_grad():
            for batch in calibration:
                prepared(batch)
            return lower_pt2e_quantized_to_x86(convert_pt2e(prepared), (example,))


def _build(name: str, model: nn.Module, size: int, batch: int,
           calibration: list[torch.Tensor]) -> tuple[Runner, int | None]:
    """The function to time for backend ``name`` and the size of its file (if it has one)."""
    from .quantize import quantize

    if name == "eager":
        return model, None
    if name == "optimized":
        return optimize_for_inference(model), None
    if name == "torchscript":
        example = torch.randn(batch, 3, size, size)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            frozen = torch.jit.freeze(torch.jit.trace(optimize_for_inference(model), example))
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.jit.save(frozen, buffer)
        return frozen, buffer.getbuffer().nbytes
    if name == "compile":
        return torch.compile(optimize_for_inference(model)), None
    if name in ("onnxruntime", "executorch", "litert"):
        runtime = _fp32_runtime({"onnxruntime": "onnx", "executorch": "pte",
                                 "litert": "tflite"}[name], model, size, batch)
        return runtime, runtime.file_bytes
    if name in ("onnxruntime-int8", "executorch-int8", "litert-int8"):
        backend = {"onnxruntime-int8": "onnxruntime", "executorch-int8": "xnnpack",
                   "litert-int8": "litert"}[name]
        quantized = quantize(model, calibration, backend=backend)
        return quantized, quantized.file_bytes
    if name == "pytorch-int8":
        return _pytorch_int8(model, calibration), None
    if name.startswith("cuda"):
        return _cuda_runner(model, optimized=name != "cuda-eager",
                            amp=name in ("cuda-amp", "cuda-compile"),
                            compiled=name == "cuda-compile"), None
    raise ValueError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")


def _cuda_runner(model: nn.Module, *, optimized: bool, amp: bool, compiled: bool) -> Runner:
    if not torch.cuda.is_available():
        raise LookupError("no CUDA device")
    on_gpu = copy.deepcopy(model).cuda().eval()
    gpu_model: Any = optimize_for_inference(on_gpu) if optimized else on_gpu
    if compiled:
        gpu_model = torch.compile(gpu_model)
    amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    @torch.inference_mode()
    def run(images: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cuda", dtype=amp_dtype, enabled=amp):
            out = gpu_model(images.cuda(non_blocking=True))
        torch.cuda.synchronize()
        return out

    return run


# --------------------------------------------------------------------------- timing


def _time_round_robin(runners: Mapping[str, Runner], images: torch.Tensor, *, warmup: int,
                      min_reps: int, max_reps: int, budget_s: float, progress: bool
                      ) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in runners}
    bar = _progress_bar(max_reps, progress)
    with torch.inference_mode():
        for _ in range(warmup):
            for runner in runners.values():
                runner(images)
        deadline = time.perf_counter() + budget_s
        for rep in range(max_reps):
            if rep >= min_reps and time.perf_counter() > deadline:
                break
            for name, runner in runners.items():
                start = time.perf_counter()
                runner(images)
                times[name].append(time.perf_counter() - start)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return times


def _progress_bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # the data extra brings tqdm; no bar without it
        return None
    return tqdm(total=total, desc="round-robin", unit="round", leave=False)


def _status_of(error: BaseException) -> str:
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if isinstance(error, ImportError):
        return f"not installed: {first}"
    if isinstance(error, LookupError):
        return first
    return f"failed: {type(error).__name__}: {first[:200]}"


def benchmark_backends(
    model: nn.Module,
    input_size: int = 224,
    batch_size: int = 1,
    *,
    backends: Sequence[str] | None = None,
    extra: Mapping[str, Runner] | None = None,
    model_name: str | None = None,
    calibration: Sequence[torch.Tensor] | None = None,
    threads: int | None = None,
    warmup: int = 2,
    min_reps: int = 3,
    max_reps: int = 200,
    budget_s: float = 20.0,
    progress: bool = False,
) -> list[BenchResult]:
    """Time ``model`` on each backend in ``backends`` (default: all but ``compile`` and
    ``cuda-compile``; see :data:`BACKENDS`) at ``batch_size`` x 3 x ``input_size`` x ``input_size``.

    ``extra`` adds other callables (e.g. a torchvision baseline) to the same round-robin.
    Int8 backends calibrate on ``calibration`` (default: 4 batches of random normal images,
    enough for timing, not for accuracy). ``threads`` sets torch's and the runtimes' threads.
    Timing runs after ``warmup`` rounds until ``budget_s`` seconds have passed (at least
    ``min_reps``, at most ``max_reps`` rounds). Backends that are not installed or fail to
    build are returned with their ``status`` and no times.
    """
    if threads:
        torch.set_num_threads(threads)
    model = copy.deepcopy(model).cpu().float().eval()
    names = (list(backends) if backends is not None
             else [n for n in BACKENDS if n not in ("compile", "cuda-compile")])
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        raise ValueError(f"unknown backend(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(BACKENDS)}")
    if min_reps < 1 or max_reps < min_reps or warmup < 0 or budget_s < 0:
        raise ValueError("need warmup >= 0, 1 <= min_reps <= max_reps and budget_s >= 0")
    generator = torch.Generator().manual_seed(0)
    shape = (batch_size, 3, input_size, input_size)
    calib = (list(calibration) if calibration is not None
             else [torch.randn(shape, generator=generator) for _ in range(4)])
    label = model_name or type(model).__name__
    common: dict[str, Any] = {
        "model": label, "threads": torch.get_num_threads(), "batch_size": batch_size,
        "img_size": input_size, "param_count": param_count(model),
        "gmacs": mac_count(model, input_size) / 1e9,
    }
    runners: dict[str, Runner] = {}
    results: dict[str, BenchResult] = {}
    for name in names:
        device = "cuda" if name.startswith("cuda") else "cpu"
        precision = _PRECISION.get(name, "fp32")
        try:
            runners[name], size = _build(name, model, input_size, batch_size, calib)
            results[name] = BenchResult(backend=name, precision=precision, device=device,
                                        file_bytes=size, **common)
        except (ImportError, LookupError, Exception) as error:  # noqa: B014 - report, go on
            results[name] = BenchResult(backend=name, precision=precision, device=device,
                                        status=_status_of(error), **common)
    for name, runner in (extra or {}).items():
        runners[name] = runner
        precision = "int8" if "int8" in name else "fp32"  # a peer's name says its precision
        results[name] = BenchResult(backend=name, precision=precision, device="cpu", **common)
    images = torch.randn(shape, generator=generator)
    times = _time_round_robin(runners, images, warmup=warmup, min_reps=min_reps,
                              max_reps=max_reps, budget_s=budget_s, progress=progress)
    ordered = [*(extra or {}), *names]
    return [dataclasses.replace(results[n], step_times=times.get(n, [])) for n in ordered]


def benchmark(
    name_or_model: str | nn.Module,
    input_size: int = 224,
    batch_size: int = 1,
    **kwargs: Any,
) -> list[BenchResult]:
    """:func:`benchmark_backends` for a model name from ``MODELS`` (random weights; model
    options such as ``width_mult``, ``num_classes``, ``total_stride`` go in ``kwargs``
    besides ``benchmark_backends``' own keywords) or a model instance."""
    from inspect import signature

    from ..models import create_model

    own = set(signature(benchmark_backends).parameters)
    bench_kwargs = {k: v for k, v in kwargs.items() if k in own}
    model_kwargs = {k: v for k, v in kwargs.items() if k not in own}
    model: nn.Module
    if isinstance(name_or_model, str):
        model = create_model(name_or_model, **model_kwargs).eval()
        bench_kwargs.setdefault("model_name", name_or_model)
    elif model_kwargs:
        raise ValueError(f"{', '.join(model_kwargs)} only apply to a model name")
    else:
        model = name_or_model
    return benchmark_backends(model, input_size, batch_size, **bench_kwargs)


# --------------------------------------------------------------------------- output


def _baseline(results: Sequence[BenchResult], of: BenchResult) -> BenchResult | None:
    """The first timed result of the same case (model, batch and image size) as ``of``."""
    return next((r for r in results if r.ok and (r.model, r.batch_size, r.img_size)
                 == (of.model, of.batch_size, of.img_size)), None)


def write_csv(results: Sequence[BenchResult], path: str | os.PathLike[str]) -> Path:
    """Write one row per result (:data:`CSV_COLUMNS`) atomically; ``speedup`` is relative to
    the first timed row of the same model, batch size and image size."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for result in results:
        writer.writerow(result.row(_baseline(results, result)))
    return write_text_atomic(path, buffer.getvalue())


def format_table(results: Sequence[BenchResult]) -> str:
    """A Markdown table of the results, speed-ups relative to the first timed row of the same
    model, batch size and image size."""
    lines = ["| backend | precision | device | median ms | spread (q1-q3) ms | images/s "
             "| speed-up | file MB | reps |", "| --- | --- | --- | ---: | ---: | ---: | ---: "
             "| ---: | ---: |"]
    for result in results:
        if not result.ok:
            lines.append(f"| {result.backend} | {result.precision} | {result.device} | "
                         f"{result.status} | | | | | |")
            continue
        row = result.row(_baseline(results, result))
        size = "" if result.file_bytes is None else f"{result.file_bytes / 1e6:.2f}"
        lines.append(f"| {result.backend} | {result.precision} | {result.device} | "
                     f"{row['infer_step_time']:.2f} | {row['infer_step_time_q1']:.2f}-"
                     f"{row['infer_step_time_q3']:.2f} | {row['infer_samples_per_sec']:.1f} | "
                     f"{row['speedup']:.2f}x | {size} | {row['reps']} |")
    return "\n".join(lines)


def plot_results(results: Sequence[BenchResult], path: str | os.PathLike[str]) -> Path:
    """A horizontal bar chart of images/s per timed backend, written atomically as PNG.
    Needs matplotlib (``pip install "mobilecnn[plot]"``)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError('the bar chart needs matplotlib: pip install "mobilecnn[plot]"') \
            from None
    timed = [r for r in results if r.ok]
    if not timed:
        raise ValueError("no backend was timed, nothing to plot")
    figure, axes = plt.subplots(figsize=(7, 0.45 * len(timed) + 1.2))
    axes.barh([f"{r.backend} ({r.precision})" for r in timed],
              [r.samples_per_sec for r in timed], color="tab:blue")
    axes.invert_yaxis()
    axes.set_xlabel("images / s (median)")
    first = timed[0]
    axes.set_title(f"{first.model}, batch {first.batch_size} x {first.img_size}px, "
                   f"{first.threads} threads")
    figure.tight_layout()
    out = Path(path)
    with atomic_path(out) as temporary:
        figure.savefig(temporary, format="png", dpi=100)
    plt.close(figure)
    return out
