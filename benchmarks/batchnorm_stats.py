"""Do a checkpoint's BatchNorm running statistics fit its weights, and what does fixing them cost?

For each checkpoint prints its val top-1 three ways - in eval mode as saved, with each batch's
own statistics (batch 64), and after recomputing the running statistics over ``--images``
training images (``mobilecnn.train.batchnorm_stats``) - and the time that recomputation took,
beside the run's mean epoch time (from the checkpoint's history).

    python benchmarks/batchnorm_stats.py --data DIR runs/a/last.pt runs/b/last.pt
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def measure(checkpoint: Path, data: str, images: int, batch_size: int) -> dict[str, float]:
    import torch

    from mobilecnn.data import BatchAugment, load_cache, prepare_cache
    from mobilecnn.train.batchnorm_stats import calibration_batches, recalibrate_batchnorm
    from mobilecnn.train.checkpoints import load_model
    from mobilecnn.train.evaluation import evaluate, with_batch_statistics

    model, saved = load_model(checkpoint)
    val = load_cache(prepare_cache(data, "val"), verify=False)
    train = load_cache(prepare_cache(data, "train"), verify=False)
    kwargs = {"mean": saved["mean"], "std": saved["std"], "batch_size": batch_size}
    eval_mode = evaluate(model, val.images, val.labels, **kwargs).top1_acc
    batch_stats = evaluate(with_batch_statistics(model), val.images, val.labels,
                           **kwargs).top1_acc
    normalize = BatchAugment(train=False, crop="none", flip=False, mean=tuple(saved["mean"]),
                             std=tuple(saved["std"]))
    started = time.perf_counter()
    recalibrate_batchnorm(model, calibration_batches(train.images, normalize,
                                                     torch.device("cpu"), count=images,
                                                     batch_size=batch_size))
    seconds = time.perf_counter() - started
    recalibrated = evaluate(model, val.images, val.labels, **kwargs).top1_acc
    history = saved.get("history") or []
    epoch = (sum(row["epoch_seconds"] for row in history) / len(history)) if history else 0.0
    return {"eval_mode": eval_mode, "batch_stats": batch_stats, "recalibrated": recalibrated,
            "recalibrate_seconds": seconds, "epoch_seconds": epoch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--data", required=True, help="the run's data folder")
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    print("| checkpoint | eval mode | batch statistics | recalibrated | recalibration s "
          "| epoch s |")
    print("|---|---|---|---|---|---|")
    for path in args.checkpoints:
        row = measure(path, args.data, args.images, args.batch_size)
        print(f"| {path} | {100 * row['eval_mode']:.1f} % | {100 * row['batch_stats']:.1f} % "
              f"| {100 * row['recalibrated']:.1f} % | {row['recalibrate_seconds']:.1f} "
              f"| {row['epoch_seconds']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
