"""Faults in the data: damaged decoded caches, inconsistent TinyImageNet annotations, stale
temporary caches of killed runs, orphaned decoding workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from data_helpers import make_official
from fault_helpers import assert_unchanged, fails, snapshot_bytes
from mobilecnn.cli import main
from mobilecnn.data import (
    CacheError,
    CacheRebuiltWarning,
    TinyImageNet,
    load_cache,
    prepare_cache,
    read_cache_info,
)
from mobilecnn.data.cache import write_decoded_cache


def small_root(folder: Path, train_per_class: int = 4) -> Path:
    return make_official(folder, num_classes=3, train_per_class=train_per_class,
                         val_per_class=2, test_images=0, size=8)


def flip_byte(path: Path, offset: int) -> None:
    with path.open("r+b") as file:
        file.seek(offset)
        value = file.read(1)[0]
        file.seek(offset)
        file.write(bytes([value ^ 0xFF]))


# ---------------------------------------------------------------- damaged caches

def test_a_flipped_image_byte_is_caught_and_rebuilt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = small_root(tmp_path / "data")
    path = prepare_cache(root, "train", num_workers=1, progress=False)
    good = path.read_bytes()
    flip_byte(path, 3 * 8 * 8 * 5 + 7)  # inside image 5
    with pytest.raises(CacheError, match=r"is damaged: checksum mismatch in the images 0-11 "
                                         r"\(block 0\).*mobilecnn prepare"):
        load_cache(path)
    with pytest.warns(CacheRebuiltWarning, match="checksum mismatch.*rebuilding it"):
        assert prepare_cache(root, "train", num_workers=1, progress=False) == path
    assert path.read_bytes() == good
    flip_byte(path, 3 * 8 * 8 * 12 + 2)  # a label byte
    with pytest.raises(CacheError, match="checksum mismatch in the labels"):
        load_cache(path)
    capsys.readouterr()
    assert main(["prepare", "--data", str(root), "--split", "train", "--no-progress"]) == 0
    assert "checksum mismatch in the labels" in capsys.readouterr().err  # warned, rebuilt
    assert path.read_bytes() == good


def test_every_byte_of_the_metadata_trailer_is_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One flipped bit in a class name used to rename the class silently (0.2.0)."""
    root = small_root(tmp_path / "data")
    path = prepare_cache(root, "train", num_workers=1, progress=False)
    good = path.read_bytes()
    name_at = good.rindex(b'"n00000001"') + 9  # the last digit of a class id in the metadata
    tail_at = len(good) - 24  # metadata checksum, its length, the end marker
    for offset in (name_at, tail_at, tail_at + 3, tail_at + 8, len(good) - 1):
        path.write_bytes(good)
        with path.open("r+b") as file:
            file.seek(offset)
            byte = file.read(1)[0]
            file.seek(offset)
            file.write(bytes([byte ^ 0x01]))  # one bit
        with pytest.raises(CacheError, match=f"cache file {path} .*(damaged|truncated)"):
            load_cache(path, verify=False)  # even without verifying the images
        with pytest.raises(CacheError):
            read_cache_info(path)
    path.write_bytes(good)
    flip_byte(path, name_at)
    capsys.readouterr()
    assert main(["prepare", "--data", str(root), "--split", "train", "--no-progress",
                 "--workers", "1"]) == 0
    captured = capsys.readouterr()
    assert ("checksum mismatch in the metadata (classes, sizes, checksums); delete it and run "
            "`mobilecnn prepare` (prepare_cache rebuilds it): rebuilding it") in captured.err
    assert "rebuilding" not in captured.out
    assert path.read_bytes() == good
    assert load_cache(path).classes == ["n00000000", "n00000001", "n00000002"]


def test_a_rebuilt_cache_says_why_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = small_root(tmp_path / "data")
    path = prepare_cache(root, "val", num_workers=1, progress=False)
    good = path.read_bytes()
    # a cache of format 2 (mobilecnn 0.2.0): JSON, its length, the old end marker
    old_meta = b'{"format_version": 2}'
    path.write_bytes(b"\0" * 64 + old_meta + len(old_meta).to_bytes(8, "little") + b"MCNNCACH")
    with pytest.raises(CacheError, match="has an older format"):
        load_cache(path)
    command = ["prepare", "--data", str(root), "--split", "val", "--no-progress", "--workers",
               "1"]
    capsys.readouterr()
    assert main(command) == 0
    assert "has an older format" in capsys.readouterr().err and path.read_bytes() == good
    image = next((root / "val" / "images").iterdir())
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))
    assert main(command) == 0
    err = capsys.readouterr().err
    assert f"warning: cache file {path} is out of date: the images, labels or classes" in err
    assert err.rstrip().endswith("rebuilding it")
    assert main(command) == 0
    assert "warning" not in capsys.readouterr().err  # an up-to-date cache: nothing to say


def test_an_out_of_range_label_is_an_error_not_an_index_error(tmp_path: Path) -> None:
    images = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
    # a consistent file (checksums match) whose labels do not fit its 3 classes
    path = write_decoded_cache(tmp_path / "bad.mcache", images, torch.tensor([0, 1, 7, 2]),
                               ["a", "b", "c"])
    with pytest.raises(CacheError, match=r"labels outside 0\.\.2 \(found 0\.\.7\)"):
        load_cache(path)
    path = write_decoded_cache(tmp_path / "ok.mcache", images, torch.tensor([0, 1, 2, 2]),
                               ["a", "b", "c"])
    assert load_cache(path).labels.tolist() == [0, 1, 2, 2]


def test_a_stale_temporary_cache_of_a_dead_process_is_removed(tmp_path: Path) -> None:
    root = small_root(tmp_path / "data")
    folder = root / ".mobilecnn_cache"
    folder.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    pid = int(dead.stdout)
    stale = [folder / f".tiny-imagenet-200-train.mcache.tmp-{pid}-0badc0de",
             folder / f"tiny-imagenet-200-train.mcache.tmp-{pid}"]  # the 0.1.0 name
    alive = folder / f".tiny-imagenet-200-val.mcache.tmp-{os.getpid()}-0badc0de"
    for path in (*stale, alive):
        path.write_bytes(b"\0" * 1000)
    prepare_cache(root, "train", num_workers=1, progress=False)
    assert not any(path.exists() for path in stale)
    assert alive.exists()  # a live process's temporary file is never touched


# ---------------------------------------------------------------- bad annotations

def _annotations(root: Path) -> Path:
    return root / "val" / "val_annotations.txt"


@pytest.mark.parametrize(("damage", "message"), [
    ("conflict", "1 image(s) annotated with different classes (e.g. val_0.JPEG)"),
    ("repeat", "1 image(s) annotated more than once (e.g. val_1.JPEG)"),
    ("unlisted", "1 image(s) in val/images without an annotation line (e.g. val_2.JPEG)"),
    ("empty-class", "1 class(es) without any image (e.g. n00000001)"),
])
def test_inconsistent_val_annotations_are_errors_or_counted_warnings(
    damage: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = small_root(tmp_path / "data")
    lines = _annotations(root).read_text().splitlines(keepends=True)
    if damage == "conflict":
        other = "n00000001" if "n00000000" in lines[0] else "n00000000"
        lines.append(f"val_0.JPEG\t{other}\t0\t0\t7\t7\n")
    elif damage == "repeat":
        lines.append(lines[1])
    elif damage == "unlisted":
        lines = [line for line in lines if not line.startswith("val_2.JPEG")]
    else:
        lines = [line for line in lines if "n00000001" not in line]
    _annotations(root).write_text("".join(lines))
    before = snapshot_bytes(root)
    line = fails(["prepare", "--data", str(root), "--split", "val", "--no-progress"], capsys)
    assert message in line and "--skip-bad" in line
    assert_unchanged(before, root)  # nothing written, not even the cache folder
    assert main(["prepare", "--data", str(root), "--split", "val", "--no-progress",
                 "--skip-bad"]) == 0
    printed = capsys.readouterr().err
    assert "warning: data problems in split 'val'" in printed and message in printed
    with pytest.warns(UserWarning, match="left out"):
        kept = len(TinyImageNet(root, "val", skip_bad=True))
    expected = {"conflict": 5, "repeat": 6, "unlisted": 5, "empty-class": 4}[damage]
    assert kept == expected


def test_a_missing_annotated_image_and_an_empty_train_class(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = small_root(tmp_path / "data")
    (root / "val" / "images" / "val_3.JPEG").unlink()
    line = fails(["prepare", "--data", str(root), "--split", "val", "--no-progress"], capsys)
    assert "val_3.JPEG does not exist (1 annotated images missing)" in line
    for image in (root / "train" / "n00000002" / "images").iterdir():
        image.unlink()
    line = fails(["prepare", "--data", str(root), "--split", "train", "--no-progress"], capsys)
    assert "1 class(es) without any image (e.g. n00000002)" in line


# ---------------------------------------------------------------- decoding workers

@pytest.mark.slow
def test_killing_prepare_leaves_no_orphan_workers(tmp_path: Path) -> None:
    root = make_official(tmp_path / "data", num_classes=4, train_per_class=300,
                         val_per_class=1, test_images=0, size=64)
    process = subprocess.Popen([sys.executable, "-m", "mobilecnn", "prepare", "--data",
                                str(root), "--split", "train", "--workers", "2",
                                "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    workers: list[str] = []
    deadline = time.monotonic() + 60
    while len(workers) < 2 and time.monotonic() < deadline and process.poll() is None:
        workers = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True,
                                 text=True).stdout.split()
        time.sleep(0.02)
    assert len(workers) == 2, "the decoding workers never started"
    process.send_signal(signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 10
    alive = workers
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in workers if Path(f"/proc/{pid}").exists()
                 and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"]
        time.sleep(0.05)
    for pid in alive:  # do not leave them behind even when the test fails
        os.kill(int(pid), signal.SIGKILL)
    assert not alive, f"orphaned decoding workers: {alive}"
    prepare_cache(root, "val", num_workers=1, progress=False)  # cleans the dead run's temp
    assert [p.name for p in (root / ".mobilecnn_cache").iterdir()] == [
        "tiny-imagenet-200-val.mcache"]


def test_a_killed_download_leaves_nothing_the_next_one_keeps(tmp_path: Path) -> None:
    from mobilecnn.data.download import _remove_stale_downloads

    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout)
    archive = tmp_path / f".tiny-imagenet-200.{dead}.k3j2.zip.part"
    archive.write_bytes(b"\0" * 1000)
    staging = tmp_path / f".tiny-imagenet-200.{dead}.x9a1.partial"
    (staging / "tiny-imagenet-200").mkdir(parents=True)
    live = tmp_path / f".tiny-imagenet-200.{os.getpid()}.a1b2.zip.part"
    live.write_bytes(b"\0")
    mine = tmp_path / "notes.zip.part"
    mine.write_bytes(b"keep")
    _remove_stale_downloads(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, mine.name])
