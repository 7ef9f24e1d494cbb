"""The decoded cache's file format: reading, verifying and writing the file itself.

File layout (native byte order, recorded in the metadata)::

    images   uint8  N x 3 x H x W   at offset 0
    labels   int64  N               right after the images
    metadata UTF-8 JSON (classes, class names, source fingerprint, checksums, ...)
    8 bytes  little-endian CRC-32 of the metadata and of its length field
    8 bytes  little-endian length of the metadata
    8 bytes  end marker b"MCNNCAC3"

Every byte is covered by a checksum: the metadata holds a CRC-32 of every 4 MiB block of the
image area and of the label area, and the tail holds a CRC-32 of the metadata itself, so a
flipped bit anywhere (a renamed class included) is a :class:`CacheError` naming the file,
never silently used. :func:`read_cache_info` checks the metadata's checksum on every read;
:func:`verify_cache` checks the images and labels (about 1 GB/s: docs/data.md).
:mod:`mobilecnn.data.cache` builds these files from image folders.
"""

from __future__ import annotations

import json
import os
import sys
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..fileio import atomic_path

__all__ = [
    "CacheError",
    "DecodedSplit",
    "load_cache",
    "read_cache_info",
    "verify_cache",
    "write_decoded_cache",
]

END_MARKER = b"MCNNCAC3"
"""Ends every cache of format 3 (the tail of format 1 and 2 ended with ``MCNNCACH``)."""
OLD_END_MARKER = b"MCNNCACH"
FORMAT_VERSION = 3
"""3: the metadata is checksummed too; 2: per-block CRC-32 of images and labels (older
caches are rebuilt)."""
CHECKSUM_BLOCK = 4 * 2**20
_TRAILER_TAIL = 24  # metadata CRC (8 bytes) + metadata length (8 bytes) + end marker (8 bytes)
_REBUILD = "delete it and run `mobilecnn prepare` (prepare_cache rebuilds it)"


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


def _metadata_crc(metadata: bytes, length_field: bytes) -> int:
    return zlib.crc32(length_field, zlib.crc32(metadata))


def read_cache_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata of a cache file, after checking its size and its checksum; raises
    :class:`CacheError`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"cache file {path} does not exist; build it with "
                                "`mobilecnn prepare --data DIR` or prepare_cache(root, split)")
    size = path.stat().st_size
    broken = f"cache file {path} is truncated or not a mobilecnn cache; {_REBUILD}"
    with path.open("rb") as file:
        if size >= 8:
            file.seek(size - 8)
            if file.read(8) == OLD_END_MARKER:
                raise CacheError(
                    f"cache file {path} has an older format (before {FORMAT_VERSION}: its "
                    "metadata is not checksummed), this mobilecnn reads "
                    f"{FORMAT_VERSION}; run `mobilecnn prepare` again (it rebuilds the cache)")
        if size < _TRAILER_TAIL:
            raise CacheError(broken)
        file.seek(size - _TRAILER_TAIL)
        tail = file.read(_TRAILER_TAIL)
        stored_crc = int.from_bytes(tail[:8], "little")
        json_length = int.from_bytes(tail[8:16], "little")
        if tail[16:] != END_MARKER or json_length > size - _TRAILER_TAIL:
            raise CacheError(broken)
        file.seek(size - _TRAILER_TAIL - json_length)
        metadata = file.read(json_length)
    if _metadata_crc(metadata, tail[8:16]) != stored_crc:
        raise CacheError(f"cache file {path} is damaged: checksum mismatch in the metadata "
                         f"(classes, sizes, checksums); {_REBUILD}")
    try:
        info = json.loads(metadata.decode("utf-8"))
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
                f"{first}-{last} (block {index}); {_REBUILD}")
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


def finish_cache_file(path: Path, image_bytes: int, label_bytes: bytes,
                      info: dict[str, Any]) -> None:
    """Cut ``path`` after its image area, then append the labels, the metadata (with the
    image and label checksums) and the checksummed tail."""
    info["block_bytes"] = CHECKSUM_BLOCK
    info["image_crc32"] = _block_checksums(path, image_bytes)
    info["label_crc32"] = zlib.crc32(label_bytes)
    metadata = json.dumps(info).encode("utf-8")
    length_field = len(metadata).to_bytes(8, "little")
    with path.open("r+b") as file:
        file.seek(image_bytes)
        file.truncate()
        file.write(label_bytes)
        file.write(metadata)
        file.write(_metadata_crc(metadata, length_field).to_bytes(8, "little"))
        file.write(length_field)
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
        finish_cache_file(temporary, images.numel(),
                           labels.to(torch.int64).contiguous().numpy().tobytes(), info)
    return path
