"""Training and evaluation: ``TrainConfig`` + ``train(config)``, checkpoints, metrics, DDP.

>>> from mobilecnn.train import TrainConfig, train          # doctest: +SKIP
>>> result = train(TrainConfig(data="demo", epochs=5))      # doctest: +SKIP
"""

from __future__ import annotations

from .checkpoints import (
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    load_model,
    save_checkpoint,
)
from .config import TrainConfig, demo_config
from .evaluation import evaluate
from .loop import TrainingDiverged, TrainingInterrupted, TrainResult, train
from .metrics import SplitMetrics, topk_correct
from .precision import autocast_dtype

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "SplitMetrics",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "TrainingInterrupted",
    "autocast_dtype",
    "demo_config",
    "evaluate",
    "load_checkpoint",
    "load_model",
    "save_checkpoint",
    "topk_correct",
    "train",
]
