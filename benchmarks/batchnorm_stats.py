"""Do a checkpoint's BatchNorm running statistics fit its weights, and what does fixing them cost?

For each checkpoint prints its val top-1 three ways - in eval mode as saved, with each batch's
own statistics (batch 64), and after recomputing the running statistics over ``--images``
training images (``mobilecnn.train.batchnorm_stats``) - and the time that recomputation took,
beside the run's mean epoch time (from the checkpoint's history).

    python benchmarks/batchnorm_stats.py --data DIR runs/a/last.pt runs/b/last.pt

``--cost`` instead times, in one process and alternating, training steps and the
recomputation over the same number of images (batches of 64) for each model of the family,
and prints the ratio: the recomputation's cost per epoch is that ratio times
``1024 / training images`` (twice that with EMA).

    python benchmarks/batchnorm_stats.py --cost --size 64
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


def cost(name: str, size: int, width: float, images: int, repeats: int) -> float:
    """Seconds of recomputing the statistics over ``images`` images divided by the seconds
    of training steps over as many images (median of ``repeats`` alternating rounds)."""
    import statistics

    import torch

    from mobilecnn import create_model
    from mobilecnn.train.batchnorm_stats import recalibrate_batchnorm

    model = create_model(name, num_classes=10, width_mult=width,
                         total_stride=16 if size >= 64 else 8)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    batches = [torch.randn(64, 3, size, size) for _ in range(images // 64)]
    labels = torch.randint(0, 10, (64,))
    ratios = []
    for _ in range(repeats):
        model.train()
        started = time.perf_counter()
        for inputs in batches:
            loss = torch.nn.functional.cross_entropy(model(inputs), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        train_seconds = time.perf_counter() - started
        started = time.perf_counter()
        recalibrate_batchnorm(model, batches)
        ratios.append((time.perf_counter() - started) / train_seconds)
    return statistics.median(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="*", type=Path)
    parser.add_argument("--data", help="the run's data folder")
    parser.add_argument("--cost", action="store_true")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="*", help="default: every registered model")
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.cost:
        from mobilecnn import MODELS

        print(f"| model | recomputing {args.images} images / training on {args.images} images |")
        print("|---|---|")
        for name in args.models or sorted(MODELS):
            ratio = cost(name, args.size, args.width, args.images, args.repeats)
            print(f"| {name} | {ratio:.2f} |", flush=True)
        return
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
