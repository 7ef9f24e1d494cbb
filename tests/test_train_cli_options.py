"""`mobilecnn train` options are generated from TrainConfig's fields: one place to add one."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

import pytest

from fault_helpers import fails_writing_nothing
from mobilecnn.cli import build_parser
from mobilecnn.cli.config_options import add_config_options, given_config_values
from mobilecnn.train.config import TrainConfig, check_field, option

OLD_FLAGS = [  # every flag of mobilecnn 0.1.0's train command, with a value
    ["--data", "demo"], ["--out", "x"], ["--model", "mobilenet_v1"], ["--width", "0.5"],
    ["--total-stride", "32"], ["--dropout", "0.1"], ["--epochs", "3"], ["--batch-size", "8"],
    ["--optimizer", "adamw"], ["--lr", "0.01"], ["--momentum", "0.8"], ["--weight-decay", "0"],
    ["--warmup-epochs", "0"], ["--label-smoothing", "0"], ["--grad-clip", "1"],
    ["--crop", "pad"], ["--no-flip"], ["--precision", "fp32"], ["--no-channels-last"],
    ["--compile"], ["--device", "cpu"], ["--seed", "3"], ["--eval-batch-size", "16"],
    ["--cache-dir", "c"], ["--progress"], ["--no-progress"], ["--resume"],
    ["--resume", "run/last.pt"],
]


@pytest.mark.parametrize("flag", OLD_FLAGS, ids=lambda flag: flag[0])
def test_every_old_flag_still_parses(flag: list[str]) -> None:
    args = build_parser().parse_args(["train", *flag])
    assert args.func.__name__ == "run_train"


def test_given_options_map_to_fields_and_the_rest_stay_unset() -> None:
    args = build_parser().parse_args(["train", "--out", "r", "--no-flip", "--lr", "0.5",
                                      "--skip-bad", "--image-size", "32", "--skip-nonfinite"])
    assert given_config_values(args, TrainConfig) == {
        "out_dir": "r", "flip": False, "lr": 0.5, "skip_bad": True, "image_size": 32,
        "skip_nonfinite": True}
    TrainConfig(**given_config_values(args, TrainConfig))  # a valid config


def test_a_new_field_becomes_an_option_with_its_help_and_rule() -> None:
    def even(name: str, value: object) -> None:
        if not isinstance(value, int) or value % 2:
            raise ValueError(f"{name} must be even, got {value!r}")

    @dataclass
    class Config:
        ema_decay: float | None = option(None, "EMA of the weights with this decay")
        mixup: bool = option(False, "mix pairs of images")
        recipe: str = option("default", "named recipe", choices=("default", "long"))
        blocks: int = option(2, "an even number", check=even)
        hidden: int = option(1, "not an option", cli=False)

    parser = argparse.ArgumentParser(prog="t", exit_on_error=False)
    names = add_config_options(parser, Config, lambda name, value: None)
    assert names == ["ema_decay", "mixup", "recipe", "blocks"]
    text = parser.format_help()
    assert "--ema-decay EMA_DECAY" in text and "EMA of the weights" in text
    assert "--mixup" in text and "(default default)" in text and "--hidden" not in text
    args = parser.parse_args(["--ema-decay", "0.999", "--mixup", "--blocks", "4"])
    assert given_config_values(args, Config) == {"ema_decay": 0.999, "mixup": True,
                                                 "blocks": 4}
    with pytest.raises(argparse.ArgumentError, match="blocks must be even, got 3"):
        parser.parse_args(["--blocks", "3"])
    with pytest.raises(argparse.ArgumentError, match="invalid choice"):
        parser.parse_args(["--recipe", "short"])


def test_every_cli_field_has_help_and_a_rule() -> None:
    for item in dataclasses.fields(TrainConfig):
        assert item.metadata.get("help"), f"{item.name} has no help text"
        check_field(item.name, item.default)  # the defaults pass their own rule


@pytest.mark.parametrize(("argv", "message"), [
    (["train", "--data", "demo", "--qat", "--epochs", "1"],
     "mobilecnn: error: --qat fine-tunes trained weights: add --init CHECKPOINT"),
    (["train", "--data", "demo", "--out", ""],
     "argument --out: out_dir must be a folder path, got ''; pass a folder name"),
    (["train", "--data", "demo", "--out", "  "], "out_dir must be a folder path, got '  '"),
    (["demo", "--out", ""], "argument --out: expected a path, got ''"),
    (["train", "--data", "demo", "--device", "meta"], "device 'meta' holds shapes but no data"),
    (["train", "--data", "demo", "--device", "tpu"], "device 'tpu' is not a device"),
])
def test_train_refuses_values_it_cannot_honour_and_writes_nothing(
    argv: list[str], message: str, tmp_path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    assert message in fails_writing_nothing(argv, tmp_path, monkeypatch, capsys)


def test_the_qat_help_and_the_check_agree() -> None:
    text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert "--qat" in text and "with --init CHECKPOINT" in " ".join(text.split())
    with pytest.raises(ValueError, match="out_dir must be a folder path"):
        TrainConfig(out_dir="")
    with pytest.raises(ValueError, match="device 'meta'"):
        TrainConfig(device="meta")
