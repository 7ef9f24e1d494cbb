"""Ablation of the training ingredients on the hard generated data, at equal epochs.

Trains the small-input MobileNetV2 with the ``mobilecnn demo`` recipe (SGD, lr 0.1, batch 64,
pad-crop + flip) and that recipe plus one ingredient at a time, over several seeds:

    baseline | +EMA | +Mixup/CutMix | +RandAugment | +distillation from a wider teacher

and prints mean and spread of the final val top-1 (for +EMA: the EMA model's). The teacher is
the same recipe at a larger width, trained once (seed 0) before the distillation runs.
Runs go to ``--out``; two run in parallel by default (one thread each).

    python benchmarks/recipes.py                       # the documented ablation (~40 CPU-min)
    python benchmarks/recipes.py --epochs 2 --seeds 1  # a quick look
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import time
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from hard_data import load_generated_splits, make_generated_data

ABLATION: dict[str, dict[str, Any]] = {
    "baseline": {},
    "+EMA": {"ema": True},
    "+Mixup/CutMix": {"mixup_alpha": 0.2, "cutmix_alpha": 1.0},
    "+RandAugment": {"auto_augment": "randaugment"},
    "+distillation": {"teacher": "TEACHER", "distill_alpha": 0.5, "distill_temperature": 4.0},
}


def run_one(root: str, out_dir: str, options: dict[str, Any], seed: int, epochs: int,
            total_stride: int) -> dict[str, Any]:
    """One training run in this (worker) process, one thread; returns its final figures."""
    import torch

    from mobilecnn.train import demo_config, train

    torch.set_num_threads(1)
    train_split, val_split = load_generated_splits(root)
    config = demo_config(out_dir=out_dir, epochs=epochs, seed=seed, progress=False,
                         total_stride=total_stride, **options)
    started = time.perf_counter()
    result = train(config, train_split=train_split, val_split=val_split)
    final = result.final
    top1 = final.get("ema_val_top1", final["val_top1"])
    return {"val_top1": top1, "raw_val_top1": final["val_top1"],
            "seconds": time.perf_counter() - started, "out_dir": out_dir}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/ablation"))
    parser.add_argument("--classes", type=int, default=50)
    parser.add_argument("--per-class", type=int, default=80)
    parser.add_argument("--val-per-class", type=int, default=20)
    parser.add_argument("--size", type=int, default=32, help="image size (32: total stride 8)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--teacher-width", type=float, default=0.5)
    parser.add_argument("--ema-decay", type=float, default=0.99,
                        help="short runs need a short average (default 0.99: a half-life of "
                             "~70 steps)")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    total_stride = 8 if args.size <= 32 else 16
    started = time.perf_counter()
    root = make_generated_data(args.out, args.classes, args.per_class, args.val_per_class,
                               args.size)
    print(f"data: {root} ({args.classes} classes, {args.per_class} train / "
          f"{args.val_per_class} val per class, {args.size}px); width {args.width}, "
          f"{args.epochs} epochs, seeds 0..{args.seeds - 1}", flush=True)
    base = {"width": args.width, "ema_decay": args.ema_decay}

    context = multiprocessing.get_context("spawn")
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in ABLATION}
    with ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
        teacher_dir = args.out / "teacher"
        teacher = pool.submit(run_one, str(root), str(teacher_dir),
                              {**base, "width": args.teacher_width}, 0, args.epochs,
                              total_stride)
        pending: list[tuple[str, Future]] = []
        for seed in range(args.seeds):
            for name, options in ABLATION.items():
                if "teacher" in options:
                    continue
                out_dir = args.out / f"{name.strip('+').replace('/', '-')}-seed{seed}"
                pending.append((name, pool.submit(run_one, str(root), str(out_dir),
                                                  {**base, **options}, seed, args.epochs,
                                                  total_stride)))
        teacher_result = teacher.result()
        print(f"teacher (width {args.teacher_width}): val top-1 "
              f"{100 * teacher_result['val_top1']:.1f}%", flush=True)
        for seed in range(args.seeds):
            options = {**ABLATION["+distillation"],
                       "teacher": str(teacher_dir / "last.pt")}
            out_dir = args.out / f"distillation-seed{seed}"
            pending.append(("+distillation", pool.submit(
                run_one, str(root), str(out_dir), {**base, **options}, seed, args.epochs,
                total_stride)))
        for name, future in pending:
            outcome = future.result()
            results[name].append(outcome)
            print(f"{name:<16} {100 * outcome['val_top1']:.1f}%  ({outcome['seconds']:.0f} s)",
                  flush=True)

    print(f"\nfinal val top-1 over {args.seeds} seeds (teacher width {args.teacher_width}: "
          f"{100 * teacher_result['val_top1']:.1f}%), {time.perf_counter() - started:.0f} s "
          "in all")
    print("| recipe | mean val top-1 (%) | min - max (%) | seeds |")
    print("|---|---|---|---|")
    baseline = statistics.mean(r["val_top1"] for r in results["baseline"])
    for name, outcomes in results.items():
        values = [100 * r["val_top1"] for r in outcomes]
        delta = "" if name == "baseline" else f" ({statistics.mean(values) - 100 * baseline:+.1f})"
        print(f"| {name} | {statistics.mean(values):.1f}{delta} | {min(values):.1f} - "
              f"{max(values):.1f} | {len(values)} |")
    (args.out / "ablation.json").write_text(json.dumps(
        {"args": {k: str(v) for k, v in vars(args).items()}, "teacher": teacher_result,
         "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
