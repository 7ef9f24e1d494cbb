"""Eval-mode inference speed: torchvision mobilenet_v2 against mobilecnn MobileNetV2.

Rows, all measured side by side in this one run (random weights, same architecture: the stock
stride-32 MobileNetV2 at width 1.0, also at 64x64):

* torchvision eager - ``torchvision.models.mobilenet_v2()``, the baseline of every ratio
* mobilecnn plain   - ``MobileNetV2().eval()``
* optimized fp32    - ``optimize_for_inference(model)``: BN folded, channels_last
* TorchScript fp32  - the frozen trace that ``export_torchscript`` writes (optimized first)
* optimized bf16    - ``optimize_for_inference(model, dtype=torch.bfloat16)``; timed only where
  the CPU has native bfloat16 (AVX512-BF16/AMX) or with ``--force-bf16``: emulated bfloat16 is
  tens of times slower. Its max relative logit difference from fp32 is always reported.

Variants are timed round-robin (one call of each in turn) so that load from other processes
hits them alike; the table gives medians. MAC/s are the model's multiply-accumulates
(``mobilecnn.mac_count``) per second, also as a fraction of the fp32 peak measured here with a
large ``torch.mm`` (2 FLOPs per MAC).

    python benchmarks/inference.py            # about 1-2 minutes on a 2-core CPU
    python benchmarks/inference.py --threads 1 --json /tmp/inference.json  # a busy machine
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from mobilecnn import MobileNetV2, mac_count
from mobilecnn.deploy import cpu_has_fast_bfloat16, optimize_for_inference

CASES = ((1, 224), (256, 64))  # (batch, image size)


def matmul_flops(seconds: float = 2.0, n: int = 2048) -> float:
    """fp32 FLOP/s of a square ``torch.mm`` (the median of repeated calls)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 3:
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times)


def time_round_robin(
    variants: dict[str, Callable[[torch.Tensor], torch.Tensor]],
    x: torch.Tensor,
    budget_s: float,
    min_reps: int,
    max_reps: int,
) -> dict[str, list[float]]:
    """Seconds per call of each variant, interleaved until the budget or ``max_reps``."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    with torch.inference_mode():
        for function in variants.values():  # warm-up: oneDNN primitive creation, allocator
            function(x)
        deadline = time.perf_counter() + budget_s
        for rep in range(max_reps):
            if rep >= min_reps and time.perf_counter() > deadline:
                break
            for name, function in variants.items():
                start = time.perf_counter()
                function(x)
                times[name].append(time.perf_counter() - start)
    return times


def max_relative_difference(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual.float() - expected.float()).abs().max() / expected.abs().max()).item()


def torchscript(model: nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    """What ``export_torchscript`` writes, without the file: trace, then freeze."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        return torch.jit.freeze(torch.jit.trace(model, example))


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torchvision

    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    native_bf16 = cpu_has_fast_bfloat16()
    time_bf16 = native_bf16 or args.force_bf16
    peak = matmul_flops()
    tv = torchvision.models.mobilenet_v2(weights=None).eval()
    plain = MobileNetV2().eval()
    # Non-trivial BatchNorm statistics, so that folding has something to get wrong.
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in plain.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.copy_(torch.randn(module.num_features, generator=generator))
                module.running_var.uniform_(0.5, 2.0, generator=generator)
    optimized = optimize_for_inference(plain)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "no native bfloat16": reported below
        bf16 = optimize_for_inference(plain, dtype=torch.bfloat16)

    results: dict[str, Any] = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "native_bf16": native_bf16,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        },
        "matmul_fp32_gflops": peak / 1e9,
        "cases": [],
    }
    for batch, size in CASES:
        x = torch.randn(batch, 3, size, size)
        macs = mac_count(plain, size) * batch
        variants: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
            "torchvision eager": tv,
            "mobilecnn plain": plain,
            "optimized fp32": optimized,
            "TorchScript fp32": torchscript(optimized, x),
        }
        if time_bf16:
            variants["optimized bf16"] = bf16
        with torch.inference_mode():
            reference = plain(x)
            fp32_diff = max_relative_difference(optimized(x), reference)
            # bf16 accuracy: on this input when timed, else on one small image (emulation is slow)
            probe = x if time_bf16 else x[:1, :, :64, :64]
            probe_reference = reference if time_bf16 else plain(probe)
            bf16_diff = max_relative_difference(bf16(probe), probe_reference)
        budget = args.budget * (0.35 if batch == 1 else 0.65)
        times = time_round_robin(variants, x, budget, args.min_reps, max_reps=200)
        baseline = statistics.median(times["torchvision eager"])
        rows = []
        for name, samples in times.items():
            median = statistics.median(samples)
            rows.append({
                "variant": name,
                "median_ms": median * 1e3,
                "images_per_s": batch / median,
                "speedup_vs_torchvision": baseline / median,
                "gmacs_per_s": macs / median / 1e9,
                "fraction_of_matmul_peak": 2 * macs / median / peak,
                "reps": len(samples),
            })
        results["cases"].append({
            "batch": batch,
            "image_size": size,
            "macs_per_batch": macs,
            "fp32_max_relative_difference": fp32_diff,
            "bf16_max_relative_difference": bf16_diff,
            "bf16_difference_input": list(probe.shape),
            "bf16_timed": time_bf16,
            "rows": rows,
        })
    return results


def print_report(results: dict[str, Any]) -> None:
    machine = results["machine"]
    print(f"torch {machine['torch']}, torchvision {machine['torchvision']}, "
          f"{machine['threads']} threads, CPU capability {machine['cpu_capability']}, "
          f"native bf16: {machine['native_bf16']}, load average at start: "
          f"{machine['load_average']}")
    load, cores = machine["load_average"], os.cpu_count() or 1
    if load is not None and load > cores and machine["threads"] > 1:
        print(f"WARNING: the machine is busy (load {load:.1f} on {cores} cores); multi-threaded "
              "timings collapse under oversubscription: rerun when it is quiet, or with "
              "--threads 1 for fair ratios")
    print(f"fp32 matmul peak (2048x2048 torch.mm): {results['matmul_fp32_gflops']:.1f} GFLOP/s")
    for case in results["cases"]:
        print()
        print(f"batch {case['batch']} x 3x{case['image_size']}x{case['image_size']} "
              f"({case['macs_per_batch'] / 1e9:.2f} GMACs per batch)")
        print("| variant | median ms | images/s | vs torchvision | GMAC/s | of matmul peak "
              "| reps |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for row in case["rows"]:
            print(f"| {row['variant']} | {row['median_ms']:.1f} | {row['images_per_s']:.1f} | "
                  f"{row['speedup_vs_torchvision']:.2f}x | {row['gmacs_per_s']:.2f} | "
                  f"{100 * row['fraction_of_matmul_peak']:.1f}% | {row['reps']} |")
        print(f"optimized fp32 max relative logit difference: "
              f"{case['fp32_max_relative_difference']:.2e}")
        shape = "x".join(str(v) for v in case["bf16_difference_input"])
        timed = "" if case["bf16_timed"] else (
            " (bf16 not timed: this CPU has no native bfloat16; --force-bf16 times it anyway)"
        )
        print(f"bf16 max relative logit difference (input {shape}): "
              f"{case['bf16_max_relative_difference']:.2e}{timed}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=40.0,
                        help="seconds of timing for both cases together (default 40)")
    parser.add_argument("--min-reps", type=int, default=3,
                        help="calls of each variant at least, budget or not (default 3)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (default: torch's choice)")
    parser.add_argument("--force-bf16", action="store_true",
                        help="time bf16 even where the CPU only emulates it (very slow)")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    if args.budget <= 0 or args.min_reps < 1:
        parser.error("--budget must be > 0 and --min-reps >= 1")
    try:
        import torchvision  # noqa: F401
    except ImportError:
        parser.error("the baseline needs torchvision: pip install torchvision")
    start = time.perf_counter()
    results = run(args)
    results["wall_s"] = time.perf_counter() - start
    print_report(results)
    print(f"\nwall time {results['wall_s']:.0f} s; command: python benchmarks/inference.py "
          + " ".join(sys.argv[1:] if argv is None else argv))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
