"""Every registered model learns out of the box: trained through ``mobilecnn train`` for a few
epochs on generated data, it beats chance by a wide margin in eval mode, and its eval-mode
accuracy is close to what the same weights give with batch statistics (running statistics that
fit the weights). Models registered later are covered by iterating ``mobilecnn.MODELS``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import mobilecnn
from mobilecnn import create_model
from mobilecnn.cli import main
from mobilecnn.data import load_cache, make_demo_dataset, prepare_cache
from mobilecnn.train.checkpoints import load_model
from mobilecnn.train.config import default_optimizer
from mobilecnn.train.evaluation import evaluate, with_batch_statistics

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

CLASSES = 4
CHANCE = 1 / CLASSES
RUN = ["--width", "0.25", "--total-stride", "8", "--epochs", "4", "--batch-size", "16",
       "--warmup-epochs", "0.5", "--crop", "none", "--weight-decay", "5e-5",
       "--precision", "fp32", "--device", "cpu", "--no-progress", "--eval-batch-size", "40"]


# MobileNetV5-300M at width 0.25 still has 38 M parameters: 1.5-2 minutes here on 2 cores, and
# in 40 steps it learned at lr 5e-5 (42% with chance at 25%) but not at AdamW's default 1.25e-4
# for batch 16, nor at 3e-4. It runs with MOBILECNN_TEST_HEAVY=1.
HEAVY = {"mobilenet_v5_300m": ["--lr", "5e-5"]}


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_demo_dataset(tmp_path_factory.mktemp("family") / "demo", num_classes=CLASSES,
                             train_per_class=40, val_per_class=20, test_per_class=0,
                             image_size=16)
    for split in ("train", "val"):
        prepare_cache(root, split, num_workers=1)
    return root


@pytest.mark.parametrize("name", sorted(mobilecnn.MODELS))
def test_every_model_learns_and_evaluates_as_it_trained(
        name: str, demo_root: Path, tmp_path: Path) -> None:
    if name in HEAVY and not os.environ.get("MOBILECNN_TEST_HEAVY"):
        pytest.skip(f"{name}: 38 M parameters even at width 0.25, minutes to train on a CPU; "
                    "run with MOBILECNN_TEST_HEAVY=1")
    try:
        with torch.device("meta"):  # only the arguments are checked
            create_model(name, num_classes=CLASSES)
    except ValueError as error:  # e.g. a feature encoder without a classifier
        pytest.skip(f"{name} is not a classifier: {error}")
    out = tmp_path / name
    # each model with its own optimizer (TrainConfig's "auto": AdamW at its default learning
    # rate for MobileNetV5, SGD for the others, at a learning rate for this short run)
    lr = ["--lr", "0.05"] if default_optimizer(name) == "sgd" else HEAVY.get(name, [])
    assert main(["train", "--data", str(demo_root), "--out", str(out), "--model", name,
                 *RUN, *lr]) == 0
    model, saved = load_model(out / "last.pt")
    val = load_cache(prepare_cache(demo_root, "val"), verify=False)
    kwargs = {"mean": saved["mean"], "std": saved["std"], "batch_size": 40}
    eval_mode = evaluate(model, val.images, val.labels, **kwargs).top1_acc
    batch_stats = evaluate(with_batch_statistics(model), val.images, val.labels,
                           **kwargs).top1_acc
    # 40 steps are enough to learn the colours; with running statistics that do not fit the
    # weights (MobileNetV3, momentum 0.01) eval mode stays at chance whatever the weights learnt
    # (V3-Small reaches 39% here in 4 epochs, 42% with batch statistics; chance is 25%)
    assert eval_mode >= CHANCE + 0.1, (name, eval_mode, batch_stats)
    assert eval_mode >= batch_stats - 0.1, (name, eval_mode, batch_stats)
