"""Downloading weight files into torch.hub's cache: checksum verified, resumable, atomic.

Files go to ``<torch.hub.get_dir()>/checkpoints`` (``$TORCH_HOME/hub/checkpoints``), where
torchvision keeps the same files, so weights torchvision downloaded are reused. A download is
written to ``<name>.partial`` beside its target; an interrupted one resumes from there (HTTP
``Range``), and only a file whose SHA-256 matches is renamed into place. A file lock keeps two
processes from downloading the same file at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import torch

__all__ = ["WeightsDownloadError", "download_weights", "sha256_of", "weights_dir"]

_CHUNK = 1 << 20


class WeightsDownloadError(OSError):
    """A weight file could not be downloaded or did not match its checksum (one line)."""


def weights_dir() -> Path:
    """Where downloaded weights are kept: ``<torch.hub.get_dir()>/checkpoints``."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def sha256_of(path: str | os.PathLike[str]) -> str:
    """The SHA-256 hex digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_hash(path: Path, expected: str | None, url: str) -> None:
    if expected is None:
        return
    found = sha256_of(path)
    if not found.startswith(expected.lower()):
        path.unlink(missing_ok=True)
        raise WeightsDownloadError(
            f"{url} has SHA-256 {found[:16]}..., expected {expected}...: the file was refused "
            "and nothing was cached; try again, or check for a proxy that alters downloads")


def download_weights(
    url: str,
    file_name: str,
    sha256: str | None = None,
    *,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """The cached copy of ``url`` as ``weights_dir() / file_name``, downloaded if missing.

    ``sha256`` is the file's SHA-256 or a prefix of it (torchvision publishes 8 digits); a
    mismatch raises :class:`WeightsDownloadError` and caches nothing. Without network the
    error names the URL and the path to put the file at.
    """
    target = weights_dir() / file_name
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    from filelock import FileLock  # torch depends on filelock

    with FileLock(str(target) + ".lock"):
        if target.is_file():  # another process finished it while we waited
            return target
        partial = target.with_name(target.name + ".partial")
        _fetch(url, partial, target, timeout=timeout, progress=progress)
        _check_hash(partial, sha256, url)
        os.replace(partial, target)
    return target


def _open(url: str, offset: int, timeout: float, target: Path) -> Any:
    request = urllib.request.Request(url, headers={"User-Agent": "mobilecnn"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - http(s) URLs
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:  # the partial file is not a prefix: start over
            return None
        raise WeightsDownloadError(f"could not download {url}: HTTP {error.code} "
                                   f"{error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise WeightsDownloadError(
            f"could not download {url} ({reason}); without network, download it on another "
            f"machine and put it at {target}, or pass pretrained=PATH") from None


def _fetch(url: str, partial: Path, target: Path, *, timeout: float, progress: bool) -> None:
    """Download ``url`` into ``partial``, continuing from the bytes already there."""
    offset = partial.stat().st_size if partial.is_file() else 0
    response = _open(url, offset, timeout, target)
    if response is None:
        partial.unlink()
        offset = 0
        response = _open(url, 0, timeout, target)
    with response:
        resumed = offset > 0 and response.status == 206
        length = response.headers.get("Content-Length")
        total = (int(length) + (offset if resumed else 0)) if length else None
        written = offset if resumed else 0
        bar = _progress_bar(total, written, target.name) if progress else None
        try:
            with open(partial, "ab" if resumed else "wb") as file:
                while chunk := response.read(_CHUNK):
                    file.write(chunk)
                    written += len(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
                file.flush()
                os.fsync(file.fileno())
        except (OSError, http.client.HTTPException) as error:  # reset, timeout: keep the bytes
            raise WeightsDownloadError(
                f"the download of {url} stopped after {written:,} bytes ({error}); run again "
                "to resume it") from None
        finally:
            if bar is not None:
                bar.close()
    if total is not None and written < total:
        raise WeightsDownloadError(f"the download of {url} stopped after {written:,} of "
                                   f"{total:,} bytes; run again to resume it")


def _progress_bar(total: int | None, initial: int, name: str) -> Any:
    with contextlib.suppress(ImportError):
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, unit="B", unit_scale=True, desc=name,
                    leave=False)
    return None
