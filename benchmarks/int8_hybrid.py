"""int8 accuracy of a trained small-input MobileNetV4 hybrid: float, int8 everywhere, and int8
with the attention's MatMul/Softmax left in float (ONNX Runtime backend).

Trains ``mobilenet_v4_hybrid_medium`` (width 0.25, total_stride 16) on generated demo data at
32x32 for a few hundred SGD steps, then quantizes it with :func:`mobilecnn.quantize`.
Run: ``python benchmarks/int8_hybrid.py [--steps 300]`` (a few minutes on a CPU).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch
from torch import nn

from mobilecnn import create_model, quantize


def train(folder: Path, steps: int) -> tuple[nn.Module, list[torch.Tensor], torch.Tensor,
                                             torch.Tensor]:
    from mobilecnn.data import BatchAugment, load_cache, make_demo_dataset, prepare_cache

    root = make_demo_dataset(folder / "demo", num_classes=4, train_per_class=64,
                             val_per_class=50, image_size=32, seed=0, test_per_class=1)
    train_set = load_cache(prepare_cache(root, "train", progress=False, num_workers=1))
    val_set = load_cache(prepare_cache(root, "val", progress=False, num_workers=1))
    normalize = BatchAugment(train=False)
    images, labels = normalize(train_set.images[:]), train_set.labels
    torch.manual_seed(0)
    model = create_model("mobilenet_v4_hybrid_medium", num_classes=4, width_mult=0.25,
                         total_stride=16)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        pick = torch.randint(0, len(labels), (32,), generator=generator)
        loss = nn.functional.cross_entropy(model(images[pick]), labels[pick])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), list(images.split(64)), normalize(val_set.images[:]), val_set.labels


def attention_in_float(original):  # type: ignore[no-untyped-def]
    """quantize_static that leaves the attention's MatMul and Softmax nodes in float."""
    import onnx

    def wrapped(model_input, *args, **kwargs):  # type: ignore[no-untyped-def]
        graph = onnx.load(str(model_input)).graph
        kwargs["nodes_to_exclude"] = [n.name for n in graph.node
                                      if n.op_type in ("MatMul", "Softmax")]
        return original(model_input, *args, **kwargs)
    return wrapped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    import onnxruntime.quantization as ort_quantization

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        model, calibration, val_images, val_labels = train(Path(folder), args.steps)
        print(f"trained {args.steps} steps in {time.perf_counter() - start:.0f} s")
        with torch.no_grad():
            float_predictions = model(val_images).argmax(1)
        accuracy = (float_predictions == val_labels).float().mean()
        print(f"{'float32':<25} top-1 {accuracy:.3f}")
        variants = {"int8 everywhere": None,
                    "int8, attention float": attention_in_float(ort_quantization.quantize_static)}
        for name, patch in variants.items():
            if patch is None:
                quantized = quantize(model, calibration[:4], backend="onnxruntime")
            else:
                with mock.patch.object(ort_quantization, "quantize_static", patch):
                    quantized = quantize(model, calibration[:4], backend="onnxruntime")
            predictions = quantized(val_images).argmax(1)
            accuracy = (predictions == val_labels).float().mean()
            agreement = (predictions == float_predictions).float().mean()
            print(f"{name:<25} top-1 {accuracy:.3f}, agrees with float on {agreement:.3f}")


if __name__ == "__main__":
    main()
