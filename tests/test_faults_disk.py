"""Faults: full and read-only file systems, injected as the OSError the OS would raise.

(Root ignores permission bits and CI runs as root, so a chmod-ed folder proves nothing; the
errors are injected where the library writes.) Each case: one line on stderr, exit status 2,
every file that existed before is byte-identical, and no temporary file is left behind.
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

import fault_helpers
from fault_helpers import (
    TINY,
    assert_unchanged,
    copy_run,
    fails,
    make_data,
    os_error,
    raise_on_call,
    snapshot_bytes,
)
from mobilecnn.cli import main
from mobilecnn.data import CacheError, prepare_cache

pytestmark = pytest.mark.usefixtures("one_thread")

# the fault suite's module-scoped fixtures: tiny data with its caches, a finished 1-epoch run
data_root, finished_run = fault_helpers.data_root, fault_helpers.finished_run


def test_full_disk_while_saving_a_checkpoint_keeps_the_old_run(
    finished_run: Path, data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = copy_run(finished_run, tmp_path / "run")
    before = snapshot_bytes(run)
    monkeypatch.setattr("mobilecnn.train.checkpoints.torch.save", raise_on_call(errno.ENOSPC))
    line = fails(["train", "--out", str(run), "--resume", "--epochs", "2", "--no-progress"],
                 capsys)
    assert "last.pt: the disk is full" in line
    assert_unchanged(before, run)  # last.pt, best.pt, metrics, config.json: all as they were


def test_full_disk_while_writing_metrics_keeps_the_checkpoint_consistent(
    finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = copy_run(finished_run, tmp_path / "run")
    metrics_before = (run / "metrics.jsonl").read_bytes()
    real_replace = __import__("os").replace

    def replace(source: str, target: str) -> None:
        if str(target).endswith("metrics.jsonl"):
            raise os_error(errno.ENOSPC)
        real_replace(source, target)

    monkeypatch.setattr("mobilecnn.fileio.os.replace", replace)
    line = fails(["train", "--out", str(run), "--resume", "--epochs", "2", "--no-progress"],
                 capsys)
    assert "metrics.jsonl: the disk is full" in line
    assert (run / "metrics.jsonl").read_bytes() == metrics_before
    assert not [p.name for p in run.iterdir() if ".tmp-" in p.name]
    # the epoch-2 checkpoint was written first; resuming again finishes the run
    monkeypatch.undo()
    assert main(["train", "--out", str(run), "--resume", "--no-progress"]) == 0
    assert (run / "metrics.jsonl").read_text().count("\n") == 2


def test_read_only_data_root_asks_for_cache_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    root = make_data(tmp_path / "ro")
    before = snapshot_bytes(root)
    real_mkdir = Path.mkdir

    def mkdir(self: Path, *args: object, **kwargs: object) -> None:
        if self.name == ".mobilecnn_cache":
            raise os_error(errno.EROFS, str(self))
        real_mkdir(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "mkdir", mkdir)
    line = fails(["prepare", "--data", str(root), "--split", "val", "--no-progress"], capsys)
    assert "cannot write the cache" in line and "--cache-dir" in line
    assert_unchanged(before, root)
    with pytest.raises(CacheError, match="cache_dir="):  # the Python API: same message, typed
        prepare_cache(root, "val", num_workers=1, progress=False)
    monkeypatch.undo()
    assert main(["prepare", "--data", str(root), "--split", "val", "--no-progress",
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    assert_unchanged(before, root)


def test_full_disk_while_decoding_leaves_no_temporary_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    root = make_data(tmp_path / "data")
    cache = tmp_path / "cache"
    assert main(["prepare", "--data", str(root), "--split", "val", "--no-progress",
                 "--cache-dir", str(cache), "--workers", "1"]) == 0
    before = snapshot_bytes(cache)

    def pwrite(descriptor: int, data: bytes, offset: int) -> int:
        raise os_error(errno.ENOSPC)

    monkeypatch.setattr("mobilecnn.data.cache.os.pwrite", pwrite)
    line = fails(["prepare", "--data", str(root), "--split", "train", "--no-progress",
                  "--cache-dir", str(cache), "--workers", "1"], capsys)
    assert "cannot write the cache" in line and "free some space" in line
    assert_unchanged(before, cache)  # the val cache is intact, no half train cache


def test_read_only_or_file_out_folder_for_train(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me")
    line = fails(["train", "--data", str(data_root), "--out", str(a_file), *TINY], capsys)
    assert "is a file, not a folder" in line
    assert a_file.read_text() == "keep me"
    real_mkdir = Path.mkdir

    def mkdir(self: Path, *args: object, **kwargs: object) -> None:
        if self.name == "new-run":
            raise os_error(errno.EROFS, str(self))
        real_mkdir(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "mkdir", mkdir)
    line = fails(["train", "--data", str(data_root), "--out", str(tmp_path / "new-run"), *TINY],
                 capsys)
    assert line.endswith("new-run: the file system is read-only: write somewhere else (--out, "
                         "--cache-dir)")


def test_eval_onto_the_checkpoint_and_onto_a_full_disk(
    finished_run: Path, data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = copy_run(finished_run, tmp_path / "run")
    before = snapshot_bytes(run)
    line = fails(["eval", "--checkpoint", str(run / "best.pt"), "--data", str(data_root),
                  "--per-class", str(run / "best.pt"), "--device", "cpu"], capsys)
    assert "is also an input of this command" in line
    monkeypatch.setattr("mobilecnn.fileio._fsync_file", lambda path: (_ for _ in ()).throw(
        os_error(errno.ENOSPC)))
    line = fails(["eval", "--checkpoint", str(run / "best.pt"), "--data", str(data_root),
                  "--per-class", str(run / "val_per_class.csv"), "--device", "cpu"], capsys)
    assert "per-class accuracy could not be written" in line
    assert "val_per_class.csv: the disk is full" in line and "--per-class FILE" in line
    assert_unchanged(before, run)
