"""The decoded cache: a split decoded once into one uint8 file, read back memory-mapped.

File layout (native byte order, recorded in the trailer)::

    images  uint8  N x 3 x H x W   at offset 0
    labels  int64  N               right after the images
    trailer UTF-8 JSON metadata (classes, class names, source fingerprint, checksums, ...)
    8 bytes little-endian length of the JSON, then the 8-byte end marker b"MCNNCACH"

The file is written under a temporary name that is renamed when complete, so a truncated or
half-written file is detected by :func:`load_cache` and rebuilt by :func:`prepare_cache`.
The trailer holds a CRC-32 of every 4 MiB block of the image area and of the label area;
:func:`load_cache` verifies them (about 1 GB/s: docs/data.md) and checks every label is a
class index, so a damaged cache is an error naming the file, never silently used.
"""

from __future__ import annotations

import errno
import json
import os
import sys
import warnings
import zlib
from array import array
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..fileio import atomic_path, clean_stale_temps
from ._deps import tqdm_bar
from .tinyimagenet import SPLITS, CorruptImageError, TinyImageNet, _open_rgb, resolve_root

__all__ = [
    "CACHE_DIRNAME",
    "CacheError",
    "DecodedSplit",
    "cache_path",
    "load_cache",
    "prepare_cache",
    "read_cache_info",
    "verify_cache",
]

CACHE_DIRNAME = ".mobilecnn_cache"
"""The folder under a data root holding its caches: the only thing mobilecnn writes there."""
END_MARKER = b"MCNNCACH"
FORMAT_VERSION = 2
"""2: per-block CRC-32 checksums in the trailer (version 1 caches are rebuilt)."""
CHECKSUM_BLOCK = 4 * 2**20
_TRAILER_TAIL = 16  # JSON length (8 bytes) + end marker (8 bytes)
_UNWRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)
_FULL = (errno.ENOSPC, errno.EDQUOT)


class CacheError(ValueError):
    """A cache file that is truncated, not a cache, or cannot be written; names the file."""


@dataclass
class DecodedSplit:
    """A decoded split: ``images`` uint8 ``N x 3 x H x W`` (memory-mapped), ``labels`` int64."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    class_names: list[str]
    split: str = ""
    source: str = ""
    """The data root the cache was made from."""
    fingerprint: str = ""
    skipped: list[str] = field(default_factory=list)
    """Unreadable files left out by ``prepare_cache(skip_bad=True)`` (paths under the root)."""
    path: Path | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def cache_path(
    root: str | os.PathLike[str],
    split: str,
    cache_dir: str | os.PathLike[str] | None = None,
    image_size: int | None = None,
) -> Path:
    """Where :func:`prepare_cache` puts the cache of ``split``: by default
    ``<root>/.mobilecnn_cache/<name>-<split>.mcache``."""
    data_root = resolve_root(root)
    folder = Path(cache_dir).expanduser() if cache_dir is not None else data_root / CACHE_DIRNAME
    suffix = f"-{image_size}px" if image_size is not None else ""
    return folder / f"{data_root.name}-{split}{suffix}.mcache"


def read_cache_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata of a cache file, after checking its size; raises :class:`CacheError`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"cache file {path} does not exist; build it with "
                                "`mobilecnn prepare --data DIR` or prepare_cache(root, split)")
    size = path.stat().st_size
    broken = (f"cache file {path} is truncated or not a mobilecnn cache; delete it and run "
              "`mobilecnn prepare` (prepare_cache rebuilds it)")
    if size < _TRAILER_TAIL:
        raise CacheError(broken)
    with path.open("rb") as file:
        file.seek(size - _TRAILER_TAIL)
        tail = file.read(_TRAILER_TAIL)
        json_length = int.from_bytes(tail[:8], "little")
        if tail[8:] != END_MARKER or json_length > size - _TRAILER_TAIL:
            raise CacheError(broken)
        file.seek(size - _TRAILER_TAIL - json_length)
        try:
            info = json.loads(file.read(json_length).decode("utf-8"))
            count, channels, height, width = (int(info[key]) for key in (
                "count", "channels", "height", "width"))
        except (ValueError, KeyError, TypeError):
            raise CacheError(broken) from None
    if info.get("format_version") != FORMAT_VERSION:
        raise CacheError(f"cache file {path} has format version {info.get('format_version')}, "
                         f"this mobilecnn reads {FORMAT_VERSION}; run `mobilecnn prepare` again "
                         "(it rebuilds the cache)")
    expected = count * channels * height * width + 8 * count + json_length + _TRAILER_TAIL
    if expected != size:
        raise CacheError(f"{broken} (size {size} bytes, expected {expected})")
    if info.get("byteorder") != sys.byteorder:
        raise CacheError(f"cache file {path} was written on a {info.get('byteorder')}-endian "
                         "machine; run `mobilecnn prepare` again here")
    return info


def _block_checksums(path: Path, length: int) -> list[int]:
    """CRC-32 of each ``CHECKSUM_BLOCK`` bytes of the first ``length`` bytes of ``path``."""
    sums: list[int] = []
    buffer = bytearray(CHECKSUM_BLOCK)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as file:
        remaining = length
        while remaining > 0:
            want = min(CHECKSUM_BLOCK, remaining)
            got = file.readinto(view[:want])
            if not got:
                break
            while got < want:  # short reads
                more = file.readinto(view[got:want])
                if not more:
                    break
                got += more
            sums.append(zlib.crc32(view[:got]))
            remaining -= got
    return sums


def verify_cache(path: str | os.PathLike[str], info: dict[str, Any] | None = None) -> None:
    """Check the image and label checksums of a cache; raises :class:`CacheError` naming the
    damaged part."""
    path = Path(path)
    info = read_cache_info(path) if info is None else info
    count = int(info["count"])
    image_bytes = count * int(info["channels"]) * int(info["height"]) * int(info["width"])
    expected = info.get("image_crc32")
    label_crc = info.get("label_crc32")
    if not isinstance(expected, list) or not isinstance(label_crc, int):
        raise CacheError(f"cache file {path} has no checksums; run `mobilecnn prepare` again")
    actual = _block_checksums(path, image_bytes)
    for index, (want, got) in enumerate(zip(expected, actual, strict=False)):
        if want != got:
            slot = image_bytes // count if count else 1
            first = index * CHECKSUM_BLOCK // slot
            last = min(count, ((index + 1) * CHECKSUM_BLOCK - 1) // slot + 1) - 1
            raise CacheError(
                f"cache file {path} is damaged: checksum mismatch in the images "
                f"{first}-{last} (block {index}); delete it and run `mobilecnn prepare` "
                "(prepare_cache rebuilds it)")
    if len(actual) != len(expected):
        raise CacheError(f"cache file {path} is damaged (image area size); delete it and run "
                         "`mobilecnn prepare`")
    with path.open("rb") as file:
        file.seek(image_bytes)
        if zlib.crc32(file.read(8 * count)) != label_crc:
            raise CacheError(f"cache file {path} is damaged: checksum mismatch in the labels; "
                             "delete it and run `mobilecnn prepare` (prepare_cache rebuilds it)")


def load_cache(path: str | os.PathLike[str], verify: bool = True) -> DecodedSplit:
    """Open a cache made by :func:`prepare_cache`: images memory-mapped (copy-on-write, the file
    is never modified), labels read into memory.

    ``verify`` checks the block checksums first (reads the whole file once, about 1 GB/s);
    every label is always checked to be a class index (-1 only in the test split).
    """
    path = Path(path)
    info = read_cache_info(path)
    if verify:
        verify_cache(path, info)
    count, channels, height, width = (info[k] for k in ("count", "channels", "height", "width"))
    image_bytes = count * channels * height * width
    flat = torch.from_file(str(path), shared=False, size=image_bytes, dtype=torch.uint8)
    with path.open("rb") as file:
        file.seek(image_bytes)
        label_bytes = file.read(8 * count)
    labels = torch.frombuffer(bytearray(label_bytes), dtype=torch.int64)
    lowest = -1 if info.get("split") == "test" else 0
    if count and (int(labels.min()) < lowest or int(labels.max()) >= len(info["classes"])):
        raise CacheError(
            f"cache file {path} is damaged: labels outside 0..{len(info['classes']) - 1} "
            f"(found {int(labels.min())}..{int(labels.max())}); delete it and run "
            "`mobilecnn prepare`")
    return DecodedSplit(
        images=flat.view(count, channels, height, width),
        labels=labels,
        classes=list(info["classes"]),
        class_names=list(info["class_names"]),
        split=str(info.get("split", "")),
        source=str(info.get("source", "")),
        fingerprint=str(info.get("fingerprint", "")),
        skipped=list(info.get("skipped", [])),
        path=path,
    )


def _decode_range(
    paths: Sequence[str], first_index: int, out_path: str, height: int, width: int,
    resize: bool, skip_bad: bool,
) -> list[int]:
    """Decode ``paths`` as planar RGB into slots ``first_index...`` of ``out_path``; returns the
    indices of unreadable files (zeros written) when ``skip_bad``, else raises."""
    slot = 3 * height * width
    chunk = bytearray(slot * len(paths))
    bad: list[int] = []
    for offset, path in enumerate(paths):
        try:
            image = _open_rgb(Path(path), height if resize else None)
        except CorruptImageError:
            if not skip_bad:
                raise
            bad.append(first_index + offset)
            continue
        if image.size != (width, height):
            raise ValueError(
                f"image {path} is {image.size[0]}x{image.size[1]} but the split's first image "
                f"is {width}x{height}; pass image_size= (--image-size) to resize every image"
            )
        start = offset * slot
        for plane, band in enumerate(image.split()):
            chunk[start + plane * height * width:start + (plane + 1) * height * width] = (
                band.tobytes())
    descriptor = os.open(out_path, os.O_WRONLY)
    try:
        os.pwrite(descriptor, chunk, first_index * slot)
    finally:
        os.close(descriptor)
    return bad


def _first_image_size(dataset: TinyImageNet, skip_bad: bool) -> tuple[int, int]:
    for path, _ in dataset.samples:
        try:
            width, height = _open_rgb(path).size
            return height, width
        except CorruptImageError:
            if not skip_bad:
                raise
    raise CorruptImageError(f"no readable image in split {dataset.split!r} of {dataset.root}")


def prepare_cache(
    root: str | os.PathLike[str],
    split: str,
    cache_dir: str | os.PathLike[str] | None = None,
    skip_bad: bool = False,
    num_workers: int | None = None,
    progress: bool = True,
    image_size: int | None = None,
) -> Path:
    """Decode ``split`` of the data set at ``root`` into a uint8 cache file; returns its path.

    The cache goes to ``<root>/.mobilecnn_cache/`` unless ``cache_dir`` is given (use that for
    read-only data). It is keyed by a fingerprint of the source (every file's path, size, mtime
    and label, the classes and ``image_size``): an up-to-date cache is returned at once, a stale,
    truncated or half-written one is rebuilt. Decoding runs in ``num_workers`` processes
    (default: all cores). Images must all have the size of the first one unless ``image_size``
    resizes them to ``image_size x image_size``. A corrupt image raises
    :class:`CorruptImageError` naming it; with ``skip_bad=True`` unreadable files are left out
    and counted in a warning (their paths are kept in :attr:`DecodedSplit.skipped`).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if image_size is not None and (not isinstance(image_size, int) or image_size < 1):
        raise ValueError(f"image_size must be a positive integer or None, got {image_size!r}")
    workers = _default_workers() if num_workers is None else int(num_workers)
    if workers < 1:
        raise ValueError(f"num_workers must be >= 1 (or None for all cores), got {num_workers!r}")
    dataset = TinyImageNet(root, split, skip_bad=skip_bad)
    assert dataset.root is not None
    fingerprint = f"v{FORMAT_VERSION}:size={image_size}:{dataset.fingerprint()}"
    path = cache_path(dataset.root, split, cache_dir, image_size)
    if path.exists():
        try:
            info = read_cache_info(path)
            if info.get("fingerprint") == fingerprint:
                verify_cache(path, info)
        except CacheError as error:
            warnings.warn(f"{error}: rebuilding it", stacklevel=2)
        else:
            if info.get("fingerprint") == fingerprint:
                if info.get("skipped") and not skip_bad:
                    raise CorruptImageError(
                        f"cannot decode image {dataset.root / info['skipped'][0]} "
                        f"({len(info['skipped'])} unreadable in split {split!r}); pass "
                        "skip_bad=True (--skip-bad) to leave them out")
                return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_temps(path.parent)  # temporary caches of killed runs
        _write_cache(dataset, path, fingerprint, skip_bad, workers, progress, image_size)
    except OSError as error:
        if error.errno in _UNWRITABLE:
            raise CacheError(f"cannot write the cache {path}: {error.strerror}; pass "
                             "cache_dir= (--cache-dir) to put it in a writable folder") from None
        if error.errno in _FULL:
            raise CacheError(f"cannot write the cache {path}: {error.strerror}; free some "
                             "space or pass cache_dir= (--cache-dir) on another disk (nothing "
                             "was left behind)") from None
        raise
    return path


def _write_cache(dataset: TinyImageNet, path: Path, fingerprint: str, skip_bad: bool,
                 workers: int, progress: bool, image_size: int | None) -> None:
    assert dataset.root is not None
    if image_size is None:
        height, width = _first_image_size(dataset, skip_bad)
    else:
        height = width = image_size
    count = len(dataset)
    slot = 3 * height * width
    paths = [str(sample_path) for sample_path, _ in dataset.samples]
    chunk_size = max(16, min(512, count // (workers * 8) or 1))
    ranges = [(start, paths[start:start + chunk_size]) for start in range(0, count, chunk_size)]
    bad: list[int] = []
    with atomic_path(path) as temporary:
        with temporary.open("wb") as file:
            file.truncate(count * slot)
        bar = tqdm_bar(progress, total=count, desc=f"decoding {dataset.split}", unit="img")
        with bar:
            args = (str(temporary), height, width, image_size is not None, skip_bad)
            if workers == 1 or len(ranges) == 1:
                for start, chunk in ranges:
                    bad += _decode_range(chunk, start, *args)
                    bar.update(len(chunk))
            else:
                bad += _decode_in_processes(ranges, args, min(workers, len(ranges)), bar)
        bad.sort()
        kept = count - len(bad)
        if kept == 0:
            raise CorruptImageError(f"every image of split {dataset.split!r} under "
                                    f"{dataset.root} is unreadable")
        labels = [label for _, label in dataset.samples]
        if bad:
            _compact(temporary, count, slot, bad)
            bad_set = set(bad)
            labels = [label for index, label in enumerate(labels) if index not in bad_set]
        skipped = [os.path.relpath(dataset.samples[index][0], dataset.root) for index in bad]
        info = {
            "format": "mobilecnn-decoded-cache", "format_version": FORMAT_VERSION,
            "count": kept, "channels": 3, "height": height, "width": width,
            "byteorder": sys.byteorder, "split": dataset.split, "layout": dataset.layout,
            "source": str(dataset.root), "fingerprint": fingerprint,
            "classes": dataset.classes, "class_names": dataset.class_names, "skipped": skipped,
        }
        _finish_cache_file(temporary, kept * slot, array("q", labels).tobytes(), info)
    if bad:
        shown = ", ".join(skipped[:3]) + (", ..." if len(skipped) > 3 else "")
        warnings.warn(f"skipped {len(bad)} unreadable image(s) of split {dataset.split!r} "
                      f"under {dataset.root}: {shown}", stacklevel=3)


def _die_with_parent(parent: int) -> None:
    """Worker initializer: end this worker when the parent dies, even by SIGKILL (Linux).

    Forked workers hold both ends of the task pipe, so they would otherwise wait forever.
    """
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _finish_cache_file(path: Path, image_bytes: int, label_bytes: bytes,
                       info: dict[str, Any]) -> None:
    """Cut ``path`` after its image area, then append labels, checksums and the trailer."""
    info["block_bytes"] = CHECKSUM_BLOCK
    info["image_crc32"] = _block_checksums(path, image_bytes)
    info["label_crc32"] = zlib.crc32(label_bytes)
    trailer = json.dumps(info).encode("utf-8")
    with path.open("r+b") as file:
        file.seek(image_bytes)
        file.truncate()
        file.write(label_bytes)
        file.write(trailer)
        file.write(len(trailer).to_bytes(8, "little"))
        file.write(END_MARKER)


def write_decoded_cache(path: str | os.PathLike[str], images: torch.Tensor,
                        labels: torch.Tensor, classes: Sequence[str], split: str = "train",
                        class_names: Sequence[str] | None = None) -> Path:
    """Write already decoded ``uint8 (N, 3, H, W)`` images and their labels as a cache file
    that :func:`load_cache` reads (atomically; for tests and benchmarks)."""
    path = Path(path)
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[0] != labels.numel():
        raise ValueError("images must be uint8 (N, 3, H, W) with one label each")
    count, channels, height, width = images.shape
    info = {"format": "mobilecnn-decoded-cache", "format_version": FORMAT_VERSION,
            "count": count, "channels": channels, "height": height, "width": width,
            "byteorder": sys.byteorder, "split": split, "layout": "tensors", "source": "",
            "fingerprint": "", "classes": list(classes),
            "class_names": list(class_names if class_names is not None else classes),
            "skipped": []}
    with atomic_path(path) as temporary:
        with temporary.open("wb") as file:
            file.write(images.contiguous().numpy().tobytes())
        _finish_cache_file(temporary, images.numel(),
                           labels.to(torch.int64).contiguous().numpy().tobytes(), info)
    return path


def _decode_in_processes(ranges: list[tuple[int, list[str]]], args: tuple[Any, ...],
                         workers: int, bar: Any) -> list[int]:
    bad: list[int] = []
    with ProcessPoolExecutor(max_workers=workers, initializer=_die_with_parent,
                             initargs=(os.getpid(),)) as pool:
        pending: set[Future[list[int]]] = set()
        sizes: dict[Future[list[int]], int] = {}
        for start, chunk in ranges:
            future = pool.submit(_decode_range, chunk, start, *args)
            sizes[future] = len(chunk)
            pending.add(future)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    bad += future.result()  # re-raises a worker's error
                    bar.update(sizes[future])
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return bad


def _compact(path: Path, count: int, slot: int, bad: list[int]) -> None:
    """Move the good slots of the image area of ``path`` to the front, in order."""
    images = torch.from_file(str(path), shared=True, size=count * slot, dtype=torch.uint8)
    images = images.view(count, slot)
    keep_mask = torch.ones(count, dtype=torch.bool)
    keep_mask[bad] = False
    keep = keep_mask.nonzero().flatten()
    step = 4096
    # Targets never overtake sources (keep[j] >= j), so copying forward in blocks is safe.
    for begin in range(0, keep.numel(), step):
        block = keep[begin:begin + step]
        images[begin:begin + block.numel()] = images.index_select(0, block)
    del images
