"""Eval preprocessing from ``pretrained_cfg`` and the shipped ImageNet class names."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from mobilecnn import models
from mobilecnn.data import (
    DEFAULT_DATA_CONFIG,
    create_transform,
    imagenet_class_names,
    resolve_data_config,
)

Image = pytest.importorskip("PIL.Image", reason="Pillow is not installed (pip install "
                            "'mobilecnn[data]')")


def _photo(height: int = 90, width: int = 130) -> Image.Image:
    y, x = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    rgb = torch.stack([x * 255 // width, y * 255 // height, (x * y) % 256]).to(torch.uint8)
    return Image.frombytes("RGB", (width, height), rgb.permute(1, 2, 0).contiguous()
                           .numpy().tobytes())


def test_resolve_reads_pretrained_cfg_and_fills_defaults() -> None:
    model = models.create_model("mobilenet_v3_small", width_mult=0.25)
    model.pretrained_cfg = {"input_size": (3, 256, 256), "crop_pct": 0.95,
                            "interpolation": "bicubic", "mean": (0.5,) * 3, "std": (0.5,) * 3}
    config = resolve_data_config(model)
    assert config == {"input_size": (3, 256, 256), "crop_pct": 0.95, "interpolation": "bicubic",
                      "mean": (0.5,) * 3, "std": (0.5,) * 3}
    assert resolve_data_config(model, input_size=320)["input_size"] == (3, 320, 320)
    bare = torch.nn.Conv2d(3, 3, 1)
    assert resolve_data_config(bare) == DEFAULT_DATA_CONFIG
    for bad, match in [({"crop_pct": 1.5}, "crop_pct"), ({"interpolation": "lanczos"},
                       "interpolation"), ({"input_size": (224, 224)}, "input_size"),
                       ({"mean": (0.5, 0.5)}, "mean has 2 values")]:
        with pytest.raises(ValueError, match=match):
            resolve_data_config(bad)
    with pytest.raises(ValueError, match="unknown data config keys"):
        resolve_data_config(None, crop=0.9)


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_resize_crop_normalize_by_hand(interpolation: str) -> None:
    config = resolve_data_config({"crop_pct": 0.875, "interpolation": interpolation,
                                  "input_size": 64})
    image = _photo()
    out = create_transform(config, backend="pil")(image)
    assert out.shape == (3, 64, 64) and out.dtype == torch.float32
    scale = math.floor(64 / 0.875)  # 73: the shorter side
    resample = getattr(Image.Resampling, interpolation.upper())
    resized = image.resize((int(scale * 130 / 90), scale), resample)
    left, top = round((resized.width - 64) / 2), round((resized.height - 64) / 2)
    crop = resized.crop((left, top, left + 64, top + 64))
    expected = torch.frombuffer(bytearray(crop.tobytes()), dtype=torch.uint8).view(64, 64, 3)
    expected = expected.permute(2, 0, 1).float() / 255
    mean = torch.tensor(DEFAULT_DATA_CONFIG["mean"]).view(3, 1, 1)
    std = torch.tensor(DEFAULT_DATA_CONFIG["std"]).view(3, 1, 1)
    torch.testing.assert_close(out, (expected - mean) / std)


def test_torchvision_and_pillow_paths_agree(tmp_path: Path) -> None:
    pytest.importorskip("torchvision.transforms.v2", reason="torchvision is not installed")
    config = resolve_data_config({"crop_pct": 0.965, "interpolation": "bicubic"})
    image = _photo(300, 240)
    fast, plain = create_transform(config), create_transform(config, backend="pil")
    assert fast.backend == "torchvision" and plain.backend == "pil"
    torch.testing.assert_close(fast(image), plain(image), rtol=0, atol=1e-5)
    path = tmp_path / "photo.png"
    image.save(path)
    as_tensor = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(
        300, 240, 3).permute(2, 0, 1)
    torch.testing.assert_close(plain(path), plain(image))
    torch.testing.assert_close(plain(as_tensor), plain(image))
    assert "resize=232" in repr(plain)


def test_bad_images_fail_in_one_line(tmp_path: Path) -> None:
    transform = create_transform()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        transform(tmp_path / "none.jpg")
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="cannot decode image .*bad.jpg"):
        transform(tmp_path / "bad.jpg")
    with pytest.raises(ValueError, match="uint8 \\(3, height, width\\)"):
        transform(torch.zeros(1, 8, 8))
    with pytest.raises(ValueError, match="backend"):
        create_transform(backend="opencv")


def test_imagenet_class_names_ship_with_the_package() -> None:
    names = imagenet_class_names()
    assert len(names) == 1000 == len(set(names))
    assert (names[0], names[281], names[967]) == ("tench", "tabby", "espresso")
