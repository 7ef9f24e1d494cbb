"""Download and safe extraction of the official TinyImageNet archive."""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import stat
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from ._deps import tqdm_bar

__all__ = ["OFFICIAL_MD5", "OFFICIAL_URL", "DownloadError", "download_tiny_imagenet",
           "safe_extract_zip"]

OFFICIAL_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
OFFICIAL_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
DATASET_DIRNAME = "tiny-imagenet-200"
_CHUNK = 1 << 20


class DownloadError(OSError):
    """A failed, interrupted or corrupt download, or an unsafe archive; nothing was left behind."""


def _is_complete(folder: Path) -> bool:
    return ((folder / "wnids.txt").is_file() and (folder / "train").is_dir()
            and (folder / "val" / "val_annotations.txt").is_file())


def download_tiny_imagenet(
    root: str | os.PathLike[str],
    url: str = OFFICIAL_URL,
    md5: str | None = OFFICIAL_MD5,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download and extract TinyImageNet into ``root/tiny-imagenet-200``; returns that folder.

    Idempotent: a complete copy already there is returned without touching the network. The
    archive is streamed to a temporary file beside the target, its md5 checked before anything
    is extracted (``md5=None`` skips the check), extracted into a temporary sibling folder
    (rejecting absolute paths, ``..`` and links) and renamed into place only when complete. Any
    failure raises :class:`DownloadError` and leaves nothing behind.
    """
    root = Path(root).expanduser()
    target = root / DATASET_DIRNAME
    if _is_complete(target):
        return target
    if target.exists():
        raise DownloadError(f"{target} exists but is incomplete (no wnids.txt, train/ or "
                            "val/val_annotations.txt); move it away and download again")
    created_root = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_downloads(root)
    prefix = f".{DATASET_DIRNAME}.{os.getpid()}."  # the pid lets a later run clean up after a kill
    archive_fd, archive_name = tempfile.mkstemp(prefix=prefix, suffix=".zip.part", dir=root)
    os.close(archive_fd)
    archive = Path(archive_name)
    staging = Path(tempfile.mkdtemp(prefix=prefix, suffix=".partial", dir=root))
    try:
        digest = _fetch(url, archive, progress, timeout)
        if md5 is not None and digest != md5.lower():
            raise DownloadError(f"checksum mismatch for {url}: md5 {digest}, expected {md5}; the "
                                "download is corrupt (deleted); try again or check the URL")
        safe_extract_zip(archive, staging)
        extracted = _find_dataset_folder(staging, url)
        os.replace(extracted, target)
    finally:
        archive.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
        if created_root and not any(root.iterdir()):
            root.rmdir()
    return target


_STALE = re.compile(rf"^\.{re.escape(DATASET_DIRNAME)}\.(?P<pid>\d+)\..*\.(zip\.part|partial)$")


def _remove_stale_downloads(root: Path) -> None:
    """Delete the archive and staging folder of a download whose process was killed."""
    for entry in root.iterdir():
        match = _STALE.match(entry.name)
        if match is None or int(match["pid"]) == os.getpid():
            continue
        try:
            os.kill(int(match["pid"]), 0)
            continue  # still running
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _fetch(url: str, destination: Path, progress: bool, timeout: float) -> str:
    """Stream ``url`` into ``destination``; returns the md5 hex digest."""
    digest = hashlib.md5()
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            length_header = response.headers.get("Content-Length")
            expected = int(length_header) if length_header and length_header.isdigit() else None
            bar = tqdm_bar(progress, total=expected, desc=f"downloading {url.rsplit('/', 1)[-1]}",
                           unit="B", unit_scale=True, unit_divisor=1024)
            with bar, destination.open("wb") as file:
                while True:
                    chunk = response.read(_CHUNK)
                    if not chunk:
                        break
                    file.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except http.client.IncompleteRead as error:
        got = received + len(error.partial)
        raise DownloadError(f"download of {url} was interrupted: the connection closed after "
                            f"{got} bytes, {error.expected} short of the announced length; "
                            "nothing was kept, run the command again") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", None) or error
        if isinstance(error, urllib.error.HTTPError):
            reason = f"HTTP {error.code} {error.reason}"
        raise DownloadError(f"download of {url} failed after {received} bytes: {reason}; "
                            "nothing was kept, check the URL/network and run it again") from None
    if expected is not None and received != expected:
        raise DownloadError(f"download of {url} was interrupted: got {received} of {expected} "
                            "bytes; nothing was kept, run the command again")
    return digest.hexdigest()


def safe_extract_zip(archive: str | os.PathLike[str], destination: str | os.PathLike[str]) -> None:
    """Extract a zip into ``destination``, refusing absolute paths, ``..``, drive letters and
    symbolic links (raises :class:`DownloadError` before writing anything)."""
    destination = Path(destination).resolve()
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = zipped.infolist()
            for member in members:
                name = member.filename.replace("\\", "/")
                parts = PurePosixPath(name).parts
                mode = member.external_attr >> 16
                if (name.startswith("/") or ".." in parts or (parts and ":" in parts[0])
                        or stat.S_ISLNK(mode)):
                    raise DownloadError(f"unsafe archive {archive}: member {member.filename!r} "
                                        "would escape the target folder or is a link; refusing "
                                        "to extract")
                if not (destination / name).resolve().is_relative_to(destination):
                    raise DownloadError(f"unsafe archive {archive}: member {member.filename!r} "
                                        "escapes the target folder; refusing to extract")
            for member in members:
                zipped.extract(member, destination)
    except zipfile.BadZipFile as error:
        raise DownloadError(f"{archive} is not a valid zip archive: {error}") from None


def _find_dataset_folder(staging: Path, url: str) -> Path:
    if (staging / "wnids.txt").is_file():
        return staging
    for child in sorted(staging.iterdir()):
        if child.is_dir() and (child / "wnids.txt").is_file():
            return child
    raise DownloadError(f"the archive from {url} has no wnids.txt at its top or in a top-level "
                        "folder: it is not TinyImageNet")
