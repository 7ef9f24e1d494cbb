"""Images per second of the data paths on one generated data set of 64x64 JPEGs.

(a) decoded cache + CachedBatchLoader + BatchAugment (pad-crop + flip, and random-resized crop)
(b) the usual per-image path: a DataLoader whose workers decode each JPEG with PIL and augment it
    with PIL (equivalent pad-crop + flip / random-resized crop), then convert and normalize it
(c) for reference: jpeg_loader (per-image decoding in workers) + BatchAugment on the batch

    python benchmarks/data.py --images 20000 --out /tmp/mobilecnn-bench
    python benchmarks/data.py --images 20000 --device cuda   # (a) augments on the GPU

Everything is measured in this one run; ratios are against (b) with the same crop.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from mobilecnn.data import (
    TINYIMAGENET_MEAN,
    TINYIMAGENET_STD,
    BatchAugment,
    CachedBatchLoader,
    TinyImageNet,
    jpeg_loader,
    load_cache,
    make_demo_dataset,
    prepare_cache,
)


class PILAugmentDataset(Dataset[tuple[torch.Tensor, int]]):
    """Baseline: decode one JPEG with PIL, augment it with PIL, convert and normalize it."""

    def __init__(self, samples: list[tuple[Path, int]], crop: str, seed: int = 0) -> None:
        self.samples = samples
        self.crop = crop
        self.seed = seed
        self.mean = torch.tensor(TINYIMAGENET_MEAN).view(3, 1, 1)
        self.std = torch.tensor(TINYIMAGENET_STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image, ImageOps

        path, label = self.samples[index]
        rng = random.Random(self.seed * 1_000_003 + index)
        with Image.open(path) as raw:
            image = raw.convert("RGB")
        width, height = image.size
        if self.crop == "pad":
            padded = ImageOps.expand(image, border=4, fill=0)
            x0, y0 = rng.randint(0, 8), rng.randint(0, 8)
            image = padded.crop((x0, y0, x0 + width, y0 + height))
        else:  # random-resized crop, scale (0.35, 1), ratio (3/4, 4/3)
            box = (0.0, 0.0, float(width), float(height))
            for _ in range(10):
                area = width * height * rng.uniform(0.35, 1.0)
                aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
                crop_w, crop_h = math.sqrt(area * aspect), math.sqrt(area / aspect)
                if crop_w <= width and crop_h <= height:
                    left = rng.uniform(0, width - crop_w)
                    top = rng.uniform(0, height - crop_h)
                    box = (left, top, left + crop_w, top + crop_h)
                    break
            image = image.resize((width, height), Image.Resampling.BILINEAR, box=box)
        if rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
        tensor = pixels.view(height, width, 3).permute(2, 0, 1).float().div_(255)
        return (tensor - self.mean) / self.std, label


def timed(
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    step: Callable[[torch.Tensor], torch.Tensor] | None = None,
    device: torch.device | None = None,
) -> tuple[int, float]:
    """Images and seconds of one pass over ``batches`` (applying ``step`` to each batch),
    timed from the first batch on so worker start-up is not counted. With a CUDA ``device``
    each batch is copied there first and the clock stops after the device is idle."""
    if device is not None and step is not None:
        on_host = step

        def step(images: torch.Tensor) -> torch.Tensor:
            return on_host(images.to(device, non_blocking=True))

    iterator = iter(batches)
    first_images, _ = next(iterator)
    if step is not None:
        step(first_images)
    count = 0
    start = time.perf_counter()
    for images, labels in iterator:
        out = step(images) if step is not None else images
        count += int(out.shape[0])
        assert labels.shape[0] == out.shape[0]
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)
    return count, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=20000,
                        help="training images to generate, 64x64 JPEG (default 20000)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for the generated data and its cache (reused between runs; "
                             "default: a temporary folder)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=None,
                        help="DataLoader/prepare workers (default: all cores)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for (a) (default: measure 1 and torch's default)")
    parser.add_argument("--device", default="cpu",
                        help="where (a) runs its batch augmentation: cpu (default) or cuda")
    parser.add_argument("--repeats", type=int, default=2,
                        help="passes per fast pipeline; the best is reported (default 2)")
    args = parser.parse_args()
    workers = args.workers or len(os.sched_getaffinity(0))
    device = torch.device(args.device)
    out = args.out or Path(tempfile.mkdtemp(prefix="mobilecnn-bench-"))
    classes = 10
    per_class = math.ceil(args.images / classes)
    print(f"torch {torch.__version__}, {len(os.sched_getaffinity(0))} cores, "
          f"{torch.get_num_threads()} torch threads, {workers} workers, python "
          f"{sys.version.split()[0]}")

    start = time.perf_counter()
    root = make_demo_dataset(out / f"demo-{classes}x{per_class}", num_classes=classes,
                             train_per_class=per_class, val_per_class=1, test_per_class=0,
                             progress=True)
    print(f"data: {root} ({classes * per_class} JPEGs, ready in "
          f"{time.perf_counter() - start:.1f} s)")
    start = time.perf_counter()
    cache = prepare_cache(root, "train", num_workers=workers, progress=True)
    prepare_seconds = time.perf_counter() - start
    split = load_cache(cache)
    dataset = TinyImageNet(root, "train")
    total = len(split)
    print(f"prepare (one-time; 0 if the cache was already there): {prepare_seconds:.1f} s "
          f"for {total} images -> {cache}")

    rows: list[tuple[str, str, int, float]] = []
    default_threads = torch.get_num_threads()
    thread_counts = sorted({1, default_threads}) if args.threads is None else [args.threads]
    for crop in ("pad", "resized"):
        augment = BatchAugment(train=True, crop=crop)
        loader = CachedBatchLoader(split.images, split.labels, args.batch_size, seed=0)
        generator = torch.Generator(device=device).manual_seed(0)
        for threads in thread_counts:
            torch.set_num_threads(threads)
            best = None
            for epoch in range(args.repeats):
                loader.set_epoch(epoch)
                result = timed(loader, functools.partial(augment, generator=generator),
                               device=device)
                best = result if best is None or result[1] < best[1] else best
            assert best is not None
            rows.append((crop, f"(a) cache + CachedBatchLoader + BatchAugment on {device.type}, "
                               f"{threads} thread{'s' if threads > 1 else ''}", *best))
        torch.set_num_threads(default_threads)

        baseline = DataLoader(PILAugmentDataset(dataset.samples, crop), args.batch_size,
                              shuffle=True, num_workers=workers,
                              generator=torch.Generator().manual_seed(0))
        rows.append((crop, f"(b) PIL per image, DataLoader({workers} workers)", *timed(baseline)))

        fallback = jpeg_loader(dataset, args.batch_size, num_workers=workers, seed=0)
        rows.append((crop, f"(c) jpeg_loader({workers} workers) + BatchAugment",
                     *timed(fallback, augment)))
        del fallback

    print()
    print("| crop | pipeline | images | seconds | images/s | vs (b) |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for crop, name, count, seconds in rows:
        reference = next(c / s for k, n, c, s in rows if k == crop and n.startswith("(b)"))
        rate = count / seconds
        print(f"| {crop} | {name} | {count} | {seconds:.2f} | {rate:,.0f} | "
              f"{rate / reference:.1f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
