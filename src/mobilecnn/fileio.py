"""Writing files so that nothing a user had is ever damaged.

Every file the library produces (checkpoints, exports, caches, metrics, CSVs, plots) is written
through :func:`atomic_path` or :func:`atomic_write`: the bytes go to a temporary file in the same
folder, are flushed and fsync'ed, then renamed over the target with ``os.replace``. A crash, a
kill or a full disk leaves either the old file or the new one, never a truncated one.
A symbolic link is followed (the link is kept); ``/dev/null``, other character devices and
FIFOs are written through, never replaced.
Temporary files are named ``.<name>.tmp-<pid>-<token>``; :func:`clean_stale_temps` removes
those whose process is gone. :func:`check_not_input` refuses to write an output onto one of the
command's own inputs.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "FolderLockedError",
    "atomic_path",
    "atomic_write",
    "check_not_input",
    "clean_stale_temps",
    "describe_os_error",
    "fsync_dir",
    "lock_folder",
    "temp_path_for",
    "write_text_atomic",
]

PathLike = str | os.PathLike[str]
_TEMP_PATTERN = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)-[0-9a-f]+$")
# what mobilecnn 0.1.0 left behind: .last.pt.tmp-PID and train.mcache.tmp-PID
_LEGACY_TEMP_PATTERN = re.compile(
    r"^(?:\.(?P<checkpoint>.+\.pt)|(?P<cache>.+\.mcache))\.tmp-(?P<pid>\d+)$")


def temp_path_for(path: PathLike) -> Path:
    """A fresh temporary name beside ``path``: ``.<name>.tmp-<pid>-<token>``."""
    target = Path(path)
    return target.with_name(f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def fsync_dir(folder: PathLike) -> None:
    """Flush a folder's entries (the rename) to disk where the OS allows it."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some file systems cannot fsync a directory; the rename is still atomic
    finally:
        os.close(descriptor)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _output_target(target: Path) -> tuple[Path, bool]:
    """Where the bytes for ``target`` go: ``(path, special)``.

    A symbolic link is followed (the link itself stays); ``special`` is True for a character
    device or a FIFO, which are written through instead of replaced. Any other kind of file
    (block device, socket) and a link loop are refused.
    """
    real = Path(os.path.realpath(target)) if os.path.islink(target) else target
    if os.path.islink(real):
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), str(target))
    try:
        mode = os.stat(real).st_mode
    except FileNotFoundError:
        return real, False
    except OSError:
        return real, False  # the write reports the problem, naming the file
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(f"{str(target)!r} is a directory; give a file name")
    if stat.S_ISREG(mode):
        return real, False
    if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
        return real, True
    kind = "a block device" if stat.S_ISBLK(mode) else "a socket or other special file"
    raise ValueError(f"{str(target)!r} is {kind}, not a file; write the output to a regular "
                     "file (or /dev/null, or a pipe)")


def _write_through(source: Path, device: Path, shown: Path) -> None:
    """Copy ``source`` into the character device or FIFO ``device`` (never replaced)."""
    try:
        descriptor = os.open(device, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as error:
        if error.errno == errno.ENXIO:  # a FIFO nobody reads: it would block forever
            raise OSError(errno.ENXIO, "no process is reading this pipe", str(shown)) from None
        raise OSError(error.errno, error.strerror, str(shown)) from None
    try:
        with contextlib.suppress(ImportError, OSError):
            import fcntl

            flags = fcntl.fcntl(descriptor, fcntl.F_GETFL)
            fcntl.fcntl(descriptor, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
        with open(source, "rb") as data, os.fdopen(descriptor, "wb", closefd=False) as out:
            shutil.copyfileobj(data, out, 2**20)
    except OSError as error:
        raise OSError(error.errno, error.strerror or str(error), str(shown)) from None
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsync'ed and renamed to ``path``.

    For writers that want a file name (``torch.jit.save``, ONNX, matplotlib). On any exception
    the temporary file is removed and ``path`` is left exactly as it was. A symbolic link is
    written through (the file it points to is replaced, the link stays); a character device
    (``/dev/null``) or a FIFO receives the bytes once they are complete, and is never replaced.
    """
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(f"{str(target)!r} is a directory; give a file name")
    real, special = _output_target(target)
    folder = Path(tempfile.gettempdir()) if special else real.parent
    temporary = folder / temp_path_for(real).name
    try:
        yield temporary
        if not temporary.exists():
            raise FileNotFoundError(f"the writer produced no file for {str(target)!r}")
        if special:
            _write_through(temporary, real, target)
        else:
            _fsync_file(temporary)
            os.replace(temporary, real)
    except OSError as error:
        # name the file the caller asked for, not our temporary (or nothing at all)
        if error.errno is not None and error.filename in (None, str(temporary), str(real)):
            raise OSError(error.errno, error.strerror or str(error), str(target)) from error
        raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    if not special:
        fsync_dir(real.parent)


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "wb", **open_kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; renamed over ``path`` on success."""
    if "w" not in mode:
        raise ValueError(f"atomic_write needs a write mode such as 'wb' or 'w', got {mode!r}")
    with atomic_path(path) as temporary, open(temporary, mode, **open_kwargs) as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


def write_text_atomic(path: PathLike, text: str) -> Path:
    """Replace ``path`` with ``text`` (UTF-8) atomically; returns the path."""
    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return Path(path)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True


def clean_stale_temps(folder: PathLike) -> list[Path]:
    """Remove the temporary files in ``folder`` left by processes that no longer run.

    Returns the removed paths. Files of live processes, and anything not named like our
    temporary files, are never touched; a folder that cannot be listed is left alone.
    """
    removed: list[Path] = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_PATTERN.match(entry.name) or _LEGACY_TEMP_PATTERN.match(entry.name)
        if match is None or _process_alive(int(match["pid"])):
            continue
        with contextlib.suppress(OSError):
            entry.unlink()
            removed.append(entry)
    return removed


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_not_input(output: PathLike, inputs: Iterable[PathLike], *, what: str = "output") -> None:
    """Raise ``ValueError`` if ``output`` is (or resolves to) one of ``inputs``."""
    out = Path(output)
    for source in inputs:
        source_path = Path(source)
        if _same_file(out, source_path) or out.resolve() == source_path.resolve():
            raise ValueError(
                f"the {what} {str(out)!r} is also an input of this command; writing it would "
                "destroy the input: choose another file name"
            )


class FolderLockedError(RuntimeError):
    """Another process holds the folder's lock; ``pid`` is that process (None if unknown)."""

    def __init__(self, folder: PathLike, pid: int | None, what: str) -> None:
        self.folder = Path(folder)
        self.pid = pid
        holder = f"process {pid}" if pid else "another process"
        super().__init__(
            f"{what} {str(self.folder)!r} is in use by {holder} (another mobilecnn run); wait "
            "for it to finish or choose another folder"
        )


def _flock_holder(inode: int) -> int | None:
    """The pid holding a ``flock`` on the file with ``inode`` (Linux ``/proc/locks``)."""
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5].rsplit(":", 1)[-1] == str(
                inode) and fields[4].isdigit():
            return int(fields[4])
    return None


@contextlib.contextmanager
def lock_folder(folder: PathLike, what: str = "folder") -> Iterator[Path]:
    """Hold an exclusive OS lock on ``folder`` (created if missing) for the ``with`` block.

    Folders it created are removed again on the way out if the block left them empty, so a
    run that fails before writing anything leaves nothing behind.

    The lock is ``flock`` on the folder itself (no file is created): the kernel releases it
    when the process ends, however it ends, so a SIGKILL leaves no stale lock. A second
    holder gets :class:`FolderLockedError` at once, naming the holder's pid where the OS
    tells (Linux). Where ``fcntl`` does not exist (Windows) the lock is a ``filelock`` on
    ``<folder>/.lock`` (released by the OS too; the file is removed on the way out).
    """
    target = Path(folder)
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"{str(target)!r} is a file, not a folder; choose a folder")
    created = [folder for folder in (target, *target.parents) if not folder.exists()]
    target.mkdir(parents=True, exist_ok=True)
    yield from _flocked(target, what, created)


def _remove_if_empty(created: list[Path]) -> None:
    for folder in created:  # deepest first; a folder with anything in it stays
        with contextlib.suppress(OSError):
            folder.rmdir()


def _flocked(target: Path, what: str, created: list[Path]) -> Iterator[Path]:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield from _filelocked(target, what, created)
        return
    descriptor = os.open(target, os.O_RDONLY)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise FolderLockedError(target, _flock_holder(os.fstat(descriptor).st_ino),
                                    what) from None
        try:
            yield target
        finally:
            _remove_if_empty(created)  # while still locked: no other run can be inside
    finally:
        os.close(descriptor)  # releases the lock


def _filelocked(target: Path, what: str, created: list[Path]) -> Iterator[Path]:
    """The lock where ``flock`` does not exist: ``filelock`` (which torch installs) on
    ``<target>/.lock``."""
    from filelock import FileLock, Timeout

    lock_file = target / ".lock"
    lock = FileLock(str(lock_file), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise FolderLockedError(target, None, what) from None
    try:
        yield target
    finally:
        lock.release()
        with contextlib.suppress(OSError):
            lock_file.unlink()  # filelock removes it itself on Windows
        _remove_if_empty(created)


_OS_ERROR_HINTS = {
    errno.ENOSPC: "the disk is full: free some space or write somewhere else (--out, "
                  "--cache-dir); nothing that existed before was damaged",
    errno.EDQUOT: "the disk quota is exceeded: free some space or write somewhere else",
    errno.EROFS: "the file system is read-only: write somewhere else (--out, --cache-dir)",
    errno.EACCES: "permission denied: fix the permissions, or write outputs somewhere else "
                  "(--out, --cache-dir)",
    errno.EPERM: "operation not permitted: fix the permissions, or write somewhere else",
    errno.EISDIR: "it is a folder, not a file",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EEXIST: "it already exists (as a file where a folder is needed?)",
    errno.EIO: "an input/output error: the disk or network file system failed",
    errno.EFBIG: "the file is too large (over the file-size limit, `ulimit -f`, or the file "
                 "system's): write somewhere else",
    errno.ENXIO: "no process is reading this pipe: start the reader first, or write to a file",
    errno.ELOOP: "too many levels of symbolic links (a link loop): fix the link or choose "
                 "another file",
}


def describe_os_error(error: OSError) -> str:
    """One line for an ``OSError``: the file, what went wrong and what to do about it.

    An error raised with a message of our own (no ``errno``) is returned as it is.
    """
    if error.errno is None or not error.strerror:
        return " ".join(str(error).split())
    where = error.filename if error.filename is not None else ""
    if error.filename2 is not None:
        where = f"{where} -> {error.filename2}"
    hint = _OS_ERROR_HINTS.get(error.errno, error.strerror)
    return f"{where}: {hint}" if where else f"{error.strerror}: {hint}"
