"""Images per second of strong augmentation: mobilecnn's batch RandAugment / TrivialAugmentWide
against torchvision.transforms.v2 applied per image in DataLoader workers.

Both start from the same decoded uint8 64x64 images in memory (decoding is not timed: see
benchmarks/data.py for that) and produce normalized float32 batches with random-resized crop,
flip, the policy and random erasing. The two are timed in alternating rounds in one process,
so machine load hits both alike; the ratio is the figure to read.

    python benchmarks/augment.py                     # 4096 images, batch 256, CPU
    python benchmarks/augment.py --threads 1         # batch path on 1 thread vs 2+ workers
    python benchmarks/augment.py --device cuda       # the batch path on a GPU
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch
from torch.utils.data import DataLoader, Dataset

from mobilecnn.data import (
    TINYIMAGENET_MEAN,
    TINYIMAGENET_STD,
    BatchAugment,
    CachedBatchLoader,
    RandAugment,
    RandomErasing,
    TrivialAugmentWide,
)


class PerImage(Dataset[tuple[torch.Tensor, int]]):
    """uint8 images in memory, each transformed on its own (the usual torchvision path)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Callable) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images[index]), int(self.labels[index])


def torchvision_transform(policy: str, size: int) -> Callable:
    from torchvision.transforms import v2

    chosen = v2.RandAugment() if policy == "randaugment" else v2.TrivialAugmentWide()
    return v2.Compose([
        v2.RandomResizedCrop(size, scale=(0.35, 1.0), antialias=True),
        v2.RandomHorizontalFlip(),
        chosen,
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(TINYIMAGENET_MEAN, TINYIMAGENET_STD),
        v2.RandomErasing(p=0.25),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None,
                        help="DataLoader workers for torchvision (default: all cores)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads of the batch path (default: torch's choice; on a "
                             "busy machine 1 avoids threads waiting for each other)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    workers = args.workers if args.workers is not None else len(os.sched_getaffinity(0))
    device = torch.device(args.device)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.images, 3, args.size, args.size), dtype=torch.uint8,
                           generator=generator)
    labels = torch.randint(0, 200, (args.images,), generator=generator)
    print(f"torch {torch.__version__}, {len(os.sched_getaffinity(0))} cores, "
          f"{torch.get_num_threads()} torch threads, {workers} DataLoader workers, device "
          f"{device}, {args.images} images {args.size}x{args.size}, batch {args.batch_size}")

    candidates: dict[str, Callable[[], int]] = {}
    for policy, ours in (("randaugment", RandAugment()), ("trivialaugment", TrivialAugmentWide())):
        augment = BatchAugment(train=True, crop="resized", auto_augment=ours,
                               erasing=RandomErasing(prob=0.25, mode="const"))
        loader = CachedBatchLoader(images, labels, args.batch_size, seed=0)

        def batch_path(augment: BatchAugment = augment, loader: CachedBatchLoader = loader) -> int:
            count = 0
            for batch, _ in loader:
                out = augment(batch.to(device), generator=generator)
                count += out.shape[0]
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            return count

        per_image = DataLoader(PerImage(images, labels, torchvision_transform(policy, args.size)),
                               batch_size=args.batch_size, shuffle=True, num_workers=workers,
                               persistent_workers=workers > 0)

        def worker_path(per_image: DataLoader = per_image) -> int:
            count = 0
            for batch, _ in per_image:
                count += batch.to(device).shape[0]
            return count

        candidates[f"mobilecnn batch {policy}"] = batch_path
        candidates[f"torchvision v2 per image {policy}"] = worker_path

    for run in candidates.values():  # warm up (and start the persistent workers)
        run()
    rates: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(args.rounds):
        for name, run in candidates.items():
            started = time.perf_counter()
            count = run()
            rates[name].append(count / (time.perf_counter() - started))
    print(f"\nmedian of {args.rounds} alternating rounds (crop + flip + policy + normalize + "
          "random erasing 0.25)")
    print(f"{'pipeline':<42}{'images/s':>10}{'vs per image':>14}")
    for policy in ("randaugment", "trivialaugment"):
        ours = statistics.median(rates[f"mobilecnn batch {policy}"])
        theirs = statistics.median(rates[f"torchvision v2 per image {policy}"])
        print(f"{'torchvision v2 per image ' + policy:<42}{theirs:>10.0f}{1.0:>13.2f}x")
        print(f"{'mobilecnn batch ' + policy:<42}{ours:>10.0f}{ours / theirs:>13.2f}x")


if __name__ == "__main__":
    main()
