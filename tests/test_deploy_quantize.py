"""Post-training int8 (``quantize``), QAT (``prepare_qat``/``convert_qat``) and the per-layer
error report, on a tiny trained model; the exported files themselves are checked in
test_deploy_edge.py."""

from __future__ import annotations

import math
import os

import pytest
import torch
from torch import nn

from deploy_helpers import (
    MODEL_KWARGS,
    TinyRun,
    max_relative_error,
    needs_onnx,
    randomize_batchnorm,
    shared_tiny_run,
    simulated_int8,
    top1_agreement,
)
from mobilecnn import create_model, quantize
from mobilecnn.deploy import (
    QUANTIZATION_BACKENDS,
    RuntimeModel,
    available_quantization_backends,
    convert_qat,
    load_runtime_model,
    prepare_qat,
    quantization_report,
)
from mobilecnn.deploy import runtimes as runtimes_module
from mobilecnn.deploy.fake_quant import FakeQuantLayer
from mobilecnn.models import MODELS


@pytest.fixture(scope="module")
def run() -> TinyRun:
    return shared_tiny_run()


class SqueezeExcite(nn.Module):
    """The MobileNetV3 gate: pool, reduce, ReLU, expand, hard-sigmoid, multiply."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, channels // 4, 1)
        self.expand = nn.Conv2d(channels // 4, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = nn.functional.adaptive_avg_pool2d(x, 1)
        scale = nn.functional.hardsigmoid(self.expand(torch.relu(self.reduce(scale))))
        return x * scale


class HardSwishNet(nn.Module):
    """A hand-made MobileNetV3-like classifier: Conv-BN-Hardswish, a depthwise block with an
    SE gate and a residual add, a Hardswish head."""

    def __init__(self, num_classes: int = 5) -> None:
        super().__init__()
        self.in_channels = 3
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16),
                                  nn.Hardswish())
        self.block = nn.Sequential(nn.Conv2d(16, 16, 3, 1, 1, groups=16, bias=False),
                                   nn.BatchNorm2d(16), nn.Hardswish(), SqueezeExcite(16),
                                   nn.Conv2d(16, 16, 1, bias=False), nn.BatchNorm2d(16))
        self.head = nn.Sequential(nn.Linear(16, 32), nn.Hardswish(), nn.Linear(32, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = x + self.block(x)
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("calibration", "message"),
    [
        ([], "calibration data is empty"),
        ([torch.randn(2, 1, 32, 32)], r"batch 0: expected shape \(N, 3, H, W\)"),
        ([torch.randn(3, 32, 32)], "batch 0: expected shape"),
        ([torch.randn(2, 3, 32, 32), torch.randn(2, 3, 40, 40)], "batch 1 has images of shape"),
        ([torch.zeros(2, 3, 32, 32, dtype=torch.uint8)], "expected a float tensor"),
        (["not a tensor"], "got str"),
    ],
)
def test_bad_calibration_is_one_line(calibration, message) -> None:
    from mobilecnn import MobileNetV2

    with pytest.raises(ValueError, match=message) as error:
        quantize(MobileNetV2(width_mult=0.25, num_classes=3), calibration, backend="xnnpack"
                 if "xnnpack" in available_quantization_backends() else None)
    assert "\n" not in str(error.value)


def test_unquantizable_models_are_refused() -> None:
    images = [torch.randn(2, 3, 8, 8)]
    with pytest.raises(ValueError, match="expected a torch.nn.Module"):
        quantize("mobilenet_v2", images)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no Conv2d or Linear"):
        quantize(nn.Sequential(nn.ReLU()), images)
    with pytest.raises(ValueError, match="unknown quantization backend 'tflite'"):
        quantize(HardSwishNet(), images, backend="tflite")


def test_missing_backend_names_the_extra(monkeypatch) -> None:
    monkeypatch.setattr(runtimes_module, "onnxruntime_installed", lambda: False)
    monkeypatch.setattr(runtimes_module, "executorch_installed", lambda: False)
    monkeypatch.setattr(runtimes_module, "litert_installed", lambda: False)
    images = [torch.randn(2, 3, 8, 8)]
    with pytest.raises(ImportError, match=r'pip install "mobilecnn\[onnx\]"'):
        quantize(HardSwishNet(), images, backend="onnxruntime")
    with pytest.raises(ImportError, match=r'pip install "mobilecnn\[edge\]"'):
        quantize(HardSwishNet(), images, backend="xnnpack")
    with pytest.raises(ImportError, match=r"mobilecnn\[onnx\].*mobilecnn\[edge\]"):
        quantize(HardSwishNet(), images)
    with pytest.raises(ImportError, match=r'pip install "mobilecnn\[litert\]"'):
        quantize(HardSwishNet(), images, backend="litert")
    assert available_quantization_backends() == []
    assert set(QUANTIZATION_BACKENDS) == {"onnxruntime", "xnnpack", "litert"}


# --------------------------------------------------------------------------- PTQ


@needs_onnx
@pytest.mark.slow
def test_hardswish_and_se_gate_quantize_with_onnxruntime(tmp_path) -> None:
    torch.manual_seed(0)
    model = HardSwishNet().eval()
    calibration = [torch.randn(8, 3, 24, 24) for _ in range(3)]
    quantized = quantize(model, calibration, backend="onnxruntime")
    assert isinstance(quantized, RuntimeModel)
    assert quantized.precision == "int8" and quantized.input_shape == (3, 24, 24)
    x = torch.randn(7, 3, 24, 24)
    with torch.no_grad():
        expected = model(x)
    logits = quantized(x)
    assert logits.shape == expected.shape and logits.dtype == torch.float32
    assert max_relative_error(logits, expected) < 0.1
    simulated = simulated_int8(model, calibration)
    with torch.no_grad():
        assert max_relative_error(logits, simulated(x)) < 0.1
    assert not any(isinstance(m, nn.BatchNorm2d) for m in simulated.modules())  # folded first
    with pytest.raises(ValueError, match=r"expected images of shape \(batch, 3, 24, 24\)"):
        quantized(torch.randn(1, 3, 32, 32))
    path = quantized.save(tmp_path / "hswish.onnx")
    loaded = load_runtime_model(path)
    assert loaded.precision == "int8" and torch.equal(loaded(x), logits)
    assert path.stat().st_size == quantized.file_bytes


# Every registered classifier but MobileNetV5 (10-38M parameters even at width 0.25, minutes
# per export on a small CPU; its encoder has no classifier). The larger siblings repeat the
# blocks of a smaller one (quantized here too) and run with MOBILECNN_TEST_HEAVY=1.
FAMILY = sorted(n for n in MODELS if "v5" not in n)
SAME_BLOCKS = {"mobilenet_v3_large": "mobilenet_v3_small",
               "mobilenet_v4_conv_medium": "mobilenet_v4_conv_small",
               "mobilenet_v4_conv_large": "mobilenet_v4_conv_small",
               "mobilenet_v4_hybrid_large": "mobilenet_v4_hybrid_medium"}


def test_family_covers_v1_to_v4() -> None:
    assert {"mobilenet_v1", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large",
            "mobilenet_v4_conv_small", "mobilenet_v4_conv_medium",
            "mobilenet_v4_conv_large", "mobilenet_v4_hybrid_medium"} <= set(FAMILY)


@needs_onnx
@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILY)
def test_every_registered_model_quantizes(name: str) -> None:
    """Every architecture (hard-swish, SE gates, UIB blocks, attention, residual adds)
    goes through int8 and stays close to its float logits (random weights, BatchNorm
    statistics set so the activations have realistic ranges)."""
    if name in SAME_BLOCKS and not os.environ.get("MOBILECNN_TEST_HEAVY"):
        pytest.skip(f"{name}: the blocks of {SAME_BLOCKS[name]}, quantized in this test; run "
                    "with MOBILECNN_TEST_HEAVY=1")
    torch.manual_seed(0)
    model = randomize_batchnorm(create_model(name, width_mult=0.25, num_classes=6,
                                             total_stride=16)).eval()
    calibration = [torch.randn(8, 3, 32, 32) for _ in range(2)]
    quantized = quantize(model, calibration, backend="onnxruntime")
    x = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
    logits = quantized(x)
    assert logits.shape == expected.shape and torch.isfinite(logits).all()
    assert max_relative_error(logits, expected) < 0.25


# --------------------------------------------------------------------------- report


@pytest.mark.slow  # the shared tiny run trains for a few seconds
def test_quantization_report_finds_the_damaged_layer(run: TinyRun) -> None:
    report = quantization_report(run.model, run.calibration, [run.val_images[:40]])
    layers = [m for m in run.model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(report.layers) == len(layers)
    assert all(math.isfinite(r.sqnr_db) and r.alone_sqnr_db > 15 for r in report.layers)
    assert report.logits_sqnr_db > 10 and report.top1_agreement >= 0.9
    assert "| features.0.conv | conv 3x3 |" in report.table()
    # Damage one 1x1 convolution without changing the float function: its input channel 0
    # is made exactly zero, and its weights on that channel huge. The per-channel scales grow
    # 100x, the other weights round to zero, and the report must point at that layer.
    damaged = run.model.__class__(**MODEL_KWARGS)
    damaged.load_state_dict(run.model.state_dict())
    target = damaged.features[3].expand.conv
    with torch.no_grad():
        damaged.features[2].project.bn.weight[0] = 0.0
        damaged.features[2].project.bn.bias[0] = 0.0
        target.weight[:, 0] = target.weight.abs().amax() * 100
    worst = quantization_report(damaged.eval(), run.calibration,
                                [run.val_images[:40]]).worst(1)[0]
    assert worst.name == "features.3.expand.conv" and worst.kind == "conv 1x1"
    assert worst.alone_sqnr_db < min(r.alone_sqnr_db for r in report.layers)


# --------------------------------------------------------------------------- QAT


@pytest.mark.slow
def test_prepare_qat_trains_with_fake_quantization(run: TinyRun) -> None:
    prepared = prepare_qat(run.model)
    assert type(prepared) is type(run.model) and prepared.training
    assert sum(isinstance(m, FakeQuantLayer) for m in prepared.modules()) == len(
        [m for m in run.model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))])
    assert not any(isinstance(m, nn.BatchNorm2d) for m in prepared.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in run.model.modules())  # untouched
    images = torch.cat(run.calibration)
    labels = run.model(images).argmax(1).detach()
    before = [p.detach().clone() for p in prepared.parameters()]
    optimizer = torch.optim.SGD(prepared.parameters(), lr=0.01)
    for _ in range(3):
        loss = nn.functional.cross_entropy(prepared(images[:32]), labels[:32])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert math.isfinite(loss.item())
    assert any(not torch.equal(a, b) for a, b in zip(before, prepared.parameters(),
                                                     strict=True))
    first = next(m for m in prepared.modules() if isinstance(m, FakeQuantLayer))
    assert math.isfinite(first.input_quant.low.item())  # ranges observed while training
    with pytest.raises(ValueError, match="made by prepare_qat"):
        convert_qat(run.model, run.calibration)
    with pytest.raises(ValueError, match="momentum"):
        prepare_qat(run.model, momentum=0.0)


@needs_onnx
@pytest.mark.slow
def test_qat_fine_tune_converts_to_int8(run: TinyRun) -> None:
    prepared = prepare_qat(run.model)
    optimizer = torch.optim.SGD(prepared.parameters(), lr=1e-4, momentum=0.9)
    images = torch.cat(run.calibration)
    labels = run.model(images).argmax(1).detach()
    for step in range(6):
        batch = slice(16 * (step % 6), 16 * (step % 6) + 16)
        loss = nn.functional.cross_entropy(prepared(images[batch]), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    prepared.eval()
    converted = convert_qat(prepared, run.calibration, backend="onnxruntime")
    assert converted.precision == "int8"
    with torch.no_grad():
        fake = prepared(run.val_images)
        float_logits = run.model(run.val_images)
    logits = converted(run.val_images)
    assert logits.shape == (len(run.val_labels), 4)
    assert top1_agreement(logits, fake) >= 0.95  # the runtime computes what QAT simulated
    accuracy = (logits.argmax(1) == run.val_labels).float().mean().item()
    reference = (float_logits.argmax(1) == run.val_labels).float().mean().item()
    assert accuracy >= reference - 0.05
