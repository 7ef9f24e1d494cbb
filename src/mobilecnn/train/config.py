"""The training configuration: one dataclass whose defaults are the recommended 64x64 recipe."""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from ..devices import DEVICE_CHOICES, check_device_name
from ..limits import IMAGE_SIZE, WIDTH, check_size
from .recipes import RECIPES, count_training_images, fit_to_run, get_recipe

__all__ = [
    "BASE_LR_PER_256",
    "check_field",
    "option",
    "DEFAULT_WEIGHT_DECAY",
    "OPTIMIZERS",
    "PRECISIONS",
    "TrainConfig",
    "default_optimizer",
    "demo_config",
    "fit_recipe_config",
    "recipe_config",
]

OPTIMIZERS = ("sgd", "adamw", "rmsprop")
_OPTIMIZER_CHOICES = ("auto", *OPTIMIZERS)  # what TrainConfig.optimizer accepts
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
CROPS = ("pad", "resized", "none")
AUTO_AUGMENTS = ("none", "randaugment", "trivialaugment")

BASE_LR_PER_256: dict[str, float] = {"sgd": 0.1, "adamw": 2e-3, "rmsprop": 0.016}
"""Peak learning rate for a *global* batch of 256; scaled linearly with the batch size."""

DEFAULT_WEIGHT_DECAY: dict[str, float] = {"sgd": 1e-4, "adamw": 0.05, "rmsprop": 4e-5}
"""Weight decay per optimizer when ``weight_decay`` is None (never applied to norm/bias)."""


def default_optimizer(model: str) -> str:
    """The optimizer ``optimizer="auto"`` picks for ``model``: AdamW for MobileNetV5 (RMSNorm,
    attention and layer scales; SGD diverges on it, see docs/training.md), SGD for the
    convolutional MobileNets."""
    return "adamw" if model.startswith("mobilenet_v5") else "sgd"


def option(default: Any, help: str, **cli: Any) -> Any:
    """A :class:`TrainConfig` field that is also a ``mobilecnn train`` option.

    ``help`` is the option's help text (the default is appended). ``cli`` may hold:

    - ``flag``: the option name (default ``--<name-with-dashes>``);
    - ``choices``: a tuple, or a function returning one; ``metavar``;
    - ``show_default=False``: the help text already says the default;
    - ``negative_help``: for a bool defaulting to True or None, the ``--no-...`` text;
    - ``check``: a function ``(name, value)`` raising ``ValueError`` (else :func:`check_field`);
    - ``cli=False``: no command-line option.

    Adding a field with ``option(...)`` is all it takes to give ``mobilecnn train`` a new flag:
    the parser is generated from these fields (bools become ``--name`` / ``--no-name``).
    """
    return dataclasses.field(default=default, metadata={"help": help, **cli})


def _model_names() -> list[str]:
    from ..models import MODELS

    return sorted(MODELS)


def _recipe_names() -> tuple[str, ...]:
    return tuple(RECIPES)


def _check_recipe(name: str, value: Any) -> None:
    if value is not None:
        get_recipe(value)


def _check_unit(name: str, value: Any) -> None:
    """A probability or mixing weight in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")


def _check_alpha(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            0 <= value < math.inf):
        raise ValueError(f"{name} must be a number >= 0 (0 = off), got {value!r}")


def _check_decay(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")


def _check_lr_decay(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"{name} must be in (0, 1] (1 = off), got {value!r}")


def _check_magnitude(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 30:
        raise ValueError(f"{name} must be an integer bin in 0..30, got {value!r}")


def _check_optional_bool(name: str, value: Any) -> None:
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"{name} must be True, False or None (automatic), got {value!r}")


def _check_spec(name: str, value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError(f"{name} must be a path or SOURCE:...:PATH spec, got {value!r}")


@dataclass
class TrainConfig:
    """Everything that defines a training run. Defaults are the 64x64 TinyImageNet recipe.

    ``batch_size`` is the *global* batch: under ``torchrun`` with N processes each process
    takes ``batch_size / N`` images per step, so the same command gives the same
    optimization whatever N is. ``lr=None`` means ``BASE_LR_PER_256[optimizer] *
    batch_size / 256``. Each field's help text (``dataclasses.fields(TrainConfig)[i].metadata``)
    is also its ``mobilecnn train`` option's help.
    """

    data: str = option("demo", "tiny-imagenet-200 folder, or 'demo' for generated data "
                       "(required unless --resume)", metavar="DIR", show_default=False)
    out_dir: str = option("runs/mobilecnn", "run folder for checkpoints, metrics.jsonl and "
                          "plots (default runs/mobilecnn; mobilecnn-demo for --data demo)",
                          flag="--out", metavar="DIR", show_default=False)
    model: str = option("mobilenet_v2", "architecture", choices=_model_names)
    width: float = option(1.0, "width multiplier")
    total_stride: int = option(16, "16 = stem stride 1, the variant for 64x64 inputs (final "
                               "feature map 4x4); 32 = paper", choices=(8, 16, 32))
    dropout: float = option(0.2, "dropout before the classifier")
    epochs: int = option(60, "length of the run; with --resume the schedule is re-planned for "
                         "this length from the current step (docs/training.md)")
    batch_size: int = option(256, "GLOBAL batch over all processes")
    optimizer: str = option("auto", "sgd (Nesterov), adamw or rmsprop; auto: the model's own "
                            "(adamw for MobileNetV5, sgd for the others)",
                            choices=_OPTIMIZER_CHOICES)
    lr: float | None = option(None, "peak learning rate (default: 0.1 x batch/256 for sgd, "
                              "2e-3 x batch/256 for adamw, 0.016 x batch/256 for rmsprop)")
    momentum: float = option(0.9, "optimizer momentum")
    weight_decay: float | None = option(None, "not applied to norm/bias (default 1e-4 sgd, "
                                        "0.05 adamw, 4e-5 rmsprop)")
    warmup_epochs: float = option(3.0, "linear warmup length (capped at the run's length), "
                                  "then cosine decay to zero")
    label_smoothing: float = option(0.1, "label smoothing of the cross-entropy loss")
    grad_clip: float | None = option(None, "clip the global gradient norm to this value "
                                     "(default off)", metavar="NORM")
    crop: str = option("resized", "augmentation crop: resized (random-resized crop), pad "
                       "(pad 4 + crop) or none", choices=CROPS)
    flip: bool = option(True, "random horizontal flips", negative_help="no random horizontal "
                        "flips")
    precision: str = option("auto", "auto: bf16 autocast on CUDA (fp16+scaler without bf16) "
                            "and on CPUs with AVX-512-BF16/AMX, else fp32", choices=PRECISIONS)
    channels_last: bool = option(True, "channels_last memory format",
                                 negative_help="keep NCHW memory format")
    compile: bool = option(False, "torch.compile the model")
    device: str = option("auto", DEVICE_CHOICES)
    seed: int = option(0, "seed of the initialization, data order and augmentation")
    eval_batch_size: int = option(512, "batch size of the per-epoch evaluation")
    cache_dir: str | None = option(None, "decoded-image cache (default "
                                   "<data>/.mobilecnn_cache)", metavar="DIR")
    skip_bad: bool = option(False, "leave unreadable images out of the decoded cache (counted "
                            "and reported) instead of stopping")
    image_size: int | None = option(None, "resize every image to this square size when "
                                    "decoding (default: keep the data's size, which must be "
                                    "uniform)", metavar="PIXELS")
    skip_nonfinite: bool = option(False, "skip an optimizer step whose loss is NaN/inf "
                                  "(counted in metrics.jsonl) instead of stopping the run")
    progress: bool | None = option(None, "progress bars even when stderr is not a terminal "
                                   "(default: only on a terminal)",
                                   negative_help="no progress bars")
    recipe: str | None = option(None, "named recipe (docs/training.md#named-recipes); it fills "
                                "in the options not given, see --print-config",
                                choices=_recipe_names, check=_check_recipe)
    ema: bool = option(False, "keep an exponential moving average (EMA) of the weights and "
                       "BatchNorm buffers, evaluated each epoch and saved in checkpoints")
    ema_decay: float = option(0.9998, "EMA decay per step, reached after a warmup ramp "
                              "(timm ModelEmaV3)", metavar="DECAY", check=_check_decay)
    ema_for_best: bool = option(True, "with --ema, choose best.pt by the EMA's val top-1 and "
                                "store the EMA weights as its model (what eval, predict and "
                                "export load)", negative_help="with --ema, choose best.pt by "
                                "the raw model and keep the raw weights in it")
    recalibrate_bn: bool | None = option(
        None, "recompute the BatchNorm running statistics over training images (no "
        "augmentation) before every evaluation and checkpoint (default: when the run has fewer "
        "than 100/momentum steps: 10,000 for MobileNetV3, 1,000 for the others)",
        negative_help="keep the running statistics as training left them",
        check=_check_optional_bool)
    bn_calibration_images: int = option(1024, "training images the BatchNorm statistics are "
                                        "recomputed over (see --recalibrate-bn)", metavar="N")
    mixup_alpha: float = option(0.0, "Mixup: Beta(alpha, alpha) weight of each image pair "
                                "(0 = off)", metavar="ALPHA", check=_check_alpha)
    cutmix_alpha: float = option(0.0, "CutMix: Beta(alpha, alpha) share of the pasted box "
                                 "(0 = off)", metavar="ALPHA", check=_check_alpha)
    mix_prob: float = option(1.0, "with Mixup/CutMix on, probability that a batch is mixed",
                             metavar="P", check=_check_unit)
    mix_switch_prob: float = option(0.5, "with both alphas > 0, probability that a batch uses "
                                    "CutMix instead of Mixup", metavar="P", check=_check_unit)
    auto_augment: str = option("none", "per-image augmentation policy, run on the batch on "
                               "the device", choices=AUTO_AUGMENTS)
    randaugment_ops: int = option(2, "RandAugment: operations per image")
    randaugment_magnitude: int = option(9, "RandAugment: magnitude bin, 0..30",
                                        check=_check_magnitude)
    random_erasing: float = option(0.0, "probability of erasing one random rectangle per "
                                   "image (0 = off)", metavar="P", check=_check_unit)
    teacher: str | None = option(None, "distill from this teacher: a mobilecnn checkpoint, "
                                 "torchvision:ARCH:PATH or timm:ARCH:PATH (a state_dict on "
                                 "disk)", metavar="SPEC", check=_check_spec)
    distill_alpha: float = option(0.5, "weight of the distillation term (the label loss gets "
                                  "1 - alpha)", metavar="ALPHA", check=_check_unit)
    distill_temperature: float = option(4.0, "temperature that softens teacher and student "
                                        "logits", metavar="T")
    init: str | None = option(None, "start from these weights: torchvision:PATH.pth "
                              "(ImageNet mobilenet_v2, backbone only) or a mobilecnn "
                              "checkpoint", metavar="SPEC", check=_check_spec)
    freeze_backbone: bool = option(False, "train only the classifier (use with --init)")
    layer_lr_decay: float = option(1.0, "layer-wise lr decay: each block below the "
                                   "classifier gets this factor less lr (1 = off)",
                                   metavar="FACTOR", check=_check_lr_decay)
    qat: bool = option(False, "quantization-aware fine-tuning (with --init CHECKPOINT): train "
                       "with fake int8 quantization (BatchNorm folded), then write "
                       "model_int8.onnx (needs mobilecnn[onnx])")
    demo_classes: int = option(10, "classes of the generated demo data", cli=False)
    demo_train_per_class: int = option(300, "demo training images per class", cli=False)
    demo_val_per_class: int = option(50, "demo validation images per class", cli=False)

    def __post_init__(self) -> None:
        if self.optimizer == "auto" and isinstance(self.model, str):
            self.optimizer = default_optimizer(self.model)
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad field, its value and what is accepted."""
        for item in dataclasses.fields(self):
            check_field(item.name, getattr(self, item.name))

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
        """Build from :meth:`to_dict` output; unknown keys are an error naming them.

        Keys that older versions wrote and that no longer mean anything (the 0.1 test hook
        ``interrupt_after_steps``) are dropped, as is a run's config.json marker
        (``"format": "mobilecnn-run"``).
        """
        known = {field.name for field in dataclasses.fields(cls)}
        values = {key: value for key, value in values.items() if key not in RETIRED_FIELDS
                  and (key, value) != ("format", "mobilecnn-run")}  # a run's config.json
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


RETIRED_FIELDS = frozenset({"interrupt_after_steps"})
"""Fields of older configs (saved in checkpoints) that are ignored when read back."""


def _positive(name: str, value: Any, integer: bool) -> None:
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not value > 0 or not math.isfinite(value):
        kind = "a positive integer" if integer else "a positive number (finite)"
        raise ValueError(f"{name} must be {kind}, got {value!r}")


def _number_in(name: str, value: Any, low: float, high: float, text: str) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not low <= value < high:
        raise ValueError(f"{name} must be {text}, got {value!r}")


def _choice(name: str, value: Any, options: tuple[Any, ...]) -> None:
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(str, options))}; got {value!r}")


_CHOICES = {"optimizer": _OPTIMIZER_CHOICES, "precision": PRECISIONS, "crop": CROPS,
            "auto_augment": AUTO_AUGMENTS}


def check_field(name: str, value: Any) -> None:
    """Raise ``ValueError`` if ``value`` is not acceptable for the field ``name``.

    The one place the rules live: :meth:`TrainConfig.validate` and the command line's option
    parsers both call it.
    """
    from ..models import MODELS

    custom = _FIELD_METADATA.get(name, {}).get("check")
    if custom is not None:
        custom(name, value)
        return
    if name in ("epochs", "batch_size", "eval_batch_size", "demo_classes",
                "demo_train_per_class", "demo_val_per_class", "randaugment_ops",
                "bn_calibration_images"):
        _positive(name, value, integer=True)
    elif name in ("width", "momentum", "distill_temperature"):
        _positive(name, value, integer=False)
        if name == "width":
            check_size(name, value, WIDTH)
    elif name in ("lr", "grad_clip"):
        if value is not None:
            _positive(name, value, integer=False)
    elif name == "image_size":
        if value is not None:
            _positive(name, value, integer=True)
            check_size(name, value, IMAGE_SIZE)
    elif name == "seed":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"seed must be an integer >= 0, got {value!r}")
    elif name == "weight_decay":
        if value is not None:
            _number_in(name, value, 0.0, math.inf, "a number >= 0 (finite)")
    elif name == "warmup_epochs":
        _number_in(name, value, 0.0, math.inf, "a number >= 0 (finite)")
    elif name in ("label_smoothing", "dropout"):
        _number_in(name, value, 0.0, 1.0, "in [0, 1)")
    elif name == "total_stride":
        if value not in (8, 16, 32) or isinstance(value, bool):
            raise ValueError(f"total_stride must be 8, 16 or 32 (16 for 64x64 inputs), got "
                             f"{value!r}")
    elif name == "model":
        if value not in MODELS:
            raise ValueError(f"model must be one of {', '.join(sorted(MODELS))}; got {value!r}")
    elif name in _CHOICES:
        _choice(name, value, _CHOICES[name])
    elif name == "data":
        if not isinstance(value, str) or not value:
            raise ValueError("data must be a TinyImageNet folder or 'demo'")
    elif name == "device":
        check_device_name(value)
    elif name in ("out_dir", "cache_dir"):
        if value is not None and (not isinstance(value, str | os.PathLike)
                                  or not str(value).strip()):
            raise ValueError(f"{name} must be a folder path, got {value!r}; pass a folder "
                             "name (\".\" for the current folder)")
    elif name in ("flip", "channels_last", "compile", "skip_bad", "skip_nonfinite", "ema",
                  "ema_for_best", "freeze_backbone", "qat") and not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")


_FIELD_METADATA: dict[str, Any] = {
    item.name: item.metadata for item in dataclasses.fields(TrainConfig)}
_FIELD_DEFAULTS: dict[str, Any] = {
    item.name: item.default for item in dataclasses.fields(TrainConfig)}

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


def with_recipe(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with the settings of their ``recipe`` (if any) filled in where not given: the
    one merge rule, used by :func:`recipe_config` and the command line (explicit values win)."""
    name = values.get("recipe")
    if name is None:
        return dict(values)
    return {**get_recipe(name).settings, **values}


def recipe_config(name: str, base: Mapping[str, Any] | None = None, *,
                  train_images: int | None = None, **options: Any) -> TrainConfig:
    """A :class:`~mobilecnn.train.TrainConfig` of the recipe ``name``: ``base`` values (e.g.
    a demo config's), then the recipe's settings, then ``options``; ``recipe`` records the
    name. The EMA decay and warmup not given in ``options`` are scaled to the run
    (:func:`fit_recipe_config`; ``train_images`` defaults to counting ``data``'s), with a
    one-line ``UserWarning`` when the run is far shorter or smaller than the recipe's design."""
    values = {**(base or {}), **with_recipe({**options, "recipe": name})}
    config, note = fit_recipe_config(TrainConfig(**values), options, train_images)
    if note is not None:
        warnings.warn(note, stacklevel=2)
    return config


def fit_recipe_config(config: TrainConfig, given: Collection[str],
                      train_images: int | None = None) -> tuple[TrainConfig, str | None]:
    """``config`` with its recipe's run-dependent values (EMA decay, warmup) scaled to its
    epochs, batch size and ``train_images`` (default: counted from ``config.data``), except
    the fields in ``given``; and the note of :func:`~mobilecnn.train.recipes.fit_to_run`.
    The warmup scaled is the recipe's own (its setting, else the default 3 epochs)."""
    if config.recipe is None:
        return config, None
    if train_images is None:
        train_images = count_training_images(
            config.data, config.demo_classes * config.demo_train_per_class)
    recipe = get_recipe(config.recipe)
    designed_warmup = recipe.settings.get("warmup_epochs", _FIELD_DEFAULTS["warmup_epochs"])
    fit = fit_to_run(recipe, epochs=config.epochs, batch_size=config.batch_size,
                     train_images=train_images, warmup_epochs=designed_warmup,
                     ema_decay=config.ema_decay, given=frozenset(given))
    return config.replace(**fit.changes), fit.note
