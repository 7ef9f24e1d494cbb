"""``mobilecnn download`` and ``mobilecnn prepare``: results and one-line errors."""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from data_helpers import corrupt, make_official, snapshot
from mobilecnn.cli import main
from mobilecnn.data import CACHE_DIRNAME, TinyImageNet, load_cache


@pytest.fixture(scope="module")
def zip_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    source = make_official(tmp_path_factory.mktemp("src"), num_classes=2, train_per_class=1,
                           val_per_class=1, size=8)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        for path in sorted(source.rglob("*")):
            zipped.write(path, path.relative_to(source.parent).as_posix())
    body = buffer.getvalue()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server name
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/t.zip", hashlib.md5(body).hexdigest()
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_download_command(zip_server: tuple[str, str], tmp_path: Path, capsys) -> None:
    url, md5 = zip_server
    assert main(["download", "tiny-imagenet", "--root", str(tmp_path), "--url", url,
                 "--md5", md5, "--no-progress"]) == 0
    assert str(tmp_path / "tiny-imagenet-200") in capsys.readouterr().out
    assert len(TinyImageNet(tmp_path, "train")) == 2


def test_download_checksum_error_is_one_line(zip_server: tuple[str, str], tmp_path: Path,
                                             capsys) -> None:
    url, _ = zip_server
    code = main(["download", "tiny-imagenet", "--root", str(tmp_path), "--url", url,
                 "--md5", "f" * 32, "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("mobilecnn: error: checksum mismatch")
    assert err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_prepare_all_splits(tmp_path: Path, capsys) -> None:
    root = make_official(tmp_path, num_classes=2, train_per_class=3, val_per_class=2,
                         test_images=2)
    assert main(["prepare", "--data", str(tmp_path), "--no-progress", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "train: 6 images" in out and "val: 4 images" in out and "test: 2 images" in out
    caches = sorted(p.name for p in (root / CACHE_DIRNAME).iterdir())
    assert caches == ["tiny-imagenet-200-test.mcache", "tiny-imagenet-200-train.mcache",
                      "tiny-imagenet-200-val.mcache"]


def test_prepare_cache_dir_and_skip_bad(tmp_path: Path, capsys) -> None:
    root = make_official(tmp_path / "data", num_classes=2, train_per_class=3, val_per_class=1)
    broken = corrupt(TinyImageNet(root, "train").samples[2][0])
    before = snapshot(root)
    args = ["prepare", "--data", str(root), "--split", "train", "--cache-dir",
            str(tmp_path / "cache"), "--no-progress", "--workers", "1"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("mobilecnn: error: cannot decode image") and broken.name in err
    assert main([*args, "--skip-bad"]) == 0
    out = capsys.readouterr().out
    assert "skipped 1 unreadable" in out and "train: 5 images" in out
    assert len(load_cache(next((tmp_path / "cache").iterdir()))) == 5
    assert snapshot(root) == before


def test_prepare_missing_data_names_download_command(tmp_path: Path, capsys) -> None:
    assert main(["prepare", "--data", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "mobilecnn download tiny-imagenet" in err


@pytest.mark.parametrize(("argv", "message"), [
    (["prepare", "--data", "DATA", "--cache-dir", ""], "argument --cache-dir: expected a path, "
                                                      "got ''; give a file or folder name"),
    (["prepare", "--data", ""], "argument --data: expected a path, got ''"),
    (["download", "tiny-imagenet", "--root", ""], "argument --root: expected a path, got ''"),
    (["eval", "--checkpoint", "c.pt", "--data", "DATA", "--cache-dir", ""],
     "argument --cache-dir: expected a path, got ''"),
    (["train", "--data", "DATA", "--cache-dir", ""],
     "argument --cache-dir: cache_dir must be a folder path, got ''"),
])
def test_an_empty_folder_name_is_refused_not_read_as_the_current_folder(
    argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    root = make_official(tmp_path / "data", num_classes=2, train_per_class=2, val_per_class=1)
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main([str(root) if value == "DATA" else value for value in argv])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and err.count("\n") == 1
    assert snapshot(tmp_path) == before  # no cache written in the current folder
