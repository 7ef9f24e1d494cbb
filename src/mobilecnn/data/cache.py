"""Building the decoded cache: a split decoded once into one uint8 file, read back
memory-mapped.

:func:`prepare_cache` decodes a split (in worker processes) into a temporary file that is
renamed when complete, so a truncated or half-written file is detected and rebuilt. An
existing cache is reused only when it was made from the same files and passes its checksums;
otherwise it is rebuilt, and a warning says why. The file format, and reading and verifying a
cache, are in :mod:`mobilecnn.data.cache_format`.
"""

from __future__ import annotations

import errno
import os
import sys
import warnings
from array import array
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import torch

from ..fileio import atomic_path, clean_stale_temps
from ._deps import tqdm_bar
from .cache_format import (
    FORMAT_VERSION,
    CacheError,
    DecodedSplit,
    finish_cache_file,
    load_cache,
    read_cache_info,
    verify_cache,
    write_decoded_cache,
)
from .images import CorruptImageError, decode_rgb
from .tinyimagenet import SPLITS, TinyImageNet, resolve_root

__all__ = [
    "CACHE_DIRNAME",
    "CacheError",
    "CacheRebuiltWarning",
    "DecodedSplit",
    "cache_path",
    "load_cache",
    "prepare_cache",
    "read_cache_info",
    "verify_cache",
    "write_decoded_cache",
]

CACHE_DIRNAME = ".mobilecnn_cache"
"""The folder under a data root holding its caches: the only thing mobilecnn writes there."""
_UNWRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)
_FULL = (errno.ENOSPC, errno.EDQUOT)
_SKIP_ADVICE = "pass skip_bad=True (--skip-bad) to leave unreadable images out"


class CacheRebuiltWarning(UserWarning):
    """An existing cache was not usable and is being rebuilt; the message says why."""


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
            image = decode_rgb(path, height if resize else None)
        except CorruptImageError as error:
            if not skip_bad:
                raise CorruptImageError(f"{error}; {_SKIP_ADVICE}") from None
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
            width, height = decode_rgb(path).size
            return height, width
        except CorruptImageError as error:
            if not skip_bad:
                raise CorruptImageError(f"{error}; {_SKIP_ADVICE}") from None
    raise CorruptImageError(f"no readable image in split {dataset.split!r} of {dataset.root}")


def _usable_cache(path: Path, fingerprint: str, announce: bool = True) -> bool:
    """Whether the existing cache ``path`` can be reused; if not (and ``announce``), a
    :class:`CacheRebuiltWarning` says why it is rebuilt."""
    try:
        info = read_cache_info(path)
        if info.get("fingerprint") == fingerprint:
            verify_cache(path, info)
            return True
        reason = (f"cache file {path} is out of date: the images, labels or classes under its "
                  "data root changed since it was built")
    except CacheError as error:
        reason = str(error)
    if announce:
        warnings.warn(f"{reason}: rebuilding it", CacheRebuiltWarning, stacklevel=3)
    return False


def prepare_cache(
    root: str | os.PathLike[str],
    split: str,
    cache_dir: str | os.PathLike[str] | None = None,
    skip_bad: bool = False,
    num_workers: int | None = None,
    progress: bool = True,
    image_size: int | None = None,
    build: bool = True,
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
    ``build=False`` only looks: without an up-to-date cache it raises :class:`CacheError` and
    writes nothing.
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
    if path.exists() and _usable_cache(path, fingerprint, announce=build):
        info = read_cache_info(path)
        if info.get("skipped") and not skip_bad:
            raise CorruptImageError(
                f"cannot decode image {dataset.root / info['skipped'][0]} "
                f"({len(info['skipped'])} unreadable in split {split!r}); pass "
                "skip_bad=True (--skip-bad) to leave them out")
        return path
    if not build:
        raise CacheError(f"no up-to-date decoded cache of split {split!r} at {path}")
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
        finish_cache_file(temporary, kept * slot, array("q", labels).tobytes(), info)
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
