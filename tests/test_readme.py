"""The README stays true: its count tables are recomputed, CI runs its test command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from mobilecnn import create_model, mac_count, param_count

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _table_rows(header_start: str) -> list[list[str]]:
    lines = README.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip().strip("`") for cell in line.strip("|").split("|")])
    assert rows, f"no rows under {header_start!r}"
    return rows


def _millions(text: str) -> float:
    return float(text.rstrip("M"))


@pytest.mark.parametrize(
    "row",
    _table_rows("| model | width | input | parameters | MACs |"),
    ids=lambda r: "-".join(r[:2]),
)
def test_imagenet_table_row(row: list[str]) -> None:
    name, width, size, params, macs = row[:5]
    with torch.device("meta"):  # shapes only: counting allocates and computes nothing
        model = create_model(name, width_mult=float(width))
    assert param_count(model) == int(params.replace(",", ""))
    assert round(mac_count(model, int(size)) / 1e6, 1) == _millions(macs)


@pytest.mark.parametrize(
    "row",
    _table_rows("| model | width | total_stride | input |"),
    ids=lambda r: "-".join(r[:3]),
)
def test_small_input_table_row(row: list[str]) -> None:
    name, width, total_stride, size, params, macs, final = row
    with torch.device("meta"):  # shapes only: counting allocates and computes nothing
        model = create_model(name, width_mult=float(width), num_classes=200,
                             total_stride=int(total_stride))
    side = int(size.split("x")[0])
    assert param_count(model) == int(params.replace(",", ""))
    assert round(mac_count(model, side) / 1e6, 1) == _millions(macs)
    features = model.forward_features(torch.zeros(1, 3, side, side, device="meta"))
    assert "x".join(map(str, features.shape[-2:])) == final


def _bash_commands() -> list[str]:
    return re.findall(r"```bash\n(.*?)\n```", README, flags=re.S)


def test_ci_runs_the_readme_test_command() -> None:
    test_command = next(c for c in _bash_commands() if "pytest" in c)
    ci_script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test_command in ci_script.splitlines()


def test_readme_cli_examples_parse() -> None:
    from mobilecnn.cli import build_parser

    parser = build_parser()
    for block in _bash_commands():
        for command in block.split("&&"):
            words = command.split()
            if words and words[0] == "mobilecnn":
                parser.parse_args(words[1:])  # exits with status 2 on a renamed flag
