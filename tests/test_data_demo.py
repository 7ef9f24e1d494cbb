"""make_demo_dataset: official layout, determinism, idempotence and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from data_helpers import snapshot
from mobilecnn.data import DEMO_CLASSES, TinyImageNet, make_demo_dataset

SMALL = {"num_classes": 4, "train_per_class": 3, "val_per_class": 2, "test_per_class": 1,
         "image_size": 32}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo_dataset(tmp_path_factory.mktemp("d") / "demo", seed=1, **SMALL)


def test_official_layout_readable_by_tinyimagenet(demo: Path) -> None:
    assert (demo / "wnids.txt").is_file() and (demo / "val" / "val_annotations.txt").is_file()
    train, val, test = (TinyImageNet(demo, split) for split in ("train", "val", "test"))
    assert train.layout == "official"
    assert (len(train), len(val), len(test)) == (12, 8, 4)
    assert sorted(train.targets) == [c for c in range(4) for _ in range(3)]
    assert sorted(val.targets) == [c for c in range(4) for _ in range(2)]
    assert train[0][0].shape == (3, 32, 32) and train[0][0].dtype == torch.uint8
    expected = [demo_class.name for demo_class in DEMO_CLASSES[:4]]
    for name, wanted in zip(train.class_names, expected, strict=True):
        assert name.startswith(wanted) and "generated" in name
    boxes = (demo / "train" / train.classes[0] / f"{train.classes[0]}_boxes.txt").read_text()
    assert len(boxes.splitlines()) == 3


def test_classes_are_distinct_names() -> None:
    names = [demo_class.name for demo_class in DEMO_CLASSES]
    assert len(set(names)) == len(names) >= 40
    assert names[0] == "red circle"


def test_deterministic_for_a_seed(demo: Path, tmp_path: Path) -> None:
    same = make_demo_dataset(tmp_path / "same", seed=1, **SMALL)
    other = make_demo_dataset(tmp_path / "other", seed=2, **SMALL)
    reference = snapshot(demo)
    files = [name for name in reference if name.endswith(".JPEG")]
    assert files and [n for n in snapshot(same) if n.endswith(".JPEG")] == files
    assert all((demo / n).read_bytes() == (same / n).read_bytes() for n in files)
    assert any((demo / n).read_bytes() != (other / n).read_bytes() for n in files)


def test_idempotent_and_refuses_to_overwrite(tmp_path: Path) -> None:
    root = make_demo_dataset(tmp_path / "demo", **SMALL)
    before = snapshot(root)
    assert make_demo_dataset(root, **SMALL) == root
    assert snapshot(root) == before
    with pytest.raises(ValueError, match="other settings"):
        make_demo_dataset(root, **{**SMALL, "num_classes": 5})
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    with pytest.raises(ValueError, match="refusing"):
        make_demo_dataset(foreign, **SMALL)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (make_demo_dataset(empty, **SMALL) / "wnids.txt").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo", "empty", "mine"]


@pytest.mark.parametrize("bad", [{"num_classes": 1}, {"num_classes": 1000},
                                 {"image_size": 8}, {"train_per_class": 0}])
def test_bad_arguments(tmp_path: Path, bad: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        make_demo_dataset(tmp_path / "x", **{**SMALL, **bad})
    assert not (tmp_path / "x").exists()


def test_classes_differ_in_colour_statistics(demo: Path) -> None:
    # a weak sanity check that images carry their class: the red-circle class is redder
    train = TinyImageNet(demo, "train")
    red = torch.stack([train[i][0].float() for i, t in enumerate(train.targets) if t == 0])
    blue = torch.stack([train[i][0].float() for i, t in enumerate(train.targets) if t == 1])
    assert (red[:, 0] - red[:, 2]).mean() > (blue[:, 0] - blue[:, 2]).mean() + 10
