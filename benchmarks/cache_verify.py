"""What the decoded cache's checksums cost: ``load_cache`` with and without verification.

Builds a decoded cache of N random 64x64 images (the TinyImageNet train cache has 100,000:
1.23 GB), then times, in alternating rounds in one process (page cache warm for both):

- a plain read of the whole file in 4 MiB blocks (the I/O that verification cannot avoid), and
- ``verify_cache`` (that read plus a CRC-32 of every 4 MiB block and of the labels), which
  ``prepare_cache`` runs on an existing cache and ``load_cache(verify=True)`` runs on load.

    python benchmarks/cache_verify.py --images 20000
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from mobilecnn.data import load_cache
from mobilecnn.data.cache import verify_cache, write_decoded_cache

TINYIMAGENET_TRAIN_BYTES = 100_000 * 3 * 64 * 64


def read_all(path: Path) -> int:
    buffer = bytearray(4 * 2**20)
    total = 0
    with path.open("rb", buffering=0) as file:
        while got := file.readinto(buffer):
            total += got
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.mcache"
        images = torch.randint(0, 256, (args.images, 3, 64, 64), dtype=torch.uint8)
        labels = torch.randint(0, 200, (args.images,))
        write_decoded_cache(path, images, labels, [f"n{i:08d}" for i in range(200)],
                            split="train")
        del images
        size = path.stat().st_size
        assert len(load_cache(path, verify=True)) == args.images
        times: dict[str, list[float]] = {"read": [], "verify": []}
        for _ in range(args.rounds):
            started = time.perf_counter()
            read_all(path)
            times["read"].append(time.perf_counter() - started)
            started = time.perf_counter()
            verify_cache(path)
            times["verify"].append(time.perf_counter() - started)
        read, verify = (statistics.median(times[k]) for k in ("read", "verify"))
        print(f"cache of {args.images:,} images, {size / 2**20:.0f} MiB, median of "
              f"{args.rounds} alternating rounds (page cache warm)")
        print(f"plain read of the file:                          {read:.3f} s "
              f"= {size / read / 2**30:.2f} GiB/s")
        print(f"verify_cache (read + CRC-32 per 4 MiB block):    {verify:.3f} s "
              f"= {size / verify / 2**30:.2f} GiB/s")
        projected = TINYIMAGENET_TRAIN_BYTES / (size / verify)
        print(f"projected for the TinyImageNet train cache (1.23 GB): {projected:.2f} s, "
              "once per run (prepare_cache verifies; training then loads without re-verifying)")


if __name__ == "__main__":
    main()
