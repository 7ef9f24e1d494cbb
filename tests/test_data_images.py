"""Image decoding (one decoder for the data sets, the cache and predict): 16-bit, float,
palette, CMYK, transparent and integer images convert as a viewer shows them or are refused in
one line; decompression bombs are refused before decoding."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
import torch
from PIL import Image

from mobilecnn.cli import main
from mobilecnn.data import CorruptImageError, load_cache, prepare_cache, read_image
from mobilecnn.train.predict import load_image


def png_bytes(width: int, height: int, bit_depth: int, color_type: int, rows: list[bytes]
              ) -> bytes:
    """A PNG file written by hand (Pillow cannot write 16-bit RGB or every bit depth)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    pixels = zlib.compress(b"".join(b"\0" + row for row in rows), 9)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
            + chunk(b"IEND", b""))


GRAY16 = [0, 257, 32896, 65280, 65535, 1000, 20000, 50000]  # one row of 8 pixels


def rgb_of(gray: list[int]) -> torch.Tensor:
    return torch.tensor(gray, dtype=torch.uint8).view(1, 1, -1).expand(3, 8, -1)


def rows_of(rgb: list[list[int]]) -> torch.Tensor:
    """An 8 x 8 image whose rows all hold the pixels ``rgb`` (one [r, g, b] per column)."""
    return torch.tensor(rgb, dtype=torch.uint8).T.reshape(3, 1, -1).expand(3, 8, -1)


def write_images(folder: Path) -> dict[str, tuple[Path, torch.Tensor]]:
    """``name -> (file, the uint8 3 x 8 x 8 image a viewer shows)``; every row the same."""
    folder.mkdir(parents=True, exist_ok=True)
    made: dict[str, tuple[Path, torch.Tensor]] = {}

    path = folder / "gray16.png"
    path.write_bytes(png_bytes(8, 8, 16, 0, [struct.pack(">8H", *GRAY16)] * 8))
    made["gray16"] = (path, rgb_of([round(v / 257) for v in GRAY16]))

    rgb16 = [(65535, 0, 32896), (257 * 10, 257 * 200, 128)] * 4
    path = folder / "rgb16.png"
    row = b"".join(struct.pack(">3H", *p) for p in rgb16)
    path.write_bytes(png_bytes(8, 8, 16, 2, [row] * 8))
    made["rgb16"] = (path, rows_of([[v >> 8 for v in p] for p in rgb16]))

    floats = [0.0, 0.25, 0.5, 1.0, 0.1, 0.9, 0.002, 0.998]
    path = folder / "float.tif"
    Image.frombytes("F", (8, 8), struct.pack("=64f", *floats * 8)).save(path)
    made["float"] = (path, rgb_of([int(v * 255 + 0.5) for v in floats]))

    path = folder / "palette.png"
    palette_image = Image.frombytes("P", (8, 8), bytes([0, 1] * 32))
    palette_image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette_image.save(path)
    made["palette"] = (path, rows_of([[255, 0, 0], [0, 0, 255]] * 4))

    path = folder / "cmyk.tif"
    Image.new("CMYK", (8, 8), (255, 0, 0, 0)).save(path)  # pure cyan ink
    made["cmyk"] = (path, rows_of([[0, 255, 255]] * 8))

    path = folder / "gray_alpha.png"
    Image.new("LA", (8, 8), (100, 255)).save(path)  # opaque
    made["gray_alpha"] = (path, rgb_of([100] * 8))

    path = folder / "half_transparent.png"
    Image.new("LA", (8, 8), (0, 128)).save(path)  # black at half opacity over white
    made["half_transparent"] = (path, rgb_of([127] * 8))
    return made


def test_every_mode_decodes_as_a_viewer_shows_it(tmp_path: Path) -> None:
    for name, (path, expected) in write_images(tmp_path).items():
        decoded = read_image(path)
        assert torch.equal(decoded, expected), (name, decoded[:, 0], expected[:, 0])
        # predict decodes with the same function (then resizes to the model's size)
        assert torch.equal(load_image(path, 8), expected), name


@pytest.mark.parametrize(("write", "message"), [
    (lambda p: Image.frombytes("F", (2, 1), struct.pack("=2f", 0.5, float("nan"))).save(p),
     "a float image with NaN or infinite pixels"),
    (lambda p: Image.frombytes("F", (2, 1), struct.pack("=2f", 0.0, 255.0)).save(p),
     "a float image with values 0..255, outside the 0..1"),
    (lambda p: Image.frombytes("I", (2, 1), struct.pack("=2i", 5, 70000)).save(p),
     "32-bit integer pixels have no standard brightness scale"),
])
def test_images_without_one_right_reading_are_refused_in_one_line(
    write, message: str, tmp_path: Path
) -> None:
    path = tmp_path / "odd.tif"
    write(path)
    with pytest.raises(CorruptImageError, match=message) as error:
        read_image(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def write_bomb(path: Path) -> Path:
    """A 1-bit 12000 x 8000 PNG (96 million pixels, over Pillow's 89 million) of 15 kB."""
    rows = [bytes(1500)] * 8000
    path.write_bytes(png_bytes(12000, 8000, 1, 0, rows))
    return path


def test_a_decompression_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    bomb = write_bomb(tmp_path / "bomb.png")
    assert bomb.stat().st_size < 100_000
    with pytest.raises(CorruptImageError, match=(
            r"cannot decode image .*bomb.png: too large \(12000x8000 is 96,000,000 pixels; "
            r"the limit is PIL.Image.MAX_IMAGE_PIXELS\): a decompression bomb")):
        read_image(bomb)
    with pytest.raises(CorruptImageError, match="too large"):
        load_image(bomb, 64)


def test_prepare_decodes_special_images_and_counts_a_bomb_under_skip_bad(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "data"
    made = write_images(root / "train" / "things")
    order = sorted(made.values(), key=lambda item: str(item[0]))
    decoded = load_cache(prepare_cache(root, "train", num_workers=1, progress=False))
    assert torch.equal(decoded.images, torch.stack([image for _, image in order]))
    write_bomb(root / "train" / "things" / "zz_bomb.png")
    capsys.readouterr()
    command = ["prepare", "--data", str(root), "--split", "train", "--no-progress",
               "--workers", "1"]
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "zz_bomb.png: too large" in err and "--skip-bad" in err
    assert main([*command, "--skip-bad"]) == 0
    captured = capsys.readouterr()
    assert "skipped 1 unreadable" in captured.out and "zz_bomb.png" in captured.err
    assert load_cache(prepare_cache(root, "train", num_workers=1, progress=False,
                                    skip_bad=True)).skipped == ["train/things/zz_bomb.png"]
