"""Inference speed of every mobilecnn deploy path against torchvision (and timm) eager.

A thin use of :func:`mobilecnn.deploy.benchmark_backends` (what ``mobilecnn bench`` runs) with
the dev-only baselines added to the same round-robin: ``torchvision.models.mobilenet_v2`` in
eager mode (the baseline of every ratio) and, when installed, timm's ``mobilenetv2_100``.
Cases (random weights; speed does not depend on them):

* MobileNetV2 1.0, stride 32, 1000 classes at batch 1 x 224 and batch 256 x 64;
* the small-input model, MobileNetV2 1.0 with ``total_stride=16`` and 200 classes, at
  batch 1 x 64 and 256 x 64; the baselines get the same architecture by setting their stem
  convolution to stride 1.

``--peers`` adds the int8 peers of ``mobilecnn.quantize`` to the same round-robin: ONNX
Runtime's own int8 of torchvision's ONNX export (``quantize_static``, QDQ, uint8 activations,
per-channel int8 weights, calibrated on the same images) and, when ``openvino`` is installed,
OpenVINO running that same int8 file and torchvision's fp32 export.

    python benchmarks/inference.py --threads 1 --csv /tmp/inference.csv   # a busy machine
    python benchmarks/inference.py --cases 1x224 --backends optimized,onnxruntime-int8
    python benchmarks/inference.py --threads 1 --cases 1x224 --backends onnxruntime-int8 --peers
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from typing import Any

import torch
from int8_models import mobilenet_v2_with_statistics, ort_quantize_static
from torch import nn

from mobilecnn.deploy import BenchResult, benchmark_backends
from mobilecnn.deploy.bench import BACKENDS, format_table, write_csv

CASES = {  # name -> (batch, image size, total_stride, classes)
    "1x224": (1, 224, 32, 1000),
    "256x64": (256, 64, 32, 1000),
    "small-1x64": (1, 64, 16, 200),
    "small-256x64": (256, 64, 16, 200),
}


def baselines(num_classes: int, total_stride: int) -> dict[str, nn.Module]:
    """torchvision's (and timm's) MobileNetV2; for total_stride=16 their stem convolution is
    set to stride 1, which is exactly mobilecnn's ``total_stride=16`` architecture."""
    import torchvision

    tv = torchvision.models.mobilenet_v2(num_classes=num_classes).eval()
    if total_stride == 16:
        tv.features[0][0].stride = (1, 1)
    models: dict[str, nn.Module] = {"torchvision eager": tv}
    try:
        import timm
    except ImportError:
        return models
    timm_model = timm.create_model("mobilenetv2_100", num_classes=num_classes).eval()
    if total_stride == 16:
        timm_model.conv_stem.stride = (1, 1)
    models["timm eager"] = timm_model
    return models


def int8_peers(model: nn.Module, size: int, calibration: list[torch.Tensor],
               threads: int) -> dict[str, Any]:
    """ONNX Runtime's own int8 of ``model``'s ONNX export (u8 activations, per-channel s8
    weights, 8-bit: ONNX Runtime's defaults) and, with openvino installed, OpenVINO running
    that int8 file and the fp32 export. Callables on float images."""
    import tempfile
    import warnings
    from pathlib import Path

    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from mobilecnn.deploy.runtimes import ort_session

    folder = Path(tempfile.mkdtemp(prefix="peer-int8-"))
    fp32, pre, int8 = folder / "fp32.onnx", folder / "pre.onnx", folder / "int8.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (calibration[0][:1],), str(fp32), input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "batch"}},
                          dynamo=False)
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    program = ort_quantize_static(pre, int8, calibration, "input", per_channel=True,
                                  activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    session = ort_session(program, threads)
    peers: dict[str, Any] = {
        "peer: ORT int8 of torchvision": lambda x: session.run(None, {"input": x.numpy()})}
    try:
        import openvino
    except ImportError:
        return peers
    core = openvino.Core()
    config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
    for label, path in (("peer: OpenVINO int8 of torchvision", int8),
                        ("peer: OpenVINO fp32 of torchvision", fp32)):
        compiled = core.compile_model(str(path), "CPU", config)
        peers[label] = (lambda c: lambda x: c(x.numpy()))(compiled)
    return peers


def run_case(name: str, args: argparse.Namespace) -> list[BenchResult]:
    batch, size, total_stride, classes = CASES[name]
    generator = torch.Generator().manual_seed(1)
    model = mobilenet_v2_with_statistics(generator, classes, total_stride)
    label = f"mobilenet_v2 (total_stride={total_stride}, {classes} classes)"
    extra: dict[str, Any] = dict(baselines(classes, total_stride))
    # what benchmark_backends calibrates on by default, shared with the peers
    calibration = [torch.randn(batch, 3, size, size, generator=generator) for _ in range(4)]
    if args.peers:
        torchvision_model = extra["torchvision eager"]
        extra.update(int8_peers(torchvision_model, size, calibration,
                                args.threads or torch.get_num_threads()))
    return benchmark_backends(
        model, size, batch, backends=args.backends, extra=extra, calibration=calibration,
        model_name=label,
        threads=args.threads or None, warmup=args.warmup, min_reps=args.min_reps,
        max_reps=args.max_reps, budget_s=args.budget, progress=sys.stderr.isatty(),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES),
                        help=f"comma-separated, from {', '.join(CASES)} (default: all)")
    parser.add_argument("--backends", default=None,
                        help="comma-separated mobilecnn backends (default: all but compile)")
    parser.add_argument("--threads", type=int, default=0, help="default: torch's choice")
    parser.add_argument("--budget", type=float, default=30.0,
                        help="seconds of timing per case (default 30)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--min-reps", type=int, default=5)
    parser.add_argument("--max-reps", type=int, default=200)
    parser.add_argument("--csv", default=None, help="also write all rows to this CSV file")
    parser.add_argument("--peers", action="store_true",
                        help="add ONNX Runtime's and OpenVINO's int8 of torchvision's export")
    args = parser.parse_args(argv)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    if not cases or any(c not in CASES for c in cases):
        parser.error(f"--cases: choose from {', '.join(CASES)}")
    if args.backends is not None:
        args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
        if any(b not in BACKENDS for b in args.backends):
            parser.error(f"--backends: choose from {', '.join(BACKENDS)}")
    try:
        import torchvision  # noqa: F401
    except ImportError:
        parser.error("the baseline needs torchvision: pip install torchvision")
    start = time.perf_counter()
    load: Any = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, CPU "
          f"capability {torch.backends.cpu.get_cpu_capability()}, threads "
          f"{args.threads or torch.get_num_threads()}, load average at start {load}")
    everything: list[BenchResult] = []
    for name in cases:
        results = run_case(name, args)
        everything += results
        batch, size, _, _ = CASES[name]
        print(f"\n{name}: batch {batch} x 3x{size}x{size}, {results[0].model} "
              "(speed-up vs the first row, torchvision eager)")
        print(format_table(results))
    if args.csv:
        write_csv(everything, args.csv)
    print(f"\nwall time {time.perf_counter() - start:.0f} s; command: python "
          f"benchmarks/inference.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
