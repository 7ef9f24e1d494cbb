"""make_demo_dataset(difficulty="hard"): more classes, harder images; "easy" is unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mobilecnn.data import (
    DEMO_CLASSES,
    HARD_DEMO_CLASSES,
    TinyImageNet,
    make_demo_dataset,
)

SMALL = {"train_per_class": 2, "val_per_class": 1, "test_per_class": 0, "image_size": 32}


def test_hard_catalog_extends_the_easy_one() -> None:
    assert HARD_DEMO_CLASSES[:len(DEMO_CLASSES)] == DEMO_CLASSES
    names = [c.name for c in HARD_DEMO_CLASSES]
    assert len(set(names)) == len(names) >= 60
    assert "striped circle" in names


def test_hard_dataset(tmp_path: Path) -> None:
    root = make_demo_dataset(tmp_path / "hard", num_classes=60, difficulty="hard", **SMALL)
    train = TinyImageNet(root, "train")
    assert len(train) == 120 and len(train.classes) == 60
    marker = json.loads((root / ".mobilecnn_demo.json").read_text())
    assert marker["difficulty"] == "hard"
    easy = make_demo_dataset(tmp_path / "easy", num_classes=5, **SMALL)
    assert "difficulty" not in json.loads((easy / ".mobilecnn_demo.json").read_text())
    # same class and seed, other difficulty: other pictures
    hard_image = TinyImageNet(root, "train")[0][0]
    easy_image = TinyImageNet(easy, "train")[0][0]
    assert not torch.equal(hard_image, easy_image)
    with pytest.raises(ValueError, match="other settings"):
        make_demo_dataset(root, num_classes=10, **SMALL)  # easy into a hard folder


def test_bad_difficulty_and_too_many_classes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="difficulty must be one of easy, hard"):
        make_demo_dataset(tmp_path / "x", difficulty="medium", **SMALL)
    with pytest.raises(ValueError, match=f"at most {len(HARD_DEMO_CLASSES)}"):
        make_demo_dataset(tmp_path / "x", num_classes=len(HARD_DEMO_CLASSES) + 1,
                          difficulty="hard", **SMALL)
    assert not (tmp_path / "x").exists()
