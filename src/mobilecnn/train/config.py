"""The training configuration: one dataclass whose defaults are the recommended 64x64 recipe."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BASE_LR_PER_256",
    "DEFAULT_WEIGHT_DECAY",
    "OPTIMIZERS",
    "PRECISIONS",
    "TrainConfig",
    "demo_config",
]

OPTIMIZERS = ("sgd", "adamw", "rmsprop")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
CROPS = ("pad", "resized", "none")

BASE_LR_PER_256: dict[str, float] = {"sgd": 0.1, "adamw": 2e-3, "rmsprop": 0.016}
"""Peak learning rate for a *global* batch of 256; scaled linearly with the batch size."""

DEFAULT_WEIGHT_DECAY: dict[str, float] = {"sgd": 1e-4, "adamw": 0.05, "rmsprop": 4e-5}
"""Weight decay per optimizer when ``weight_decay`` is None (never applied to norm/bias)."""


@dataclass
class TrainConfig:
    """Everything that defines a training run. Defaults are the 64x64 TinyImageNet recipe.

    ``batch_size`` is the *global* batch: under ``torchrun`` with N processes each process
    takes ``batch_size / N`` images per step, so the same command gives the same
    optimization whatever N is. ``lr=None`` means ``BASE_LR_PER_256[optimizer] *
    batch_size / 256``.
    """

    data: str = "demo"
    """TinyImageNet root folder (``tiny-imagenet-200``), or ``"demo"`` for generated data."""
    out_dir: str = "runs/mobilecnn"
    """Run folder: checkpoints, metrics.jsonl, plots."""
    model: str = "mobilenet_v2"
    width: float = 1.0
    total_stride: int = 16
    """16 = stem stride 1, the variant for 64x64 inputs (final feature map 4x4)."""
    dropout: float = 0.2
    epochs: int = 60
    batch_size: int = 256
    optimizer: str = "sgd"
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float | None = None
    warmup_epochs: float = 3.0
    """Linear warmup length (capped at the run's length), then cosine decay to zero."""
    label_smoothing: float = 0.1
    grad_clip: float | None = None
    """Clip the global gradient norm to this value (None = no clipping)."""
    crop: str = "resized"
    """Batch augmentation crop: ``"resized"`` (random-resized crop), ``"pad"`` (pad 4 + crop)."""
    flip: bool = True
    precision: str = "auto"
    channels_last: bool = True
    compile: bool = False
    device: str = "auto"
    """``"auto"`` (CUDA, then MPS, then CPU), or a torch device string."""
    seed: int = 0
    eval_batch_size: int = 512
    cache_dir: str | None = None
    progress: bool | None = None
    """tqdm bars: None = only when stderr is a terminal."""
    interrupt_after_steps: int | None = None
    """Test hook: behave as if SIGINT arrived after this many optimizer steps of this run."""
    demo_classes: int = 10
    demo_train_per_class: int = 300
    demo_val_per_class: int = 50

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad field, its value and what is accepted."""
        from ..models import MODELS

        def positive(name: str, integer: bool) -> None:
            value = getattr(self, name)
            ok = isinstance(value, int) if integer else isinstance(value, (int, float))
            if isinstance(value, bool) or not ok or not value > 0 or not math.isfinite(value):
                kind = "a positive integer" if integer else "a positive number"
                raise ValueError(f"{name} must be {kind}, got {value!r}")

        def choice(name: str, options: tuple[str, ...]) -> None:
            if getattr(self, name) not in options:
                raise ValueError(
                    f"{name} must be one of {', '.join(options)}; got {getattr(self, name)!r}"
                )

        if not isinstance(self.data, str) or not self.data:
            raise ValueError("data must be a TinyImageNet folder or 'demo'")
        if self.model not in MODELS:
            raise ValueError(
                f"model must be one of {', '.join(sorted(MODELS))}; got {self.model!r}"
            )
        for name in ("epochs", "batch_size", "eval_batch_size"):
            positive(name, integer=True)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        for name in ("width", "momentum"):
            positive(name, integer=False)
        for name in ("lr", "grad_clip"):
            if getattr(self, name) is not None:
                positive(name, integer=False)
        if self.weight_decay is not None and not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not (isinstance(self.warmup_epochs, (int, float)) and self.warmup_epochs >= 0):
            raise ValueError(f"warmup_epochs must be a number >= 0, got {self.warmup_epochs!r}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.total_stride not in (8, 16, 32):
            raise ValueError(
                f"total_stride must be 8, 16 or 32 (16 for 64x64 inputs), got {self.total_stride!r}"
            )
        choice("optimizer", OPTIMIZERS)
        choice("precision", PRECISIONS)
        choice("crop", CROPS)
        if self.interrupt_after_steps is not None:
            positive("interrupt_after_steps", integer=True)
        for name in ("demo_classes", "demo_train_per_class", "demo_val_per_class"):
            positive(name, integer=True)

    @property
    def peak_lr(self) -> float:
        """The learning rate after warmup for this global batch size."""
        if self.lr is not None:
            return float(self.lr)
        return BASE_LR_PER_256[self.optimizer] * self.batch_size / 256

    @property
    def effective_weight_decay(self) -> float:
        """``weight_decay``, or the optimizer's default when it is None."""
        if self.weight_decay is not None:
            return float(self.weight_decay)
        return DEFAULT_WEIGHT_DECAY[self.optimizer]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from :meth:`to_dict` output; unknown keys are an error naming them."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown training option(s): {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        return cls(**values)

    def replace(self, **changes: Any) -> TrainConfig:
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def demo_config(out_dir: str = "mobilecnn-demo", epochs: int = 6, **changes: Any) -> TrainConfig:
    """The ``mobilecnn demo`` recipe: a narrow small-input MobileNetV2 on generated data, on CPU.

    Width 0.25, batch 64, peak lr 0.1, 1 warmup epoch, pad-crop + flip; ``changes`` override
    any field. See docs/training.md for its measured time and accuracy.
    """
    values: dict[str, Any] = {
        "data": "demo",
        "out_dir": out_dir,
        "model": "mobilenet_v2",
        "width": 0.25,
        "total_stride": 16,
        "epochs": epochs,
        "batch_size": 64,
        "lr": 0.1,  # 0.4 per 256: a short run on easy data takes a high peak after warmup
        "warmup_epochs": 1.0,
        "crop": "pad",
        "weight_decay": 5e-5,
        "device": "cpu",
    }
    values.update(changes)
    return TrainConfig(**values)
