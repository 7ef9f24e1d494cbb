"""Where ONNX Runtime spends the time of ``mobilecnn.quantize``'s int8 MobileNetV2: a per-operator
profile (``SessionOptions.enable_profiling``) summed by operator type, and the convolutions split
into depthwise, 1x1 and the rest; also lists the operators of the optimized graph (layout
transposes, Q/DQ pairs left in, unfused operators). One thread; random weights.

    python benchmarks/int8_profile.py --size 224 --batch 1 --runs 10
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from int8_models import mobilenet_v2_with_statistics

from mobilecnn import quantize


def int8_model(size: int) -> bytes:
    generator = torch.Generator().manual_seed(1)
    model = mobilenet_v2_with_statistics(generator)
    calibration = [torch.randn(4, 3, size, size, generator=generator) for _ in range(2)]
    return quantize(model, calibration, backend="onnxruntime", threads=1).program


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--nodes", type=int, default=0, help="also list the N slowest nodes")
    args = parser.parse_args(argv)
    import onnx
    import onnxruntime

    torch.set_num_threads(1)
    folder = Path(tempfile.mkdtemp(prefix="int8-profile-"))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.enable_profiling = True
    options.profile_file_prefix = str(folder / "profile")
    options.optimized_model_filepath = str(folder / "optimized.onnx")
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(int8_model(args.size), options,
                                           providers=["CPUExecutionProvider"])
    images = np.random.default_rng(0).standard_normal(
        (args.batch, 3, args.size, args.size)).astype(np.float32)
    session.run(None, {"images": images})
    start = time.perf_counter()
    for _ in range(args.runs):
        session.run(None, {"images": images})
    wall = (time.perf_counter() - start) / args.runs
    events = json.loads(Path(session.end_profiling()).read_text())
    graph = onnx.load(str(folder / "optimized.onnx")).graph
    nodes = {node.name: node for node in graph.node}
    by_op: collections.Counter[str] = collections.Counter()
    by_conv: collections.Counter[str] = collections.Counter()
    by_node: collections.Counter[str] = collections.Counter()
    for event in events:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        op = event["args"]["op_name"]
        by_op[op] += event["dur"]
        by_node[f"{op} {event['name'][: -len('_kernel_time')]}"] += event["dur"]
        node = nodes.get(event["name"][: -len("_kernel_time")])
        if op == "QLinearConv" and node is not None:
            attributes = {a.name: a for a in node.attribute}
            kernel = list(attributes["kernel_shape"].ints) if "kernel_shape" in attributes else []
            kind = ("depthwise" if "group" in attributes and attributes["group"].i > 1
                    else "1x1" if kernel == [1, 1] else "other")
            by_conv[kind] += event["dur"]
    total = sum(by_op.values())
    counts = collections.Counter(node.op_type for node in graph.node)
    print(f"batch {args.batch} x 3x{args.size}x{args.size}, 1 thread, {args.runs} runs: "
          f"{wall * 1e3:.2f} ms per run (wall), {total / args.runs / 1e3:.2f} ms in operators "
          f"(load average {Path('/proc/loadavg').read_text().split()[0]})")
    print("| operator | count | ms per run | share |\n| --- | ---: | ---: | ---: |")
    for op, microseconds in by_op.most_common():
        print(f"| {op} | {counts[op]} | {microseconds / args.runs / 1e3:.3f} | "
              f"{microseconds / total:.1%} |")
    print("| QLinearConv kind | ms per run | share of all |\n| --- | ---: | ---: |")
    for kind, microseconds in by_conv.most_common():
        print(f"| {kind} | {microseconds / args.runs / 1e3:.3f} | {microseconds / total:.1%} |")
    if args.nodes:  # in graph order of the slowest N: where in the network the time goes
        print("| node (slowest, in graph order) | ms per run | share of all |\n"
              "| --- | ---: | ---: |")
        slowest = {name for name, _ in by_node.most_common(args.nodes)}
        for name, microseconds in by_node.items():
            if name in slowest:
                print(f"| {name} | {microseconds / args.runs / 1e3:.3f} | "
                      f"{microseconds / total:.1%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
