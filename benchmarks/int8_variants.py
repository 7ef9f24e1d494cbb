"""Which int8 graph ONNX Runtime runs fastest on this CPU: ``mobilecnn.quantize``'s MobileNetV2
against the same model quantized or rewritten every other way that changes ONNX Runtime's
kernels, timed round-robin in one run on one thread.

Every variant starts from the same fp32 export (MobileNetV2 1.0, random weights, non-trivial
BatchNorm statistics) and the same calibration images:

* ``quantize``: ``mobilecnn.quantize(backend="onnxruntime")``: u8 activations, symmetric
  per-channel s8 weights in 7 bits (ONNX Runtime's symmetric-convolution kernels);
* ``s8 activations``, ``u8 weights``, ``per-tensor weights``: ``quantize_static``'s other
  settings;
* ``1x1 / depthwise on the GEMM path``: the weight zero points of those convolutions set to 1,
  which makes ONNX Runtime use its general int8 GEMM instead of its symmetric-convolution
  kernels (for timing only: the values change);
* ``stem padded to 4 channels`` and ``stem as space-to-depth + 2x2``: the stem convolution
  (3 input channels, which the symmetric kernels cannot take) rewritten so that they can. Both
  are exact; the script checks that their logits equal ``quantize``'s.

    python benchmarks/int8_variants.py --size 224 --batch 1 --rounds 60
    python benchmarks/int8_variants.py --size 64 --batch 256 --rounds 8
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from int8_models import mobilenet_v2_with_statistics, ort_quantize_static
from torch import nn

from mobilecnn import quantize
from mobilecnn.deploy import fold_batchnorm
from mobilecnn.deploy.export import export_onnx


def model_and_calibration(size: int) -> tuple[nn.Module, list[torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    model = mobilenet_v2_with_statistics(generator)
    return model, [torch.randn(8, 3, size, size, generator=generator) for _ in range(2)]


def quantize_static_with(fp32: Path, calibration: list[torch.Tensor], **settings: Any) -> bytes:
    out = fp32.with_name(f"int8-{len(list(fp32.parent.iterdir()))}.onnx")
    return ort_quantize_static(fp32, out, calibration, "images", **settings)


def _graph(program: bytes) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    import onnx

    model = onnx.load_from_string(program)
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    producers = {output: node for node in model.graph.node for output in node.output}
    return model, initializers, producers


def _conv_kind(node: Any) -> str:
    import onnx

    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    if attributes.get("group", 1) > 1:
        return "depthwise"
    return "1x1" if list(attributes.get("kernel_shape", [])) == [1, 1] else "other"


def weight_zero_point_one(program: bytes, kind: str) -> bytes:
    """Every ``kind`` convolution's weight zero point set to 1 (timing only)."""
    from onnx import numpy_helper

    model, initializers, producers = _graph(program)
    for node in model.graph.node:
        if node.op_type == "Conv" and _conv_kind(node) == kind:
            zero_point = initializers[producers[node.input[1]].input[2]]
            ones = np.ones_like(numpy_helper.to_array(zero_point))
            zero_point.CopyFrom(numpy_helper.from_array(ones, zero_point.name))
    return model.SerializeToString()


def _rewrite_stem(program: bytes, weight: Callable[[np.ndarray], np.ndarray],
                  conv_attributes: dict[str, list[int]], input_node: Any) -> bytes:
    from onnx import numpy_helper

    model, initializers, producers = _graph(program)
    graph = model.graph
    images = graph.input[0].name
    stem = next(node for node in graph.node if node.op_type == "Conv")
    tensor = initializers[producers[stem.input[1]].input[0]]
    tensor.CopyFrom(numpy_helper.from_array(weight(numpy_helper.to_array(tensor)), tensor.name))
    for attribute in stem.attribute:
        if attribute.name in conv_attributes:
            attribute.ints[:] = conv_attributes[attribute.name]
    first_quantize = next(node for node in graph.node if node.input[0] == images)
    first_quantize.input[0] = input_node.output[0]
    graph.node.insert(0, input_node)
    del graph.value_info[:]
    return model.SerializeToString()


def stem_padded(program: bytes) -> bytes:
    """A zero fourth input channel on the image and the stem's weights."""
    from onnx import helper, numpy_helper

    model, _, _ = _graph(program)
    pads = numpy_helper.from_array(np.array([0, 0, 0, 0, 0, 1, 0, 0], np.int64), "stem_pads")
    model.graph.initializer.append(pads)
    pad = helper.make_node("Pad", [model.graph.input[0].name, "stem_pads"], ["images_4"],
                           name="stem_pad")
    return _rewrite_stem(model.SerializeToString(),
                         lambda w: np.concatenate([w, np.zeros_like(w[:, :1])], axis=1), {}, pad)


def stem_space_to_depth(program: bytes) -> bytes:
    """The 3x3 stride-2 stem as a 2x2 stride-1 convolution (padded top and left) of the 2x2
    space-to-depth image: the 3x3 taps 0, 1, 2 of output row i read input rows 2i - 1, 2i and
    2i + 1, which are row 1 of block i - 1 and rows 0 and 1 of block i (same for columns)."""
    from onnx import helper

    def weight(w: np.ndarray) -> np.ndarray:
        channels = w.shape[1]
        out = np.zeros((w.shape[0], 4 * channels, 2, 2), w.dtype)
        taps = {0: (0, 1), 1: (1, 0), 2: (1, 1)}  # 3x3 tap -> (2x2 tap, row/column in block)
        for ky, (dy, by) in taps.items():
            for kx, (dx, bx) in taps.items():
                block = (by * 2 + bx) * channels
                out[:, block:block + channels, dy, dx] = w[:, :, ky, kx]
        return out

    model, _, _ = _graph(program)
    node = helper.make_node("SpaceToDepth", [model.graph.input[0].name], ["images_s2d"],
                            name="stem_space_to_depth", blocksize=2)
    return _rewrite_stem(program, weight, {"kernel_shape": [2, 2], "strides": [1, 1],
                                           "pads": [1, 1, 0, 0]}, node)


def variants(size: int) -> tuple[dict[str, bytes], set[str]]:
    """Name -> int8 ONNX program, and the names that must give ``quantize``'s exact logits."""
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model, calibration = model_and_calibration(size)
    ours = quantize(model, calibration, backend="onnxruntime", threads=1).program
    folder = Path(tempfile.mkdtemp(prefix="int8-variants-"))
    export_onnx(fold_batchnorm(model), folder / "fp32.onnx", (size, size))
    quant_pre_process(str(folder / "fp32.onnx"), str(folder / "pre.onnx"),
                      skip_symbolic_shape=True)
    pre = folder / "pre.onnx"
    u8, s8 = QuantType.QUInt8, QuantType.QInt8
    programs = {
        "quantize": ours,
        "s8 activations": quantize_static_with(pre, calibration, per_channel=True,
                                               activation_type=s8, weight_type=s8),
        "u8 weights": quantize_static_with(pre, calibration, per_channel=True,
                                           activation_type=u8, weight_type=u8),
        "per-tensor weights": quantize_static_with(pre, calibration, activation_type=u8,
                                                   weight_type=s8, reduce_range=True),
        "1x1 on the GEMM path": weight_zero_point_one(ours, "1x1"),
        "depthwise on the GEMM path": weight_zero_point_one(ours, "depthwise"),
        "stem padded to 4 channels": stem_padded(ours),
        "stem as space-to-depth + 2x2": stem_space_to_depth(ours),
    }
    return programs, {"stem padded to 4 channels", "stem as space-to-depth + 2x2"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args(argv)
    from mobilecnn.deploy.runtimes import ort_session

    torch.set_num_threads(1)
    programs, exact = variants(args.size)
    sessions = {name: ort_session(program, 1) for name, program in programs.items()}
    images = np.random.default_rng(0).standard_normal(
        (args.batch, 3, args.size, args.size)).astype(np.float32)
    logits = {name: s.run(None, {"images": images})[0] for name, s in sessions.items()}
    for name in exact:
        difference = float(np.abs(logits[name] - logits["quantize"]).max())
        print(f"{name}: largest logit difference from quantize's {difference:g}")
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(args.rounds):
        for name, session in sessions.items():
            start = time.perf_counter()
            session.run(None, {"images": images})
            times[name].append(time.perf_counter() - start)
    base = float(np.median(times["quantize"]))
    print(f"batch {args.batch} x 3x{args.size}x{args.size}, one thread, {args.rounds} rounds "
          f"(load average {Path('/proc/loadavg').read_text().split()[0]})")
    print("| int8 graph | median ms | speed vs quantize |\n| --- | ---: | ---: |")
    for name, measured in times.items():
        median = float(np.median(measured))
        print(f"| {name} | {median * 1e3:.2f} | {base / median:.3f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
