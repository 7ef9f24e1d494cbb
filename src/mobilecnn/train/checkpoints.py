"""The checkpoint schema: one dataclass, written atomically, read the same way everywhere.

A checkpoint is a ``torch.save`` file holding the dict :meth:`Checkpoint.to_dict` makes::

    {"format": "mobilecnn-checkpoint", "format_version": 1, "mobilecnn_version": "0.2.0",
     "model_name": "mobilenet_v2", "model_kwargs": {...}, "model": state_dict,
     "classes": [...], "class_names": [...], "image_size": 64, "mean": [...], "std": [...],
     "epoch": completed_epochs, "step_in_epoch": 0, "global_step": ..., "ema_state": None, ...}

Training checkpoints add optimizer, scheduler, scaler, RNG states, the config, the planned
``schedule``, the ``resumes`` record and the metric history. Every entry after ``epoch`` is
optional, so 0.1.0 checkpoints read unchanged (missing entries get the documented defaults) and
0.1.0 can read these. Files load with ``weights_only=True``: no code from the file is executed.

Integrity: :meth:`Checkpoint.save` adds ``tensor_crc32``, a CRC-32 of every tensor in the file
(its place, dtype, shape and bytes); :meth:`Checkpoint.read` verifies it, so a changed bit in
the weights or the training state is a :class:`CheckpointError` naming the file. Files without
it (mobilecnn 0.2.0 and earlier) load as before. Weights with NaN or infinite values are refused
when a model is built from them, unless ``allow_nonfinite=True`` (``--allow-nonfinite``).
Train, eval, predict and export all read through :meth:`Checkpoint.read` (``load_checkpoint``
and ``load_model`` are thin wrappers).
"""

from __future__ import annotations

import ctypes
import dataclasses
import math
import os
import pickle
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..data.augment import TINYIMAGENET_MEAN, TINYIMAGENET_STD
from ..fileio import atomic_write, clean_stale_temps
from ..limits import IMAGE_SIZE, NUM_CLASSES, WIDTH, check_size
from ..models import MobileNetBase, create_model

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_FORMAT_VERSION",
    "Checkpoint",
    "CheckpointError",
    "load_checkpoint",
    "load_model",
    "save_checkpoint",
    "tensor_checksum",
]

CHECKPOINT_FORMAT = "mobilecnn-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1
"""Raised only when an older reader would misread a file; new optional entries keep it."""
REQUIRED_KEYS = ("model_name", "model_kwargs", "model", "classes", "class_names", "epoch")
CHECKSUM_KEY = "tensor_crc32"
"""The entry holding :func:`tensor_checksum` of everything else in the file."""
_NOT_FIELDS = ("format", "format_version", CHECKSUM_KEY)


class CheckpointError(ValueError):
    """A checkpoint file that is missing, truncated, foreign or incompatible."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"checkpoint {self.path}: {problem}")


@dataclass
class Checkpoint:
    """Everything a checkpoint holds; :meth:`read` and :meth:`save` are the only file I/O.

    The first block describes the model (enough for eval, predict and export); the second is
    the training state, None in a weights-only checkpoint. ``ema_state`` is an optional second
    state_dict (exponential moving average of the weights) saved beside ``model``.
    ``schedule`` records the learning-rate plan (``steps_per_epoch``, ``total_steps``,
    ``warmup_steps``, ``peak_lr``, ``weight_decay``, ``momentum``) that ``scheduler`` follows;
    ``resumes`` lists, per resume that changed options, the step and ``{option: [old, new]}``.
    """

    model_name: str
    model_kwargs: dict[str, Any]
    model: dict[str, torch.Tensor]
    classes: list[str]
    class_names: list[str]
    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    image_size: int | None = None
    mean: list[float] = field(default_factory=lambda: list(TINYIMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(TINYIMAGENET_STD))
    ema_state: dict[str, torch.Tensor] | None = None
    config: dict[str, Any] | None = None
    optimizer: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None
    scaler: dict[str, Any] | None = None
    rng: dict[str, Any] | None = None
    partial_train: torch.Tensor | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    best_val_top1: float = -math.inf
    world_size: int = 1
    schedule: dict[str, Any] | None = None
    resumes: list[dict[str, Any]] = field(default_factory=list)
    mobilecnn_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    """Entries this version does not know (from a newer minor version): kept on save."""

    # ------------------------------------------------------------------ conversion

    def to_dict(self) -> dict[str, Any]:
        """The dict written to disk (``format``/``format_version`` first, ``extra`` merged)."""
        from ..version import __version__

        values = {item.name: getattr(self, item.name) for item in dataclasses.fields(self)
                  if item.name != "extra"}
        values["mobilecnn_version"] = self.mobilecnn_version or __version__
        return {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_FORMAT_VERSION,
                **values, **self.extra}

    @classmethod
    def from_dict(cls, values: dict[str, Any], path: str | os.PathLike[str] = "<memory>"
                  ) -> Checkpoint:
        """Check and convert a loaded dict; any problem is a :class:`CheckpointError`."""
        if not isinstance(values, dict) or values.get("format", CHECKPOINT_FORMAT) != (
                CHECKPOINT_FORMAT):
            raise CheckpointError(
                path,
                "is not a mobilecnn checkpoint (no 'format': 'mobilecnn-checkpoint' entry); "
                "for a bare state_dict build the model and call load_state_dict yourself",
            )
        missing = [key for key in REQUIRED_KEYS if key not in values]
        if missing:
            raise CheckpointError(path, f"lacks the entries {', '.join(missing)}")
        known = {item.name for item in dataclasses.fields(cls)} - {"extra"}
        given = {key: value for key, value in values.items() if key in known}
        extra = {key: value for key, value in values.items()
                 if key not in known and key not in _NOT_FIELDS}
        if given.get("best_val_top1") is None:
            given.pop("best_val_top1", None)
        for key in ("mean", "std", "history", "resumes"):
            if given.get(key) is None:
                given.pop(key, None)
        checkpoint = cls(**given, extra=extra)
        checkpoint._check(path)
        if "global_step" not in values:  # 0.1.0: the scheduler counted the optimizer steps
            last = (checkpoint.scheduler or {}).get("last_epoch")
            checkpoint.global_step = int(last) if isinstance(last, int) and last > 0 else 0
        return checkpoint

    def _check(self, path: str | os.PathLike[str]) -> None:
        def bad(what: str) -> CheckpointError:
            return CheckpointError(path, f"has a malformed entry: {what}")

        if not isinstance(self.model_name, str) or not isinstance(self.model_kwargs, dict):
            raise bad("model_name/model_kwargs")
        if not isinstance(self.model, dict):
            raise bad("model (not a state_dict)")
        if not (isinstance(self.classes, list | tuple) and isinstance(self.class_names,
                                                                      list | tuple)
                and len(self.classes) == len(self.class_names)):
            raise bad("classes/class_names")
        self.classes, self.class_names = list(self.classes), list(self.class_names)
        for name in ("epoch", "step_in_epoch", "global_step", "world_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise bad(f"{name}={value!r}")
        sizes = [("image_size", self.image_size, IMAGE_SIZE)] if self.image_size is not None else []
        sizes += [(key, self.model_kwargs[key], limit) for key, limit in
                  (("width_mult", WIDTH), ("num_classes", NUM_CLASSES)) if key in self.model_kwargs]
        for name, value, limit in sizes:  # bounded before anything is allocated
            try:
                check_size(name, value, limit, fix="the file is damaged or not from mobilecnn")
            except ValueError as error:
                raise bad(str(error)) from None
        for name in ("mean", "std"):
            value = getattr(self, name)
            if not (isinstance(value, list | tuple) and len(value) == 3
                    and all(isinstance(v, int | float) and math.isfinite(v) for v in value)):
                raise bad(f"{name}={value!r}")
            setattr(self, name, [float(v) for v in value])
        if min(self.std) <= 0:
            raise bad(f"std={self.std!r}")

    # ------------------------------------------------------------------ files

    @classmethod
    def read(cls, path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
             ) -> Checkpoint:
        """Read and check a checkpoint file; every problem is a :class:`CheckpointError`."""
        path = Path(path)
        if not path.exists():
            raise CheckpointError(path, "no such file")
        if path.is_dir():
            raise CheckpointError(path, "is a folder; pass the .pt file (e.g. last.pt or best.pt)")
        try:
            size = path.stat().st_size
        except OSError as error:
            raise CheckpointError(path, f"cannot be read: {error.strerror or error}") from None
        if size == 0:
            raise CheckpointError(path, "is empty (0 bytes); the write was probably interrupted")
        try:
            values = torch.load(path, map_location=map_location, weights_only=True)
        except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, pickle.UnpicklingError,
                ValueError, KeyError, AttributeError, IndexError, TypeError) as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise CheckpointError(
                path,
                "cannot be read: it is truncated, corrupted or not a torch checkpoint "
                f"({type(error).__name__}: {first_line[:200]})",
            ) from None
        if isinstance(values, dict) and values.get("format") == CHECKPOINT_FORMAT:
            version = values.get("format_version")
            if not isinstance(version, int) or version > CHECKPOINT_FORMAT_VERSION:
                raise CheckpointError(
                    path,
                    f"has format_version {version!r}, this mobilecnn reads up to "
                    f"{CHECKPOINT_FORMAT_VERSION}; upgrade mobilecnn",
                )
        elif isinstance(values, dict):
            values = {**values, "format": None}  # a dict without our marker: foreign
        if isinstance(values, dict) and CHECKSUM_KEY in values:
            stored = values[CHECKSUM_KEY]
            if stored != tensor_checksum({k: v for k, v in values.items() if k != CHECKSUM_KEY}):
                raise CheckpointError(
                    path, "is damaged: its tensors do not match their checksum (a changed bit "
                    "in the weights or training state); use another copy or an earlier "
                    "checkpoint (best.pt, last.pt)")
        return cls.from_dict(values, path)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically (temp file in the same folder, fsync, rename); returns ``path``.

        Temporary files that dead processes left in the folder are removed first.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_temps(path.parent)
        values = self.to_dict()
        values[CHECKSUM_KEY] = tensor_checksum(values)
        with atomic_write(path, "wb") as handle:
            torch.save(values, handle)
        return path

    # ------------------------------------------------------------------ use

    @property
    def resumable(self) -> bool:
        """True if the training state (optimizer, scheduler, RNG, config) is present."""
        return all(value is not None for value in (self.optimizer, self.scheduler, self.rng,
                                                   self.config))

    def build_model(self, path: str | os.PathLike[str] = "<memory>", *, ema: bool = False,
                    allow_nonfinite: bool = False) -> MobileNetBase:
        """The architecture with its weights (``ema=True``: the EMA weights), training mode.

        Weights with NaN or infinite values are a :class:`CheckpointError` unless
        ``allow_nonfinite``: such a model only predicts NaN."""
        try:
            model = create_model(self.model_name, **self.model_kwargs)
        except (TypeError, ValueError, KeyError) as error:
            raise CheckpointError(path, f"describes a model this mobilecnn cannot build: "
                                  f"{error}") from None
        state = self.ema_state if ema else self.model
        if state is None:
            raise CheckpointError(path, "holds no EMA weights (the run did not use EMA)")
        if not allow_nonfinite:
            _check_finite(state, path)
        try:
            model.load_state_dict(state)
        except (RuntimeError, KeyError, TypeError) as error:
            detail = " ".join(str(error).split())[:300]
            raise CheckpointError(path, f"weights do not fit {self.model_name}: {detail}") \
                from None
        return model


def _tensor_bytes(tensor: torch.Tensor) -> tuple[Any, torch.Tensor]:
    """A zero-copy buffer over the bytes of ``tensor`` on the CPU, and the tensor to keep
    alive while it is used."""
    data = tensor.detach()
    if data.is_quantized:
        data = data.int_repr()
    if data.layout != torch.strided:
        data = data.to_dense()
    data = data.cpu().contiguous()
    size = data.numel() * data.element_size()
    if size == 0:
        return b"", data
    return (ctypes.c_char * size).from_address(data.data_ptr()), data


def _crc_of(value: Any, place: str, crc: int) -> int:
    if isinstance(value, torch.Tensor):
        crc = zlib.crc32(f"{place}|{value.dtype}|{tuple(value.shape)}".encode(), crc)
        buffer, _alive = _tensor_bytes(value)
        return zlib.crc32(buffer, crc)
    if isinstance(value, dict):
        for key in sorted(value, key=repr):
            crc = _crc_of(value[key], f"{place}/{key!r}", crc)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            crc = _crc_of(item, f"{place}/{index}", crc)
    return crc


def tensor_checksum(values: Any) -> int:
    """CRC-32 of every tensor in ``values`` (nested dicts, lists and tuples): each tensor's
    place, dtype, shape and bytes. What ``tensor_crc32`` in a checkpoint holds."""
    return _crc_of(values, "", 0)


def _check_finite(state: dict[str, Any], path: str | os.PathLike[str]) -> None:
    bad = [name for name, tensor in state.items()
           if isinstance(tensor, torch.Tensor) and tensor.is_floating_point()
           and not bool(torch.isfinite(tensor).all())]
    if bad:
        shown = ", ".join(bad[:3]) + (", ..." if len(bad) > 3 else "")
        raise CheckpointError(
            path, f"has NaN or infinite weights in {len(bad)} tensor(s) ({shown}): the run "
            "diverged before it was saved, so every prediction would be NaN; use an earlier "
            "checkpoint (to load this one anyway: --allow-nonfinite on eval, predict and "
            "export, allow_nonfinite=True in Python)")


def save_checkpoint(checkpoint: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``checkpoint`` (a dict of :class:`Checkpoint` entries) to ``path`` atomically.

    The data goes to a temporary file in the same folder, is flushed and fsync'ed, then
    renamed over ``path`` with ``os.replace``: a crash leaves either the old file or the new
    one, never a truncated one.
    """
    missing = [key for key in REQUIRED_KEYS if key not in checkpoint]
    if missing:
        raise ValueError(f"a checkpoint needs the keys {', '.join(missing)}")
    return Checkpoint.from_dict({**checkpoint, "format": CHECKPOINT_FORMAT}, path).save(path)


def load_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Read and check a checkpoint; every problem is a :class:`CheckpointError`.

    Returns :meth:`Checkpoint.to_dict`: entries a 0.1.0 file lacks are filled in.
    """
    return Checkpoint.read(path, map_location).to_dict()


def build_model_from_checkpoint(
    checkpoint: dict[str, Any] | Checkpoint, path: str | os.PathLike[str]
) -> MobileNetBase:
    """The checkpoint's architecture with its weights loaded (training mode)."""
    if not isinstance(checkpoint, Checkpoint):
        checkpoint = Checkpoint.from_dict(checkpoint, path)
    return checkpoint.build_model(path)


def load_model(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu", *,
    allow_nonfinite: bool = False,
) -> tuple[MobileNetBase, dict[str, Any]]:
    """Load a checkpoint's model in eval mode; returns ``(model, checkpoint_dict)``.

    The one loader for eval, predict and export: the dict always has ``image_size`` (None if
    unknown), ``mean``, ``std``, ``classes`` and ``class_names``. NaN or infinite weights are a
    :class:`CheckpointError` unless ``allow_nonfinite``.
    """
    checkpoint = Checkpoint.read(path, map_location=map_location)
    model = checkpoint.build_model(path, allow_nonfinite=allow_nonfinite)
    model.to(map_location)
    model.eval()
    return model, checkpoint.to_dict()
