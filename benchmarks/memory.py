"""Peak memory of one training step with and without gradient checkpointing.

Each measurement runs in a fresh process: build the model and a batch, read the resident
memory, run one forward and backward pass in train mode, and read the peak resident memory
(``ru_maxrss``). The difference is what the step needed on top of the weights: the saved
activations, the gradients and the temporaries. On CUDA (``--device cuda``) the figure is
``torch.cuda.max_memory_allocated`` over the same step instead. The two settings alternate
(round-robin) and each figure is the median of ``--repeats`` processes.

    python benchmarks/memory.py                                  # mobilenet_v2, 8 x 224x224
    python benchmarks/memory.py --model mobilenet_v4_conv_medium --batch-size 4
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys

import torch

# A fixed mmap threshold: glibc then serves every large tensor with its own mapping and returns
# it to the system when freed, so resident memory follows the live tensors (with the default
# dynamic threshold, freed activations stay resident and the peak is overstated).
CHILD_ENV = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def measure(model_name: str, batch_size: int, size: int, checkpointing: bool,
            device: str) -> int:
    """Bytes one training step needs beyond the model and the batch (in this process)."""
    from mobilecnn import create_model

    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = create_model(model_name, num_classes=1000).train().to(device)
    model.set_grad_checkpointing(checkpointing)
    images = torch.randn(batch_size, 3, size, size, device=device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = _rss_bytes()
    model(images).logsumexp(dim=1).mean().backward()
    if device == "cuda":
        return torch.cuda.max_memory_allocated() - before
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--child", choices=["on", "off"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.model, args.batch_size, args.input_size,
                                 args.child == "on", args.device)))
        return
    results: dict[str, list[int]] = {"off": [], "on": []}
    for _ in range(args.repeats):
        for setting in ("off", "on"):
            command = [sys.executable, __file__, "--model", args.model, "--batch-size",
                       str(args.batch_size), "--input-size", str(args.input_size), "--device",
                       args.device, "--child", setting]
            output = subprocess.run(command, check=True, capture_output=True, text=True,
                                    env=CHILD_ENV).stdout
            results[setting].append(int(output.strip().splitlines()[-1]))
    off, on = (statistics.median(results[key]) for key in ("off", "on"))
    print(f"{args.model}, batch {args.batch_size} x {args.input_size}x{args.input_size}, "
          f"{args.device}, median of {args.repeats} processes each")
    print(f"  without checkpointing: {off / 2**20:8.0f} MiB")
    print(f"  with checkpointing:    {on / 2**20:8.0f} MiB  ({on / off:.0%}, "
          f"{off / on:.1f}x less)")


if __name__ == "__main__":
    main()
