"""Generate the parameter/MAC tables of docs/results.md from the library itself.

    python scripts/results_tables.py            # print the tables
    python scripts/results_tables.py --write    # rewrite them inside docs/results.md
    python scripts/results_tables.py --check    # exit 1 if docs/results.md is out of date

Each table sits between ``<!-- generated: NAME -->`` and ``<!-- end generated -->`` in
docs/results.md; the text around them is written by hand. tests/test_docs.py runs ``--check``.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from mobilecnn import (
    MobileNetV1,
    MobileNetV2,
    MobileNetV3,
    MobileNetV4,
    create_model,
    mac_count,
    param_count,
)

RESULTS_PAGE = Path(__file__).resolve().parents[1] / "docs" / "results.md"

# Published figures: (params in millions, MACs in millions) at 224x224, 1000 classes.
V1_PAPER_WIDTH = {1.0: (4.2, 569), 0.75: (2.6, 325), 0.5: (1.3, 149), 0.25: (0.5, 41)}
V1_PAPER_RESOLUTION = {224: 569, 192: 418, 160: 290, 128: 186}
V2_PAPER = {1.4: (6.9, 585), 1.0: (3.4, 300)}
V2_WIDTHS = (1.4, 1.0, 0.75, 0.5, 0.35)
# V3 paper, Table 3: (params M, MACs M, ImageNet top-1 %) at 224x224.
V3_PAPER = {("large", 1.0): (5.4, 219, 75.2), ("large", 0.75): (4.0, 155, 73.3),
            ("small", 1.0): (2.5, 56, 67.4), ("small", 0.75): (2.0, 44, 65.4)}
# V4 paper, ImageNet-1k table: (params M, MACs G, top-1 %, the input size they were measured at).
V4_PAPER = {"conv_small": (3.8, 0.2, 73.8, 224), "conv_medium": (9.2, 1.0, 79.9, 256),
            "conv_large": (31, 5.9, 82.9, 384)}
ZOO_SMALL_INPUT = ("mobilenet_v3_large", "mobilenet_v3_small", "mobilenet_v4_conv_small",
                   "mobilenet_v4_conv_medium", "mobilenet_v4_conv_large")


def build(model_class: Callable[..., torch.nn.Module], **kwargs: object) -> torch.nn.Module:
    """A model on the meta device: shapes only, so counting allocates and computes nothing."""
    with torch.device("meta"):
        return model_class(**kwargs)


def _millions(value: int) -> str:
    return f"{value / 1e6:.1f}M"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(headers: list[str], rows: list[list[str]], align: str) -> str:
    rule = ["---:" if a == "r" else "---" for a in align]
    return "\n".join([_row(headers), _row(rule), *(_row(r) for r in rows)])


def v1_width_table() -> str:
    """MobileNetV1 at 224x224 for each width multiplier of the paper's Table 6."""
    rows = []
    for width, (paper_params, paper_macs) in V1_PAPER_WIDTH.items():
        model = build(MobileNetV1, width_mult=width)
        params, macs = param_count(model), mac_count(model, 224)
        rows.append([f"{width}", f"{params:,}", _millions(params), f"{paper_params}M",
                     f"{macs:,}", _millions(macs), f"{paper_macs}M"])
    headers = ["width", "params", "(M)", "paper", "MACs", "(M)", "paper"]
    return _table(headers, rows, "rrrrrrr")


def v1_resolution_table() -> str:
    """MobileNetV1 1.0 at each input size of the paper's Table 7."""
    model = build(MobileNetV1)
    rows = []
    for size, paper_macs in V1_PAPER_RESOLUTION.items():
        macs = mac_count(model, size)
        rows.append([f"{size}x{size}", f"{param_count(model):,}", f"{macs:,}", _millions(macs),
                     f"{paper_macs}M"])
    return _table(["input", "params", "MACs", "(M)", "paper"], rows, "rrrrr")


def v2_width_table() -> str:
    """MobileNetV2 at 224x224 per width; torchvision's parameter count where it is installed."""
    try:
        from torchvision.models import mobilenet_v2 as torchvision_mobilenet_v2
    except ImportError:  # torchvision is a dev dependency only
        torchvision_mobilenet_v2 = None
    rows = []
    for width in V2_WIDTHS:
        model = build(MobileNetV2, width_mult=width)
        params, macs = param_count(model), mac_count(model, 224)
        reference = (
            f"{param_count(build(torchvision_mobilenet_v2, width_mult=width)):,}"
            if torchvision_mobilenet_v2 is not None else "n/a"
        )
        paper_params, paper_macs = V2_PAPER.get(width, (None, None))
        rows.append([
            f"{width}", f"{params:,}", reference,
            f"{paper_params}M" if paper_params else "-",
            f"{macs:,}", _millions(macs), f"{paper_macs}M" if paper_macs else "-",
        ])
    headers = ["width", "params", "torchvision params", "paper", "MACs", "(M)", "paper"]
    return _table(headers, rows, "rrrrrrr")


def small_input_table() -> str:
    """Both models for TinyImageNet (64x64 inputs, 200 classes) at each total stride."""
    rows = []
    for name, model_class in (("MobileNetV1", MobileNetV1), ("MobileNetV2", MobileNetV2)):
        for width in (1.0, 0.5):
            for total_stride in (32, 16, 8):
                model = build(model_class, num_classes=200, width_mult=width,
                              total_stride=total_stride)
                final = 64 // total_stride
                macs = mac_count(model, 64)
                rows.append([name, f"{width}", f"{total_stride}", f"{final}x{final}",
                             f"{param_count(model):,}", f"{macs:,}", _millions(macs)])
    headers = ["model", "width", "total_stride", "final map", "params", "MACs", "(M)"]
    return _table(headers, rows, "llrrrrr")


def _reference_count(library: str, name: str, **kwargs: object) -> str:
    """Parameters of the reference model, or ``n/a`` where its library isn't installed."""
    try:
        if library == "torchvision":
            import torchvision

            make = getattr(torchvision.models, name)
        else:
            import timm

            make = timm.create_model
            kwargs = {"model_name": name, "pretrained": False, **kwargs}
    except ImportError:  # torchvision and timm are dev dependencies only
        return "n/a"
    return f"{param_count(build(make, **kwargs)):,}"


def v3_table() -> str:
    """MobileNetV3-Large/Small at 224x224 against torchvision and the paper's Table 3."""
    rows = []
    for (variant, width), (paper_params, paper_macs, top1) in V3_PAPER.items():
        model = build(MobileNetV3, variant=variant, width_mult=width)
        params, macs = param_count(model), mac_count(model, 224)
        reference = _reference_count("torchvision", f"mobilenet_v3_{variant}", width_mult=width)
        rows.append([variant, f"{width}", f"{params:,}", reference, f"{paper_params}M",
                     f"{macs:,}", _millions(macs), f"{paper_macs}M", f"{top1}%"])
    headers = ["variant", "width", "params", "torchvision params", "paper", "MACs", "(M)",
               "paper", "paper top-1"]
    return _table(headers, rows, "lrrrrrrrr")


def v4_table() -> str:
    """The convolutional MobileNetV4s at 224x224 against timm and the paper."""
    rows = []
    for variant, (paper_params, paper_gmacs, top1, size) in V4_PAPER.items():
        model = build(MobileNetV4, variant=variant)
        params, macs = param_count(model), mac_count(model, 224)
        at_size = mac_count(model, size)
        rows.append([variant, f"{params:,}", _reference_count("timm", f"mobilenetv4_{variant}"),
                     f"{paper_params}M", f"{macs:,}", _millions(macs), f"{size}",
                     _millions(at_size), f"{paper_gmacs}G", f"{top1}%"])
    headers = ["variant", "params", "timm params", "paper", "MACs at 224", "(M)",
               "paper input", "MACs there", "paper", "paper top-1"]
    return _table(headers, rows, "lrrrrrrrrr")


# The attention models, each with timm's name and the input size its published weights use.
ATTENTION_MODELS = {"mobilenet_v4_hybrid_medium": ("mobilenetv4_hybrid_medium", {}, 256),
                    "mobilenet_v4_hybrid_large": ("mobilenetv4_hybrid_large", {}, 384),
                    "mobilenet_v5_base": ("mobilenetv5_base", {}, 256),
                    "mobilenet_v5_300m": ("mobilenetv5_300m", {"num_classes": 1000}, 768),
                    "mobilenet_v5_300m_encoder": ("mobilenetv5_300m_enc", {}, 768)}


def attention_models_table() -> str:
    """MobileNetV4 hybrids and MobileNetV5 against timm: at their own input size and at 64x64
    (stock, and with total_stride=16)."""
    rows = []
    for name, (timm_name, timm_kwargs, size) in ATTENTION_MODELS.items():
        model = build(create_model, name=name)
        small = build(create_model, name=name, total_stride=16)
        params, macs = param_count(model), mac_count(model, size)
        rows.append([f"`{name}`", f"{params:,}", _reference_count("timm", timm_name,
                                                                  **timm_kwargs),
                     f"{size}", f"{macs:,}", _millions(macs),
                     _millions(mac_count(model, 64)), _millions(mac_count(small, 64))])
    headers = ["model", "params", "timm params", "input", "MACs there", "(M)", "MACs at 64",
               "at 64, total_stride 16"]
    return _table(headers, rows, "lrrrrrrr")


def zoo_small_input_table() -> str:
    """MobileNetV3/V4 for 64x64 inputs and 200 classes, stock and with total_stride=16."""
    rows = []
    for name in ZOO_SMALL_INPUT:
        for total_stride in (32, 16):
            model = build(create_model, name=name, num_classes=200, total_stride=total_stride)
            final = 64 // total_stride
            macs = mac_count(model, 64)
            rows.append([f"`{name}`", "1.0", f"{total_stride}", f"{final}x{final}",
                         f"{param_count(model):,}", f"{macs:,}", _millions(macs)])
    headers = ["model", "width", "total_stride", "final map", "params", "MACs", "(M)"]
    return _table(headers, rows, "llrrrrr")


TABLES: dict[str, Callable[[], str]] = {
    "v1-width": v1_width_table,
    "v1-resolution": v1_resolution_table,
    "v2-width": v2_width_table,
    "small-input": small_input_table,
    "v3": v3_table,
    "v4": v4_table,
    "small-input-v3-v4": zoo_small_input_table,
    "v4-hybrid-v5": attention_models_table,
}

BLOCK = re.compile(r"(<!-- generated: (?P<name>[\w-]+) -->\n)(.*?)(\n<!-- end generated -->)", re.S)


def render(page: str) -> str:
    """``page`` with every generated block replaced by a freshly computed table."""
    names_seen: set[str] = set()

    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in TABLES:
            raise SystemExit(f"unknown generated table {name!r}; known: {', '.join(TABLES)}")
        names_seen.add(name)
        return match[1] + TABLES[name]() + match[4]

    rendered = BLOCK.sub(replace, page)
    missing = set(TABLES) - names_seen
    if missing:
        raise SystemExit(f"{RESULTS_PAGE} has no block for: {', '.join(sorted(missing))}")
    return rendered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the tables in results.md")
    mode.add_argument("--check", action="store_true", help="fail if results.md is out of date")
    args = parser.parse_args(argv)
    if not (args.write or args.check):
        for name, make_table in TABLES.items():
            print(f"<!-- generated: {name} -->\n{make_table()}\n")
        return 0
    page = RESULTS_PAGE.read_text(encoding="utf-8")
    rendered = render(page)
    if args.write:
        RESULTS_PAGE.write_text(rendered, encoding="utf-8")
        print(f"wrote {RESULTS_PAGE}")
        return 0
    if rendered != page:
        print(f"{RESULTS_PAGE} is out of date: run python scripts/results_tables.py --write",
              file=sys.stderr)
        return 1
    print(f"{RESULTS_PAGE} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
