"""The named recipes, scaled to a small run, on the hard generated data.

Trains the ``mobilecnn demo`` model (MobileNetV2 width 0.25, SGD lr 0.1, batch 64) with each
recipe's settings through :func:`mobilecnn.train.recipe_config`, which scales the EMA decay and
warmup to the run, at equal epochs on ``make_demo_dataset(difficulty="hard")`` data, and prints
the final and best val top-1 (the EMA model's, which best.pt holds) with the scaled values.
Runs go to ``--out``, two at a time (one thread each).

    python benchmarks/recipe_fit.py                        # the documented comparison
    python benchmarks/recipe_fit.py --epochs 3 --per-class 20
"""

from __future__ import annotations

import argparse
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from hard_data import load_generated_splits, make_generated_data


def run_one(root: str, out_dir: str, recipe: str, epochs: int, seed: int) -> dict[str, Any]:
    """One run in this (worker) process, one thread; returns its figures."""
    import torch

    from mobilecnn.train import demo_config, recipe_config, train

    torch.set_num_threads(1)
    train_split, val_split = load_generated_splits(root)
    base = demo_config(out_dir=out_dir, seed=seed, progress=False, total_stride=8).to_dict()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config = recipe_config(recipe, base, train_images=len(train_split.labels),
                               epochs=epochs)
    started = time.perf_counter()
    result = train(config, train_split=train_split, val_split=val_split)
    key = "ema_val_top1" if config.ema else "val_top1"
    return {"recipe": recipe, "final": result.final[key], "best": result.best_val_top1,
            "raw_final": result.final["val_top1"], "ema_decay": config.ema_decay,
            "warmup_epochs": config.warmup_epochs, "seconds": time.perf_counter() - started,
            "note": str(caught[0].message) if caught else ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/recipe-fit"))
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--per-class", type=int, default=60)
    parser.add_argument("--val-per-class", type=int, default=20)
    parser.add_argument("--size", type=int, default=32, help="image size (32: total stride 8)")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recipes", nargs="+", default=["tinyimagenet", "tinyimagenet-strong"])
    args = parser.parse_args()
    root = make_generated_data(args.out, args.classes, args.per_class, args.val_per_class,
                               args.size)
    with ProcessPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(run_one, str(root), str(args.out / name), name, args.epochs,
                               args.seed) for name in args.recipes]
        rows = [future.result() for future in futures]
    print(f"{args.classes} classes x {args.per_class} training images, {args.size} px, "
          f"{args.epochs} epochs, seed {args.seed}")
    print("| recipe | EMA decay | warmup epochs | final val top-1 (EMA) | best | raw model "
          "final | minutes |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['recipe']} | {row['ema_decay']:g} | {row['warmup_epochs']:g} "
              f"| {100 * row['final']:.1f} % | {100 * row['best']:.1f} % "
              f"| {100 * row['raw_final']:.1f} % | {row['seconds'] / 60:.1f} |")
    for row in rows:
        if row["note"]:
            print(row["note"])


if __name__ == "__main__":
    main()
