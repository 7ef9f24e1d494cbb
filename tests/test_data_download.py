"""download_tiny_imagenet against a local HTTP server on 127.0.0.1 (no network)."""

from __future__ import annotations

import hashlib
import http.server
import io
import stat
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from data_helpers import make_official
from mobilecnn.data import DownloadError, TinyImageNet, download_tiny_imagenet, safe_extract_zip


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, tuple[bytes, str]] = {}

    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        if self.path not in self.routes:
            self.send_error(404)
            return
        body, mode = self.routes[self.path]
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        # "truncated": announce the full length, send half, close the connection
        self.wfile.write(body[: len(body) // 2] if mode == "truncated" else body)
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, dict[str, tuple[bytes, str]]]]:
    routes: dict[str, tuple[bytes, str]] = {}
    handler = type("Handler", (_Handler,), {"routes": routes})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", routes
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    source = make_official(tmp_path_factory.mktemp("src"), num_classes=2, train_per_class=2,
                           val_per_class=1, test_images=1, size=8)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        for path in sorted(source.rglob("*")):
            zipped.write(path, path.relative_to(source.parent).as_posix())
    return buffer.getvalue()


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_download_extracts_and_is_idempotent(server, archive: bytes, tmp_path: Path) -> None:
    base, routes = server
    routes["/tiny.zip"] = (archive, "ok")
    root = tmp_path / "data"
    folder = download_tiny_imagenet(root, url=f"{base}/tiny.zip", md5=_md5(archive),
                                    progress=False)
    assert folder == root / "tiny-imagenet-200"
    assert len(TinyImageNet(root, "train")) == 4 and len(TinyImageNet(folder, "val")) == 2
    assert sorted(p.name for p in root.iterdir()) == ["tiny-imagenet-200"]  # no leftovers
    # a complete copy is returned without any network access (the URL is unreachable)
    assert download_tiny_imagenet(root, url="http://127.0.0.1:9/none.zip",
                                  progress=False) == folder


def test_progress_bar_path(server, archive: bytes, tmp_path: Path, capsys) -> None:
    base, routes = server
    routes["/tiny.zip"] = (archive, "ok")
    download_tiny_imagenet(tmp_path, url=f"{base}/tiny.zip", md5=_md5(archive), progress=True)
    assert "downloading tiny.zip" in capsys.readouterr().err


def test_checksum_mismatch_leaves_nothing(server, archive: bytes, tmp_path: Path) -> None:
    base, routes = server
    routes["/tiny.zip"] = (archive, "ok")
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download_tiny_imagenet(tmp_path, url=f"{base}/tiny.zip", md5="0" * 32, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_transfer_leaves_nothing(server, archive: bytes, tmp_path: Path) -> None:
    base, routes = server
    routes["/tiny.zip"] = (archive, "truncated")
    root = tmp_path / "new"
    with pytest.raises(DownloadError, match="interrupted"):
        download_tiny_imagenet(root, url=f"{base}/tiny.zip", md5=_md5(archive), progress=False)
    assert not root.exists()
    with pytest.raises(DownloadError, match="interrupted"):
        download_tiny_imagenet(tmp_path, url=f"{base}/tiny.zip", md5=None, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_http_error_is_reported(server, tmp_path: Path) -> None:
    base, _ = server
    with pytest.raises(DownloadError, match="404"):
        download_tiny_imagenet(tmp_path, url=f"{base}/missing.zip", progress=False)
    assert list(tmp_path.iterdir()) == []


def _zip_with(member: zipfile.ZipInfo | str, content: bytes = b"x") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        zipped.writestr("tiny-imagenet-200/wnids.txt", "n00000000\n")
        zipped.writestr(member, content)
    return buffer.getvalue()


def _symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize("member", [
    "../escaped.txt",
    "tiny-imagenet-200/../../escaped.txt",
    "/tmp/absolute-escape.txt",
    _symlink("tiny-imagenet-200/link"),
], ids=["dotdot", "nested-dotdot", "absolute", "symlink"])
def test_unsafe_members_are_rejected(server, tmp_path: Path, member: zipfile.ZipInfo | str
                                     ) -> None:
    base, routes = server
    payload = _zip_with(member, b"/etc/passwd")
    routes["/evil.zip"] = (payload, "ok")
    root = tmp_path / "root"
    with pytest.raises(DownloadError, match="unsafe archive"):
        download_tiny_imagenet(root, url=f"{base}/evil.zip", md5=_md5(payload), progress=False)
    assert not root.exists()
    assert not (tmp_path / "escaped.txt").exists()
    assert list(tmp_path.iterdir()) == []


def test_safe_extract_rejects_before_writing(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    archive.write_bytes(_zip_with("../../x.txt"))
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(DownloadError, match="x.txt"):
        safe_extract_zip(archive, target)
    assert list(target.iterdir()) == []


def test_archive_that_is_not_tinyimagenet(server, tmp_path: Path) -> None:
    base, routes = server
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        zipped.writestr("something/else.txt", "hello")
    routes["/other.zip"] = (buffer.getvalue(), "ok")
    with pytest.raises(DownloadError, match="wnids.txt"):
        download_tiny_imagenet(tmp_path, url=f"{base}/other.zip", md5=None, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_incomplete_existing_folder_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "tiny-imagenet-200").mkdir()
    (tmp_path / "tiny-imagenet-200" / "mine.txt").write_text("keep")
    with pytest.raises(DownloadError, match="incomplete"):
        download_tiny_imagenet(tmp_path, url="http://127.0.0.1:9/none.zip", progress=False)
    assert (tmp_path / "tiny-imagenet-200" / "mine.txt").read_text() == "keep"
