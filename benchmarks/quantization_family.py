"""int8 across the family: PTQ int8 (``mobilecnn.quantize``) against fp32 on trained
small-input MobileNetV3-Small/Large and MobileNetV4-Conv-S/M, on the easy and the hard
generated data.

Each model is trained with the ``mobilecnn demo`` recipe (batch 64, BatchNorm statistics
recalibrated as the trainer does by default) at ``--width`` and the optimizer's default learning
rate (SGD: 0.025 at batch 64; ``--lr``), then quantized with
``--backend`` (calibration on 256 training images) and evaluated on the val split: top-1 of
both, the top-1 agreement, and the layer ``quantization_report`` finds weakest. Two runs at a
time, one thread each; runs go to ``--out``.

    python benchmarks/quantization_family.py                    # the documented table
    python benchmarks/quantization_family.py --epochs 1 --models mobilenet_v3_small
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from hard_data import load_generated_splits, make_generated_data

MODELS = ("mobilenet_v3_small", "mobilenet_v3_large", "mobilenet_v4_conv_small",
          "mobilenet_v4_conv_medium")
DATASETS = {  # name: (classes, train per class, val per class, image size, total stride)
    "easy": (10, 300, 50, 64, 16),   # the demo data
    "hard": (50, 80, 20, 32, 8),     # the recipes ablation's data
}


def train_and_quantize(root: str, out_dir: str, model: str, data: str, args: argparse.Namespace
                       ) -> dict[str, Any]:
    """Train ``model`` on ``root``, quantize its last checkpoint, compare; in a worker."""
    import torch
    from quantization_accuracy import checkpoint_normalize, evaluation_data, predictions

    from mobilecnn.deploy import quantization_report, quantize
    from mobilecnn.train import demo_config, load_model, train

    torch.set_num_threads(1)
    train_split, val_split = load_generated_splits(root)
    config = demo_config(out_dir=out_dir, model=model, width=args.width, epochs=args.epochs,
                         total_stride=DATASETS[data][4], progress=False, lr=args.lr)
    started = time.perf_counter()
    train(config, train_split=train_split, val_split=val_split)
    trained = time.perf_counter() - started
    network, checkpoint = load_model(Path(out_dir) / "last.pt")
    val_images, labels, calibration = evaluation_data(Path(root), checkpoint_normalize(checkpoint),
                                                      None, 256)
    reference = predictions(network, val_images)
    int8 = predictions(quantize(network, calibration, backend=args.backend), val_images)
    report = quantization_report(network, calibration, [val_images[:500]])
    worst = report.worst(1)[0]
    return {"model": model, "data": data, "fp32": (reference == labels).float().mean().item(),
            "int8": (int8 == labels).float().mean().item(),
            "agreement": (int8 == reference).float().mean().item(),
            "worst": f"{worst.name} {worst.alone_sqnr_db:.1f} dB",
            "sqnr": report.logits_sqnr_db, "minutes": trained / 60}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/quantization-family"))
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--data", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=None,
                        help="peak learning rate (default: the optimizer's for batch 64, 0.025 "
                             "for SGD; the demo's 0.1 is unstable for MobileNetV4)")
    parser.add_argument("--backend", default="onnxruntime")
    args = parser.parse_args()
    started = time.perf_counter()
    roots = {name: make_generated_data(args.out, *DATASETS[name][:4],
                                       difficulty=name) for name in args.data}
    with ProcessPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(train_and_quantize, str(roots[data]),
                               str(args.out / f"{model}-{data}"), model, data, args)
                   for data in args.data for model in args.models]
        rows = [future.result() for future in futures]
    print(f"width {args.width}, {args.epochs} epochs, lr {args.lr or 'default'}, backend "
          f"{args.backend}, one thread per run; "
          f"{(time.perf_counter() - started) / 60:.0f} min in all")
    print("| model | data | fp32 top-1 | int8 top-1 | vs fp32 | agreement | logits SQNR | "
          "weakest layer alone |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for row in rows:
        print(f"| {row['model']} | {row['data']} | {100 * row['fp32']:.1f}% | "
              f"{100 * row['int8']:.1f}% | {100 * (row['int8'] - row['fp32']):+.1f} | "
              f"{100 * row['agreement']:.1f}% | {row['sqnr']:.1f} dB | {row['worst']} |")


if __name__ == "__main__":
    main()
