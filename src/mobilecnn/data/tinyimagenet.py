"""TinyImageNet (official ``tiny-imagenet-200`` layout) and class-folder image data sets.

Class order: ``classes`` is always sorted (string order of the wnids or folder names), so class
indices do not depend on the order of ``wnids.txt`` or of the file system.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch.utils.data import Dataset

from .images import CorruptImageError, read_image

__all__ = [
    "IMAGE_EXTENSIONS",
    "CorruptImageError",
    "ImageFolderSplit",
    "TinyImageNet",
    "read_image",
    "resolve_root",
]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
"""File name endings (case-insensitive) taken as images in the class-folder layout."""

DATASET_DIRNAME = "tiny-imagenet-200"
SPLITS = ("train", "val", "test")
Split = Literal["train", "val", "test"]
Layout = Literal["official", "folders"]


def _how_to_get_data(root: Path) -> str:
    parent = root.parent if root.name == DATASET_DIRNAME else root
    return (
        f"get TinyImageNet with `mobilecnn download tiny-imagenet --root {parent}` "
        "(or pass download=True), or point root at a folder with train/<class>/ images"
    )


def resolve_root(root: str | os.PathLike[str]) -> Path:
    """The data set folder: ``root`` itself, or ``root/tiny-imagenet-200`` when only that has
    ``wnids.txt``. Raises FileNotFoundError (with the download command) if ``root`` is missing."""
    path = Path(root).expanduser()
    if not path.is_dir():
        what = "is not a folder" if path.exists() else "does not exist"
        raise FileNotFoundError(f"data root {path} {what}; {_how_to_get_data(path)}")
    if not (path / "wnids.txt").is_file() and (path / DATASET_DIRNAME / "wnids.txt").is_file():
        return path / DATASET_DIRNAME
    return path


def _is_image(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _images_in(folder: Path, recursive: bool) -> list[Path]:
    """Image files in ``folder`` (and below when ``recursive``), sorted by path."""
    found: list[Path] = []
    if recursive:
        for top, dirs, names in os.walk(folder):
            dirs[:] = [name for name in dirs if not name.startswith(".")]
            found.extend(Path(top) / name for name in names if _is_image(name))
    else:
        found = [folder / entry.name for entry in os.scandir(folder)
                 if entry.is_file() and _is_image(entry.name)]
    return sorted(found)


def _subfolders(folder: Path) -> list[str]:
    return sorted(entry.name for entry in os.scandir(folder)
                  if entry.is_dir() and not entry.name.startswith("."))


def _read_words(path: Path, wanted: Sequence[str]) -> dict[str, str]:
    """``wnid -> human name`` from a ``words.txt`` (``wnid<TAB>names``), for ``wanted`` only."""
    if not path.is_file():
        return {}
    wanted_set = set(wanted)
    names: dict[str, str] = {}
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            wnid, _, text = line.rstrip("\r\n").partition("\t")
            if wnid in wanted_set and text.strip():
                names[wnid] = text.strip()
    return names


class ImageFolderSplit(Dataset[tuple[Any, int]]):
    """A list of ``(image path, label)`` samples as a map-style data set.

    ``dataset[i]`` is ``(image, label)``: ``image`` a ``uint8`` tensor ``3 x H x W`` (RGB) or
    ``transform(image)`` when a transform is given; ``label`` an int, -1 for unlabeled images.
    """

    def __init__(
        self,
        samples: Sequence[tuple[Path, int]],
        classes: Sequence[str],
        class_names: Sequence[str] | None = None,
        transform: Callable[[torch.Tensor], Any] | None = None,
        root: str | os.PathLike[str] | None = None,
    ) -> None:
        self.samples: list[tuple[Path, int]] = [(Path(path), int(label)) for path, label in samples]
        self.classes: list[str] = list(classes)
        self.class_names: list[str] = list(class_names) if class_names is not None else list(
            self.classes)
        if len(self.class_names) != len(self.classes):
            raise ValueError(f"got {len(self.class_names)} class names for "
                             f"{len(self.classes)} classes")
        self.transform = transform
        self.root: Path | None = Path(root) if root is not None else None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        path, label = self.samples[index]
        image = read_image(path)
        if self.transform is not None:
            return self.transform(image), label
        return image, label

    @property
    def targets(self) -> list[int]:
        """The label of every sample, in order."""
        return [label for _, label in self.samples]

    def fingerprint(self) -> str:
        """A hash of the classes, names and every file's relative path, size, mtime and label:
        changes when the data set on disk changes."""
        digest = hashlib.sha256()
        digest.update(repr((self.classes, self.class_names)).encode())
        for path, label in self.samples:
            stat = path.stat()
            shown = os.path.relpath(path, self.root) if self.root is not None else str(path)
            digest.update(f"{shown}\t{stat.st_size}\t{stat.st_mtime_ns}\t{label}\n".encode())
        return digest.hexdigest()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self)} images, {len(self.classes)} classes, "
                f"root={str(self.root)!r})")


class TinyImageNet(ImageFolderSplit):
    """TinyImageNet, or any data set in the class-folder layout, as a map-style data set.

    ``root`` is the folder containing ``wnids.txt`` (``.../tiny-imagenet-200``; its parent is
    accepted too). Layouts, detected automatically:

    - official: ``wnids.txt``, ``words.txt``, ``train/<wnid>/images/*.JPEG``, ``val/images/*.JPEG``
      labelled by ``val/val_annotations.txt``, ``test/images/*.JPEG`` (unlabeled, label -1);
    - class folders: ``train/<class>/**/*.jpg`` and ``val/<class>/**/*.jpg`` (``test/**/*.jpg``
      unlabeled); classes are the folder names under ``train/``.

    ``classes`` are sorted wnids / folder names (the class index is the position in this list);
    ``class_names`` are the human names from ``words.txt`` (first match per wnid), else the
    folder names. ``dataset[i]`` is ``(uint8 3 x H x W RGB tensor, label)`` or
    ``(transform(image), label)``.

    The annotations are checked: a val image listed twice (with different labels or not), an
    image without an annotation line, an annotation naming a missing image and a class without
    images (in train, and in the official val split) are errors naming the count and the first
    cases. ``skip_bad=True`` leaves such samples out instead (empty classes stay) and reports
    the counts in a warning.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        transform: Callable[[torch.Tensor], Any] | None = None,
        download: bool = False,
        skip_bad: bool = False,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if download:
            root = _download_if_missing(Path(root).expanduser())
        data_root = resolve_root(root)
        self.split: str = split
        issues = _Issues(data_root, split, skip_bad)
        if (data_root / "wnids.txt").is_file():
            self.layout: Layout = "official"
            samples, classes, class_names = _scan_official(data_root, split, issues)
        elif (data_root / "train").is_dir() or (data_root / split).is_dir():
            self.layout = "folders"
            samples, classes, class_names = _scan_folders(data_root, split)
        else:
            raise FileNotFoundError(
                f"{data_root} has neither wnids.txt (official TinyImageNet layout) nor "
                f"train/<class>/ folders (class-folder layout); {_how_to_get_data(data_root)}"
            )
        if not samples:
            raise ValueError(f"no images found for split {split!r} under {data_root}")
        if split == "train" or (split == "val" and self.layout == "official"):
            # (a class-folder val split may cover only some classes)
            counts = Counter(label for _, label in samples)
            issues.add("class(es) without any image", [
                name for index, name in enumerate(classes) if not counts[index]])
        issues.report()
        super().__init__(samples, classes, class_names, transform, root=data_root)

    def __repr__(self) -> str:
        return (f"TinyImageNet(split={self.split!r}, {len(self)} images, {len(self.classes)} "
                f"classes, layout={self.layout!r}, root={str(self.root)!r})")


def _download_if_missing(root: Path) -> Path:
    if (root / "wnids.txt").is_file() or (root / DATASET_DIRNAME / "wnids.txt").is_file():
        return root
    from .download import download_tiny_imagenet

    parent = root.parent if root.name == DATASET_DIRNAME else root
    return download_tiny_imagenet(parent)


class _Issues:
    """Problems found while scanning a split: an error, or with ``skip_bad`` one warning."""

    def __init__(self, root: Path, split: str, skip_bad: bool) -> None:
        self.where = f"split {split!r} of {root}"
        self.skip_bad = skip_bad
        self.found: list[tuple[str, list[str]]] = []

    def add(self, what: str, examples: list[str]) -> None:
        if examples:
            self.found.append((what, examples))

    def report(self) -> None:
        if not self.found:
            return
        parts = "; ".join(f"{len(examples)} {what} (e.g. {', '.join(examples[:3])})"
                          for what, examples in self.found)
        if not self.skip_bad:
            raise ValueError(f"inconsistent data in {self.where}: {parts}; fix the data, or "
                             "pass skip_bad=True (--skip-bad) to leave such images out")
        warnings.warn(f"data problems in {self.where}, left out (--skip-bad): {parts}",
                      stacklevel=3)


def _scan_val_annotations(root: Path, wnids_name: str, index: dict[str, int],
                          issues: _Issues) -> list[tuple[Path, int]]:
    """``val/images`` labelled by ``val/val_annotations.txt``, after consistency checks."""
    annotations = root / "val" / "val_annotations.txt"
    if not annotations.is_file():
        raise FileNotFoundError(
            f"{annotations} is missing: the val labels come from it; {_how_to_get_data(root)}"
        )
    images = root / "val" / "images"
    present = {entry.name for entry in os.scandir(images)} if images.is_dir() else set()
    labels: dict[str, set[int]] = defaultdict(set)
    lines: Counter[str] = Counter()
    text = annotations.read_text(encoding="utf-8", errors="replace")
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            raise ValueError(f"{annotations}, line {line_no}: expected "
                             f"'<file>\\t<wnid>\\t...', got {line!r}")
        name, wnid = fields[0].strip(), fields[1].strip()
        if wnid not in index:
            raise ValueError(f"{annotations}, line {line_no}: unknown class {wnid!r} "
                             f"(not in {wnids_name}) for image {name}")
        labels[name].add(index[wnid])
        lines[name] += 1
    missing = [name for name in labels if name not in present]
    if missing and not issues.skip_bad:
        raise FileNotFoundError(f"{annotations}: image {images / missing[0]} does not exist "
                                f"({len(missing)} annotated images missing); the data set is "
                                "incomplete")
    issues.add("annotated image(s) missing from val/images", missing)
    conflicting = sorted(name for name, found in labels.items() if len(found) > 1)
    issues.add("image(s) annotated with different classes", conflicting)
    repeated = sorted(name for name, count in lines.items()
                      if count > 1 and len(labels[name]) == 1)
    issues.add("image(s) annotated more than once", repeated)
    unlabelled = sorted(name for name in present
                        if name not in labels and _is_image(name))
    issues.add("image(s) in val/images without an annotation line", unlabelled)
    dropped = set(missing) | set(conflicting)
    return [(images / name, next(iter(labels[name]))) for name in labels  # file order
            if name not in dropped]


def _scan_official(root: Path, split: str, issues: _Issues
                   ) -> tuple[list[tuple[Path, int]], list[str], list[str]]:
    wnids_file = root / "wnids.txt"
    wnids = [line.strip() for line in wnids_file.read_text(encoding="utf-8").splitlines()]
    wnids = [wnid for wnid in wnids if wnid]
    duplicates = sorted(wnid for wnid, count in Counter(wnids).items() if count > 1)
    if duplicates:
        raise ValueError(f"{wnids_file} lists classes more than once: {duplicates[:5]}")
    if not wnids:
        raise ValueError(f"{wnids_file} is empty; {_how_to_get_data(root)}")
    classes = sorted(wnids)
    index = {wnid: i for i, wnid in enumerate(classes)}
    words = _read_words(root / "words.txt", classes)
    class_names = [words.get(wnid, wnid) for wnid in classes]

    samples: list[tuple[Path, int]] = []
    if split == "train":
        for wnid in classes:
            folder = root / "train" / wnid / "images"
            if not folder.is_dir():
                raise FileNotFoundError(
                    f"{folder} is missing (class {wnid} of wnids.txt): the data set is "
                    f"incomplete; {_how_to_get_data(root)}"
                )
            samples.extend((path, index[wnid]) for path in _images_in(folder, recursive=False))
    elif split == "val":
        samples = _scan_val_annotations(root, wnids_file.name, index, issues)
    else:
        folder = root / "test" / "images"
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is missing: this copy has no test split")
        samples = [(path, -1) for path in _images_in(folder, recursive=False)]
    return samples, classes, class_names


def _scan_folders(root: Path, split: str) -> tuple[list[tuple[Path, int]], list[str], list[str]]:
    split_dir = root / split
    if not split_dir.is_dir():
        raise FileNotFoundError(f"{split_dir} is missing (class-folder layout: "
                                f"{split}/<class>/*.jpg); {_how_to_get_data(root)}")
    reference = root / "train" if (root / "train").is_dir() else split_dir
    classes = _subfolders(reference)
    if split == "test":
        samples = [(path, -1) for path in _images_in(split_dir, recursive=True)]
    else:
        if not classes:
            raise FileNotFoundError(f"{reference} has no class folders ({reference}/<class>/)")
        index = {name: i for i, name in enumerate(classes)}
        samples = []
        for name in _subfolders(split_dir):
            if name not in index:
                raise ValueError(f"{split_dir / name}: class {name!r} does not exist in "
                                 f"{reference} (known: {len(classes)} classes)")
            samples.extend((path, index[name])
                           for path in _images_in(split_dir / name, recursive=True))
    words = _read_words(root / "words.txt", classes)
    class_names = [words.get(name, name) for name in classes]
    return samples, classes, class_names
