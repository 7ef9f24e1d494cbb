"""Faults: full and read-only file systems, injected as the OSError the OS would raise.

(Root ignores permission bits and CI runs as root, so a chmod-ed folder proves nothing; the
errors are injected where the library writes.) Each case: one line on stderr, exit status 2,
every file that existed before is byte-identical, and no temporary file is left behind.
"""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import threading
import time
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


# ---------------------------------------------------------------- special outputs

def _fifo_reader(fifo: Path) -> tuple[threading.Thread, list[bytes]]:
    received: list[bytes] = []
    thread = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    thread.start()
    return thread, received


def test_outputs_through_links_devices_and_pipes_never_replace_them(
    finished_run: Path, data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    checkpoint = str(finished_run / "best.pt")
    evaluate = ["eval", "--checkpoint", checkpoint, "--data", str(data_root), "--device", "cpu"]
    real = tmp_path / "kept" / "per_class.csv"
    real.parent.mkdir()
    real.write_text("old\n")
    link = tmp_path / "per_class.csv"
    link.symlink_to(real)
    assert main([*evaluate, "--per-class", str(link)]) == 0
    assert link.is_symlink() and link.resolve() == real  # the link stays, its file is new
    assert real.read_text().startswith("class_index,") and not [
        p.name for p in real.parent.iterdir() if ".tmp-" in p.name]
    to_null = tmp_path / "null.csv"
    to_null.symlink_to(os.devnull)
    assert main([*evaluate, "--per-class", str(to_null)]) == 0
    assert main([*evaluate, "--per-class", os.devnull]) == 0
    assert to_null.is_symlink() and Path(os.devnull).is_char_device()
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    line = fails([*evaluate, "--per-class", str(fifo)], capsys)  # nobody reads it
    assert ("pipe.csv: no process is reading this pipe: start the reader first, or write to "
            "a file" in line)
    thread, received = _fifo_reader(fifo)
    time.sleep(0.2)
    assert main([*evaluate, "--per-class", str(fifo)]) == 0
    thread.join(10)
    assert received and received[0].startswith(b"class_index,")
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_bench_csv_and_plot_to_dev_null_and_through_a_link(tmp_path: Path) -> None:
    real = tmp_path / "plots" / "bench.png"
    real.parent.mkdir()
    link = tmp_path / "bench.png"
    link.symlink_to(real)
    assert main(["bench", "mobilenet_v2", "--width", "0.25", "--num-classes", "3",
                 "--input-size", "32", "--batch-size", "1", "--backends", "eager",
                 "--budget", "0.01", "--min-reps", "1", "--max-reps", "1", "--warmup", "0",
                 "--threads", "1", "--csv", os.devnull, "--plot", str(link)]) == 0
    assert link.is_symlink() and real.read_bytes().startswith(b"\x89PNG")
    assert Path(os.devnull).is_char_device()


def test_runtime_model_save_writes_through_links_and_to_dev_null(tmp_path: Path) -> None:
    helper = pytest.importorskip("onnx.helper", reason="needs the onnx extra")
    pytest.importorskip("onnxruntime", reason="needs the onnx extra")
    from mobilecnn.deploy import RuntimeModel

    graph = helper.make_graph(
        [helper.make_node("Identity", ["images"], ["logits"])], "identity",
        [helper.make_tensor_value_info("images", 1, ["batch", 3, 4, 4])],
        [helper.make_tensor_value_info("logits", 1, ["batch", 3, 4, 4])])
    program = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    program.ir_version = 8
    model = RuntimeModel(program.SerializeToString(), "onnx", "fp32")
    real = tmp_path / "models" / "m.onnx"
    real.parent.mkdir()
    real.write_bytes(b"old")
    link = tmp_path / "m.onnx"
    link.symlink_to(real)
    model.save(link)
    assert link.is_symlink() and real.read_bytes() == model.program
    model.save(os.devnull)
    assert Path(os.devnull).is_char_device()


def test_a_full_disk_during_a_torchscript_export_is_one_line(tmp_path: Path) -> None:
    """A real write failure (the file-size limit, EFBIG): torch.jit.save writing a file itself
    aborted the whole process in C++ (SIGABRT); now one line, exit 2, nothing left behind."""
    out = tmp_path / "model.pt"
    out.write_bytes(b"an earlier export")

    limited = ("import resource, runpy, sys; "
               "resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.RLIM_INFINITY)); "
               "sys.argv[0] = 'mobilecnn'; runpy.run_module('mobilecnn', run_name='__main__')")
    done = subprocess.run(
        [sys.executable, "-c", limited, "export", "mobilenet_v2", "--width", "0.25",
         "--num-classes", "3", "--input-size", "32", "--format", "torchscript", "--out",
         str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("mobilecnn: error: ") and str(out) in lines[0]
    assert "too large" in lines[0].lower()
    assert out.read_bytes() == b"an earlier export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]  # no temporary file
