"""Training and evaluation: ``TrainConfig`` + ``train(config)``, checkpoints, metrics, DDP.

>>> from mobilecnn.train import TrainConfig, train          # doctest: +SKIP
>>> result = train(TrainConfig(data="demo", epochs=5))      # doctest: +SKIP
"""

from __future__ import annotations

from .checkpoints import CheckpointError, load_checkpoint, load_model, save_checkpoint
from .config import TrainConfig, demo_config
from .loop import TrainingInterrupted, TrainResult, autocast_dtype, evaluate, train
from .metrics import SplitMetrics, topk_correct

__all__ = [
    "CheckpointError",
    "SplitMetrics",
    "TrainConfig",
    "TrainResult",
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
