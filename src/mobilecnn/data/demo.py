"""A procedurally drawn stand-in for TinyImageNet: coloured shapes and textured patches.

Written in the official TinyImageNet layout so every code path (wnids.txt, words.txt,
train/<wnid>/images, val annotations, the unlabeled test split) is exercised without a download.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._deps import require_pil_image, tqdm_bar

__all__ = ["DEMO_CLASSES", "DIFFICULTIES", "HARD_DEMO_CLASSES", "DemoClass", "make_demo_dataset"]

MARKER_NAME = ".mobilecnn_demo.json"
GENERATOR_VERSION = 2

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "blue": (40, 80, 230),
    "green": (40, 180, 60),
    "yellow": (235, 215, 40),
    "magenta": (210, 50, 200),
    "cyan": (40, 210, 220),
    "orange": (245, 140, 30),
    "white": (245, 245, 245),
}
SHAPES = ("circle", "square", "triangle", "star", "cross", "ring")
TEXTURES = ("striped", "checkerboard", "polka-dot")
TEXTURE_INK = {"striped": "white", "checkerboard": "yellow", "polka-dot": "red"}


@dataclass(frozen=True)
class DemoClass:
    """One generated class: a coloured shape (``colour`` set) or a textured patch."""

    kind: str
    """A shape of SHAPES or a texture of TEXTURES."""
    colour: str | None = None
    texture: str | None = None
    """Hard data only: a shape filled with this texture instead of a colour."""

    @property
    def name(self) -> str:
        if self.texture:
            return f"{self.texture} {self.kind}"
        return f"{self.colour} {self.kind}" if self.colour else f"{self.kind} patch"


def _catalog() -> tuple[DemoClass, ...]:
    # The first ten differ in both shape and colour (or are textures); the rest are the
    # remaining colour x shape pairs.
    first = [DemoClass(shape, colour) for shape, colour in zip(
        SHAPES, ("red", "blue", "green", "yellow", "magenta", "cyan"), strict=True)]
    first += [DemoClass(texture) for texture in TEXTURES]
    first.append(DemoClass("square", "orange"))
    rest = [DemoClass(shape, colour) for colour in COLOURS for shape in SHAPES
            if DemoClass(shape, colour) not in first]
    return tuple(first + rest)


DEMO_CLASSES = _catalog()
"""Every class the generator can draw, in the order ``num_classes`` takes them."""

DIFFICULTIES = ("easy", "hard")
"""``make_demo_dataset`` difficulties: ``"easy"`` (the demo) and ``"hard"`` (for ablations)."""

HARD_DEMO_CLASSES = DEMO_CLASSES + tuple(
    DemoClass(shape, texture=texture) for texture in TEXTURES for shape in SHAPES)
"""The classes of ``difficulty="hard"``: ``DEMO_CLASSES`` and the shapes filled with textures."""


def _jitter(colour: tuple[int, int, int], rng: random.Random, amount: int = 25) -> tuple[int, ...]:
    return tuple(min(255, max(0, c + rng.randint(-amount, amount))) for c in colour)


def _shape_points(kind: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float,
                                                                                          float]]:
    if kind == "square":
        corners = [(math.pi / 4 + k * math.pi / 2, r) for k in range(4)]
    elif kind == "triangle":
        corners = [(k * 2 * math.pi / 3, r) for k in range(3)]
    elif kind == "star":
        corners = [(k * math.pi / 5, r if k % 2 == 0 else 0.42 * r) for k in range(10)]
    elif kind == "cross":
        arm = 0.36
        outline = [(arm, 1), (arm, arm), (1, arm), (1, -arm), (arm, -arm), (arm, -1),
                   (-arm, -1), (-arm, -arm), (-1, -arm), (-1, arm), (-arm, arm), (-arm, 1)]
        corners = [(math.atan2(y, x), r * 0.8 * math.hypot(x, y)) for x, y in outline]
    else:  # pragma: no cover - guarded by the catalog
        raise ValueError(f"unknown shape {kind!r}")
    return [(cx + radius * math.cos(theta + angle), cy + radius * math.sin(theta + angle))
            for theta, radius in corners]


def _background(size: int, rng: random.Random) -> Any:
    image_module = require_pil_image()
    from PIL import ImageDraw

    grey = rng.randint(35, 175)
    base = tuple(min(255, max(0, grey + rng.randint(-18, 18))) for _ in range(3))
    image = image_module.new("RGB", (size, size), base)
    noise = image_module.frombytes("L", (size, size), rng.randbytes(size * size)).convert("RGB")
    image = image_module.blend(image, noise, rng.uniform(0.08, 0.22))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(0, 3)):  # muted clutter lines
        level = rng.randint(20, 220)
        points = [(rng.uniform(0, size), rng.uniform(0, size)) for _ in range(2)]
        draw.line(points, fill=(level, level, level), width=max(1, size // 48))
    return image


def _texture_patch(kind: str, side: int, rng: random.Random) -> Any:
    image_module = require_pil_image()
    from PIL import ImageDraw

    # Each texture has its own ink colour (on dark or on another colour), so that a small
    # network learns the demo within a few epochs; the pattern still has to be seen.
    hue_a = COLOURS[TEXTURE_INK[kind]]
    hue_b = rng.choice([c for name, c in COLOURS.items() if name != TEXTURE_INK[kind]])
    if rng.random() < 0.5:
        hue_b = (15, 15, 15)
    patch = image_module.new("RGB", (side, side), _jitter(hue_b, rng))
    draw = ImageDraw.Draw(patch)
    ink = _jitter(hue_a, rng)
    scale = side / 40
    if kind == "striped":
        period = max(3, round(rng.uniform(5, 9) * scale))
        for x in range(0, side, period):
            draw.rectangle([x, 0, x + period // 2 - 1 + (period % 2 == 0), side], fill=ink)
    elif kind == "checkerboard":
        cell = max(2, round(rng.uniform(4, 7) * scale))
        for y in range(0, side, cell):
            for x in range((y // cell) % 2 * cell, side, 2 * cell):
                draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=ink)
    else:  # polka-dot
        spacing = max(4, round(rng.uniform(8, 11) * scale))
        radius = spacing / 3.6
        for y in range(spacing // 2, side, spacing):
            for x in range(spacing // 2, side, spacing):
                draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=ink)
    return patch


def _draw(demo_class: DemoClass, size: int, rng: random.Random) -> tuple[Any, tuple[int, ...]]:
    """One image of ``demo_class`` and its bounding box ``(x0, y0, x1, y1)``."""
    image_module = require_pil_image()
    from PIL import ImageDraw

    image = _background(size, rng)
    angle = rng.uniform(0, 2 * math.pi)
    if demo_class.colour is None:
        side = round(rng.uniform(0.45, 0.75) * size)
        patch = _texture_patch(demo_class.kind, side, rng)
        mask = image_module.new("L", (side, side), 255)
        degrees = math.degrees(angle)
        patch = patch.rotate(degrees, image_module.Resampling.BILINEAR, expand=True)
        mask = mask.rotate(degrees, image_module.Resampling.BILINEAR, expand=True)
        width, height = patch.size
        x0 = rng.randint(0, max(0, size - width)) if width <= size else (size - width) // 2
        y0 = rng.randint(0, max(0, size - height)) if height <= size else (size - height) // 2
        image.paste(patch, (x0, y0), mask)
        box = (x0, y0, x0 + width - 1, y0 + height - 1)
    else:
        radius = rng.uniform(0.17, 0.34) * size
        cx = rng.uniform(radius, size - radius)
        cy = rng.uniform(radius, size - radius)
        fill = _jitter(COLOURS[demo_class.colour], rng)
        draw = ImageDraw.Draw(image)
        if demo_class.kind in ("circle", "ring"):
            bounds = [cx - radius, cy - radius, cx + radius, cy + radius]
            if demo_class.kind == "circle":
                draw.ellipse(bounds, fill=fill)
            else:
                draw.ellipse(bounds, outline=fill, width=max(2, round(radius * 0.35)))
        else:
            draw.polygon(_shape_points(demo_class.kind, cx, cy, radius, angle), fill=fill)
        box = (round(cx - radius), round(cy - radius), round(cx + radius), round(cy + radius))
    clipped = tuple(min(size - 1, max(0, value)) for value in box)
    return image, clipped


def _shape_mask(kind: str, side: int, angle: float) -> Any:
    """An ``L`` mask ``side x side`` of ``kind`` centred in it (255 inside)."""
    image_module = require_pil_image()
    from PIL import ImageDraw

    mask = image_module.new("L", (side, side), 0)
    draw = ImageDraw.Draw(mask)
    centre, radius = side / 2, side / 2 - 1
    if kind in ("circle", "ring"):
        bounds = [centre - radius, centre - radius, centre + radius, centre + radius]
        if kind == "circle":
            draw.ellipse(bounds, fill=255)
        else:
            draw.ellipse(bounds, outline=255, width=max(2, round(radius * 0.45)))
    else:
        draw.polygon(_shape_points(kind, centre, centre, radius, angle), fill=255)
    return mask


def _draw_hard(demo_class: DemoClass, size: int, rng: random.Random
               ) -> tuple[Any, tuple[int, ...]]:
    """One hard image: the class object at a wide range of scales, with strong colour jitter,
    smaller distractor shapes, an occluding bar and a global colour cast."""
    image_module = require_pil_image()
    from PIL import ImageDraw

    image = _background(size, rng)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(1, 4)):  # distractors: smaller shapes of any colour
        kind = rng.choice(SHAPES)
        radius = rng.uniform(0.04, 0.08) * size
        cx, cy = rng.uniform(0, size), rng.uniform(0, size)
        colour = _jitter(rng.choice(list(COLOURS.values())), rng, 45)
        if kind in ("circle", "ring"):
            draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=colour)
        else:
            draw.polygon(_shape_points(kind, cx, cy, radius, rng.uniform(0, 2 * math.pi)),
                         fill=colour)
    angle = rng.uniform(0, 2 * math.pi)
    if demo_class.colour is None and demo_class.texture is None:  # a textured patch
        side = round(rng.uniform(0.3, 0.7) * size)
        patch = _texture_patch(demo_class.kind, side, rng)
        mask = image_module.new("L", (side, side), 255).rotate(
            math.degrees(angle), image_module.Resampling.BILINEAR, expand=True)
        patch = patch.rotate(math.degrees(angle), image_module.Resampling.BILINEAR, expand=True)
    else:
        side = max(8, round(2 * rng.uniform(0.17, 0.4) * size))
        mask = _shape_mask(demo_class.kind, side, angle)
        if demo_class.texture is not None:
            patch = _texture_patch(demo_class.texture, side, rng)
        else:
            patch = image_module.new("RGB", (side, side),
                                     _jitter(COLOURS[demo_class.colour or "white"], rng, 45))
    width, height = patch.size
    x0 = rng.randint(0, max(0, size - width)) if width <= size else (size - width) // 2
    y0 = rng.randint(0, max(0, size - height)) if height <= size else (size - height) // 2
    image.paste(patch, (x0, y0), mask)
    draw = ImageDraw.Draw(image)
    if rng.random() < 0.5:  # occlusion: a bar across part of the object
        level = tuple(rng.randint(0, 255) for _ in range(3))
        thick = rng.uniform(0.1, 0.3) * min(width, height)
        if rng.random() < 0.5:
            top = y0 + rng.uniform(0, max(1.0, height - thick))
            draw.rectangle([x0 - 2, top, x0 + width + 2, top + thick], fill=level)
        else:
            left = x0 + rng.uniform(0, max(1.0, width - thick))
            draw.rectangle([left, y0 - 2, left + thick, y0 + height + 2], fill=level)
    gains = [rng.uniform(0.8, 1.2) for _ in range(3)]  # colour cast and brightness
    image = image.point([min(255, round(v * gains[band])) for band in range(3)
                         for v in range(256)])
    box = (x0, y0, x0 + width - 1, y0 + height - 1)
    return image, tuple(min(size - 1, max(0, value)) for value in box)


def make_demo_dataset(
    root: str | os.PathLike[str],
    num_classes: int = 10,
    train_per_class: int = 300,
    val_per_class: int = 50,
    image_size: int = 64,
    seed: int = 0,
    progress: bool = False,
    test_per_class: int = 10,
    difficulty: str = "easy",
) -> Path:
    """Draw a TinyImageNet-layout data set of shapes and textures into ``root``; returns ``root``.

    ``root`` becomes the data set folder (it holds ``wnids.txt``): pass it to
    :class:`TinyImageNet`. Classes are ``DEMO_CLASSES[:num_classes]`` ("red circle",
    "striped patch", ...) at a random position, size and rotation on a noisy, cluttered grey
    background; ``words.txt`` says they are generated. Deterministic for a seed.

    Idempotent: a marker file records the settings; running again with the same settings does
    nothing, other settings or a non-empty folder that is not a demo data set raise ValueError.
    The folder appears complete or not at all (written beside it, then renamed).

    ``difficulty="hard"`` draws from :data:`HARD_DEMO_CLASSES` (up to 69 classes: colour x
    shape, textures and texture-filled shapes) at scales from small to large, with strong colour
    jitter and a colour cast, smaller distractor shapes and occluding bars: a data set on which
    training recipes differ (see docs/training.md). ``"easy"`` is the demo data, unchanged.
    """
    for name, value, low in (("num_classes", num_classes, 2), ("train_per_class", train_per_class,
                             1), ("val_per_class", val_per_class, 1),
                             ("test_per_class", test_per_class, 0), ("image_size", image_size, 16)):
        if not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {', '.join(DIFFICULTIES)}; got "
                         f"{difficulty!r}")
    catalog = HARD_DEMO_CLASSES if difficulty == "hard" else DEMO_CLASSES
    if num_classes > len(catalog):
        raise ValueError(f"num_classes must be at most {len(catalog)} (the generator draws "
                         f"that many distinct {difficulty} classes), got {num_classes}")
    root = Path(root).expanduser()
    settings = {"generator": "mobilecnn.data.make_demo_dataset", "version": GENERATOR_VERSION,
                "num_classes": num_classes, "train_per_class": train_per_class,
                "val_per_class": val_per_class, "test_per_class": test_per_class,
                "image_size": image_size, "seed": seed}
    if difficulty != "easy":  # the easy marker stays as it was before difficulties existed
        settings["difficulty"] = difficulty
    marker = root / MARKER_NAME
    if marker.is_file():
        try:
            existing = json.loads(marker.read_text(encoding="utf-8"))
        except ValueError:
            existing = None
        if existing == settings:
            return root
        raise ValueError(f"{root} already holds a demo data set made with other settings "
                         f"({existing}); choose another folder or delete this one")
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ValueError(f"{root} exists and is not an empty folder nor a mobilecnn demo data "
                         "set; refusing to write into it: choose another folder")
    require_pil_image()

    root.parent.mkdir(parents=True, exist_ok=True)
    staging = root.parent / f".{root.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _write_demo(staging, catalog[:num_classes], settings, progress)
        if root.exists():
            root.rmdir()  # empty, checked above
        os.replace(staging, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def _write_demo(folder: Path, classes: tuple[DemoClass, ...], settings: dict[str, Any],
                progress: bool) -> None:
    size, seed = settings["image_size"], settings["seed"]
    painter = _draw_hard if settings.get("difficulty") == "hard" else _draw
    wnids = [f"g{index:03d}_{demo_class.name.replace(' ', '_')}"
             for index, demo_class in enumerate(classes)]
    folder.mkdir(parents=True)
    (folder / "wnids.txt").write_text("".join(f"{w}\n" for w in wnids), encoding="utf-8")
    (folder / "words.txt").write_text(
        "".join(f"{wnid}\t{demo_class.name} (generated demo image, not ImageNet)\n"
                for wnid, demo_class in zip(wnids, classes, strict=True)), encoding="utf-8")
    counts = (settings["train_per_class"], settings["val_per_class"], settings["test_per_class"])
    total = len(classes) * sum(counts)
    bar = tqdm_bar(progress, total=total, desc="drawing demo images", unit="img")

    def draw(split: str, class_index: int, number: int) -> tuple[Any, tuple[int, ...]]:
        rng = random.Random(f"{seed}:{split}:{class_index}:{number}")
        bar.update()
        return painter(classes[class_index], size, rng)

    with bar:
        for class_index, wnid in enumerate(wnids):
            images = folder / "train" / wnid / "images"
            images.mkdir(parents=True)
            boxes = []
            for number in range(counts[0]):
                image, box = draw("train", class_index, number)
                name = f"{wnid}_{number}.JPEG"
                image.save(images / name, quality=90)
                boxes.append(f"{name}\t" + "\t".join(map(str, box)) + "\n")
            (folder / "train" / wnid / f"{wnid}_boxes.txt").write_text("".join(boxes))
        for split, count in (("val", counts[1]), ("test", counts[2])):
            images = folder / split / "images"
            images.mkdir(parents=True)
            order = [(c, n) for c in range(len(classes)) for n in range(count)]
            random.Random(f"{seed}:{split}:order").shuffle(order)
            lines = []
            for number, (class_index, index_in_class) in enumerate(order):
                image, box = draw(split, class_index, index_in_class)
                name = f"{split}_{number}.JPEG"
                image.save(images / name, quality=90)
                lines.append(f"{name}\t{wnids[class_index]}\t" + "\t".join(map(str, box)) + "\n")
            if split == "val":
                (folder / "val" / "val_annotations.txt").write_text("".join(lines))
    (folder / "README.txt").write_text(
        "Procedurally generated demo data in the TinyImageNet layout, made by mobilecnn's\n"
        "make_demo_dataset. These are drawn shapes and textures, not ImageNet photographs.\n"
        f"Settings: {json.dumps(settings)}\n", encoding="utf-8")
    (folder / MARKER_NAME).write_text(json.dumps(settings, indent=2), encoding="utf-8")
