"""What int8 costs in accuracy: fp32 vs PTQ int8 (each backend) vs QAT int8 on a trained run.

Loads a checkpoint written by ``mobilecnn train`` or ``mobilecnn demo``, its data set's val split
(the data root recorded in the run's config.json, or ``--data``), calibrates on
``--calibration-images`` training images, and reports val top-1 of the float model and of each
int8 model with the top-1 agreement between them, the file sizes, and the layers with the
largest int8 error (``quantization_report``). ``--qat-epochs N`` also fine-tunes with
``prepare_qat`` for N epochs (lr ``--qat-lr``) and converts with ``convert_qat``.

    mobilecnn demo --out /tmp/demo
    python benchmarks/quantization_accuracy.py /tmp/demo/best.pt --qat-epochs 1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mobilecnn.data import BatchAugment, CachedBatchLoader, load_cache, prepare_cache
from mobilecnn.deploy import (
    available_quantization_backends,
    convert_qat,
    prepare_qat,
    quantization_report,
    quantize,
)
from mobilecnn.train import load_model


def data_root(checkpoint: Path, given: str | None) -> Path:
    if given:
        return Path(given)
    config = json.loads((checkpoint.parent / "config.json").read_text(encoding="utf-8"))
    if config.get("data") == "demo":
        return checkpoint.parent / "demo-data"
    return Path(config["data"])


def predictions(model: Any, images: torch.Tensor, batch: int = 250) -> torch.Tensor:
    with torch.inference_mode():
        return torch.cat([model(images[i:i + batch]).argmax(1)
                          for i in range(0, len(images), batch)])


def checkpoint_normalize(checkpoint: Any) -> BatchAugment:
    """The evaluation transform of a checkpoint: its recorded mean and std."""
    return BatchAugment(train=False, mean=checkpoint.get("mean") or (0.4802, 0.4481, 0.3975),
                        std=checkpoint.get("std") or (0.2302, 0.2265, 0.2262))


def evaluation_data(root: Path, normalize: BatchAugment, cache_dir: Path | None,
                    calibration_images: int) -> tuple[torch.Tensor, torch.Tensor,
                                                      list[torch.Tensor]]:
    """Normalized val images, their labels, and ``calibration_images`` normalized training
    images (a fixed random pick) in batches of 64."""
    val = load_cache(prepare_cache(root, "val", cache_dir=cache_dir, progress=False))
    train = load_cache(prepare_cache(root, "train", cache_dir=cache_dir, progress=False))
    pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
    calibration = normalize(train.images[pick[:calibration_images]])
    return normalize(val.images[:]), val.labels, list(calibration.split(64))


def qat_finetune(model: nn.Module, root: Path, normalize: BatchAugment, args: argparse.Namespace,
                 cache_dir: Path) -> nn.Module:
    train = load_cache(prepare_cache(root, "train", cache_dir=cache_dir, progress=False))
    augment = BatchAugment(train=True, mean=normalize.mean, std=normalize.std)
    prepared = prepare_qat(model)
    optimizer = torch.optim.SGD(prepared.parameters(), lr=args.qat_lr, momentum=0.9)
    loader = CachedBatchLoader(train.images, train.labels, batch_size=64, seed=0)
    for epoch in range(args.qat_epochs):
        loader.set_epoch(epoch)
        for images, labels in loader:
            loss = nn.functional.cross_entropy(prepared(augment(images)), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return prepared.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--data", default=None, help="data root (default: from config.json)")
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/mobilecnn-qacc-cache"))
    parser.add_argument("--calibration-images", type=int, default=256)
    parser.add_argument("--qat-epochs", type=int, default=0)
    parser.add_argument("--qat-lr", type=float, default=1e-4)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--backends", default=None,
                        help="comma-separated quantize backends (default: all installed)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    model, checkpoint = load_model(args.checkpoint)
    root = data_root(args.checkpoint, args.data)
    normalize = checkpoint_normalize(checkpoint)
    val_images, labels, calibration = evaluation_data(root, normalize, args.cache_dir,
                                                      args.calibration_images)
    calibration_images = torch.cat(calibration)

    reference = predictions(model, val_images)
    rows = [("fp32 (PyTorch)", reference, None)]
    backends = (args.backends.split(",") if args.backends
                else available_quantization_backends())
    for backend in backends:
        quantized = quantize(model, calibration, backend=backend)
        rows.append((f"PTQ int8 ({backend})", predictions(quantized, val_images),
                     quantized.file_bytes))
        print(f"quantized with {backend}", flush=True)
    if args.qat_epochs:
        qat = qat_finetune(model, root, normalize, args, args.cache_dir)
        converted = convert_qat(qat, calibration, backend=backends[0])
        rows.append((f"QAT int8 ({args.qat_epochs} epoch(s), lr {args.qat_lr})",
                     predictions(converted, val_images), converted.file_bytes))

    print(f"{args.checkpoint}: {len(labels)} val images, calibration on "
          f"{len(calibration_images)} training images, {torch.get_num_threads()} threads")
    print("| model | val top-1 | vs fp32 | top-1 agreement with fp32 | file MB |")
    print("| --- | ---: | ---: | ---: | ---: |")
    fp32_top1 = (reference == labels).float().mean().item() * 100
    for name, predicted, size in rows:
        top1 = (predicted == labels).float().mean().item() * 100
        agree = (predicted == reference).float().mean().item() * 100
        mb = "" if size is None else f"{size / 1e6:.2f}"
        print(f"| {name} | {top1:.2f}% | {top1 - fp32_top1:+.2f} | {agree:.2f}% | {mb} |")
    report = quantization_report(model, calibration, [val_images[:500]])
    print(f"\nsimulated int8 (quantization_report): logits SQNR {report.logits_sqnr_db:.1f} dB, "
          f"top-1 agreement {100 * report.top1_agreement:.2f}%; worst layers alone:")
    for layer in report.worst(5):
        print(f"  {layer.name} ({layer.kind}): {layer.alone_sqnr_db:.1f} dB alone, "
              f"{layer.sqnr_db:.1f} dB cumulative")
    print(f"\nwall time {time.perf_counter() - start:.0f} s; command: python "
          f"benchmarks/quantization_accuracy.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
