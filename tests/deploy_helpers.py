"""Shared by the quantization, edge export and bench tests: a tiny model trained on tiny demo
data, its calibration and validation batches, and a PyTorch simulation of int8."""

from __future__ import annotations

import atexit
import functools
import importlib.util
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from mobilecnn import MobileNetV2

ORT_MISSING = [n for n in ("onnx", "onnxruntime", "onnxscript")
               if importlib.util.find_spec(n) is None]
needs_onnx = pytest.mark.skipif(
    bool(ORT_MISSING), reason=f"{', '.join(ORT_MISSING)} not installed (pip install "
                              "'mobilecnn[onnx]')")
ET_MISSING = [n for n in ("executorch", "torchao") if importlib.util.find_spec(n) is None]
needs_executorch = pytest.mark.skipif(
    bool(ET_MISSING), reason=f"{', '.join(ET_MISSING)} not installed (pip install "
                             "'mobilecnn[edge]')")

SIZE = 32
MODEL_KWARGS = {"num_classes": 4, "width_mult": 0.25, "total_stride": 16}


@dataclass
class TinyRun:
    """A trained tiny model and its demo data, normalized."""

    model: nn.Module
    root: Path
    calibration: list[torch.Tensor]
    val_images: torch.Tensor
    val_labels: torch.Tensor


def train_tiny_run(folder: Path, steps: int = 80) -> TinyRun:
    """MobileNetV2 (width 0.25, total stride 16) trained for ``steps`` SGD steps on 4 demo
    classes at 32x32: a few seconds, and confident enough that int8 changes few predictions."""
    from mobilecnn.data import BatchAugment, load_cache, make_demo_dataset, prepare_cache

    root = make_demo_dataset(folder / "demo", num_classes=4, train_per_class=48,
                             val_per_class=25, image_size=SIZE, seed=0, test_per_class=1)
    train = load_cache(prepare_cache(root, "train", progress=False, num_workers=1))
    val = load_cache(prepare_cache(root, "val", progress=False, num_workers=1))
    normalize = BatchAugment(train=False)
    images, labels = normalize(train.images[:]), train.labels
    torch.manual_seed(0)
    model = MobileNetV2(**MODEL_KWARGS)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    generator = torch.Generator().manual_seed(0)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two threads collapse when other processes share the cores
    try:
        for _ in range(steps):
            pick = torch.randint(0, len(labels), (32,), generator=generator)
            loss = nn.functional.cross_entropy(model(images[pick]), labels[pick])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    model.eval()
    return TinyRun(model, root, list(images.split(32)), normalize(val.images[:]),
                   val.labels)


@functools.lru_cache(maxsize=1)
def shared_tiny_run() -> TinyRun:
    """One :func:`train_tiny_run` per test session (in a temporary folder removed at exit),
    shared by the quantization, export and bench tests."""
    folder = Path(tempfile.mkdtemp(prefix="mobilecnn-tiny-run-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return train_tiny_run(folder)


def simulated_int8(model: nn.Module, calibration: list[torch.Tensor]) -> nn.Module:
    """The PyTorch int8 model: every Conv2d/Linear with uint8 per-tensor inputs and int8
    per-channel weights, ranges from ``calibration`` (what the runtimes compute)."""
    from mobilecnn.deploy.fake_quant import calibrated_fake_quant

    return calibrated_fake_quant(model, calibration)


def top1_agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.argmax(1) == b.argmax(1)).float().mean().item()


def max_relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual.float() - expected.float()).abs().max() / expected.abs().max()).item()


def randomize_batchnorm(model: nn.Module, seed: int = 1) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine parameters (fresh ones are 0/1)."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.5)
            module.running_var.copy_(torch.rand(n, generator=generator) * 1.5 + 0.25)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=generator) * 0.2)
    return model


def run_onnx(path, x: torch.Tensor) -> torch.Tensor:
    """Logits of the ONNX file at ``path`` for ``x`` in onnxruntime (CPU)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (output,) = session.run(["logits"], {"images": x.numpy()})
    return torch.from_numpy(output)
