"""Shared by the fault-injection suite (tests/test_faults_*.py): folder snapshots, tiny runs
(and the module-scoped ``data_root``/``finished_run`` fixtures: import them), one-line error
checks and error injection."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from data_helpers import make_official
from mobilecnn.cli import main
from mobilecnn.data import prepare_cache

TINY = ["--width", "0.25", "--batch-size", "12", "--crop", "none", "--lr", "0.05",
        "--precision", "fp32", "--device", "cpu", "--no-progress", "--eval-batch-size", "64"]


def snapshot_bytes(folder: Path) -> dict[str, bytes]:
    """``relative path -> bytes`` of every file under ``folder`` (hidden files included)."""
    return {str(path.relative_to(folder)): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def assert_unchanged(before: dict[str, bytes], folder: Path, *, allow_new: tuple[str, ...] = ()
                     ) -> None:
    """Every file of ``before`` is still there, byte for byte, and nothing else appeared
    (apart from names in ``allow_new``)."""
    after = snapshot_bytes(folder)
    changed = sorted(name for name, data in before.items() if after.get(name) != data)
    assert not changed, f"files changed or lost: {changed}"
    extra = sorted(set(after) - set(before) - set(allow_new))
    assert not extra, f"files appeared: {extra}"


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    """The single stderr line of a failed command (no traceback)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def fails(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the CLI, expect exit status 2 with one line on stderr; returns that line."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exit_info:  # argparse errors
        code = exit_info.code  # type: ignore[assignment]
    assert code == 2, capsys.readouterr()
    return one_line_error(capsys)


def fails_writing_nothing(argv: list[str], folder: Path, monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str]) -> str:
    """:func:`fails`, run in the empty ``folder``, which must still be empty afterwards."""
    monkeypatch.chdir(folder)
    line = fails(argv, capsys)
    assert list(folder.iterdir()) == []
    return line


def make_data(folder: Path) -> Path:
    """3 classes x 16 train / 5 val images of 16x16: 4 steps per epoch at batch 12."""
    return make_official(folder, num_classes=3, train_per_class=16, val_per_class=5,
                         test_images=0, size=16)


def make_run(data_root: Path, out: Path, epochs: int = 1) -> Path:
    """A finished tiny run in ``out`` (via the CLI)."""
    assert main(["train", "--data", str(data_root), "--out", str(out), "--epochs", str(epochs),
                 *TINY]) == 0
    return out


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`make_data` with its caches prepared, once per test module."""
    root = make_data(tmp_path_factory.mktemp("data"))
    for split in ("train", "val"):
        prepare_cache(root, split, num_workers=1, progress=False)
    return root


@pytest.fixture(scope="module")
def finished_run(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 1-epoch run on ``data_root``; copy it (:func:`copy_run`) before changing it."""
    return make_run(data_root, tmp_path_factory.mktemp("run") / "run")


def copy_run(run: Path, destination: Path) -> Path:
    shutil.copytree(run, destination)
    return destination


def os_error(code: int, filename: str | None = None) -> OSError:
    return OSError(code, os.strerror(code), filename)


def raise_on_call(code: int = errno.ENOSPC, after_bytes: bytes = b"partial"
                  ) -> Callable[..., Any]:
    """A replacement for a writer ``f(obj, handle_or_path, ...)``: writes a few bytes (a
    half-written file), then fails like a full disk."""

    def writer(obj: Any, target: Any, *args: Any, **kwargs: Any) -> None:
        if hasattr(target, "write"):
            target.write(after_bytes)
        else:
            Path(target).write_bytes(after_bytes)
        raise os_error(code)

    return writer
