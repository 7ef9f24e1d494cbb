"""The ``mobilecnn`` command line: compare and summary, errors with exit status 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mobilecnn.cli import main


def test_compare_prints_the_classic_comparison(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "--in", "128", "--out", "256", "--kernel", "3"]) == 0
    out = capsys.readouterr().out
    assert "294,912" in out and "33,920" in out and "8.69x" in out
    assert "1/N + 1/k^2" in out


def test_compare_other_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "--in", "32", "--out", "64", "--kernel", "5"]) == 0
    out = capsys.readouterr().out
    assert f"{5 * 5 * 32 * 64:,}" in out and f"{5 * 5 * 32 + 32 * 64:,}" in out


def test_summary_prints_table_and_totals(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["summary", "mobilenet_v2", "--input-size", "224", "--width", "1.0",
                 "--num-classes", "1000"])
    assert code == 0
    out = capsys.readouterr().out
    assert "Total params:      3,504,872" in out
    assert "(300.8M)" in out
    assert "features.18.conv" in out


def test_summary_small_input_variant(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "mobilenet_v1", "--input-size", "64", "--total-stride", "16",
                 "--num-classes", "200", "--width", "0.25"]) == 0
    assert "[1, 256, 4, 4]" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["summary", "resnet50"], "invalid choice: 'resnet50'"),
        (["summary", "mobilenet_v2", "--width", "-1"], "expected a positive number, got '-1'"),
        (["summary", "mobilenet_v2", "--input-size", "abc"], "expected a positive integer"),
        (["compare", "--in", "0"], "expected a positive integer, got '0'"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_library_errors_are_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("width_mult must be > 0, got 0")

    monkeypatch.setattr("mobilecnn.models.create_model", broken)
    assert main(["summary", "mobilenet_v2"]) == 2
    err = capsys.readouterr().err
    assert err == "mobilecnn: error: width_mult must be > 0, got 0\n"


def test_console_entry_points_run() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mobilecnn", "compare"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "33,920" in result.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "mobilecnn", "summary", "nope"],
        capture_output=True, text=True, check=False,
    )
    assert bad.returncode == 2
    from mobilecnn import MODELS

    choices = ", ".join(repr(name) for name in sorted(MODELS))
    assert bad.stderr.strip().splitlines() == [
        f"mobilecnn summary: error: argument MODEL: invalid choice: 'nope' (choose from "
        f"{choices}) (see 'mobilecnn summary --help')"
    ]
