"""Checkpoints: atomic writes, loads that fail with a clear :class:`CheckpointError`.

A checkpoint is a ``torch.save`` file holding a dict::

    {"format": "mobilecnn-checkpoint", "format_version": 1, "mobilecnn_version": "0.1.0",
     "model_name": "mobilenet_v2", "model_kwargs": {...}, "model": state_dict,
     "classes": [...], "class_names": [...], "epoch": completed_epochs, ...}

Training checkpoints add optimizer, scheduler, scaler, RNG states, the config and the
metric history. It loads with ``weights_only=True``: no code from the file is executed.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..models import MobileNetBase, create_model

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_FORMAT_VERSION",
    "CheckpointError",
    "load_checkpoint",
    "load_model",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = "mobilecnn-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1
REQUIRED_KEYS = ("model_name", "model_kwargs", "model", "classes", "class_names", "epoch")


class CheckpointError(ValueError):
    """A checkpoint file that is missing, truncated, foreign or incompatible."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"checkpoint {self.path}: {problem}")


def save_checkpoint(checkpoint: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``checkpoint`` to ``path`` atomically.

    The data goes to a temporary file in the same folder, is flushed and fsync'ed, then
    renamed over ``path`` with ``os.replace``: a crash leaves either the old file or the new
    one, never a truncated one.
    """
    from .. import __version__

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "mobilecnn_version": __version__,
        **checkpoint,
    }
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise ValueError(f"a checkpoint needs the keys {', '.join(missing)}")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def load_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Read and check a checkpoint; every problem is a :class:`CheckpointError`."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(path, "no such file")
    if path.is_dir():
        raise CheckpointError(path, "is a folder; pass the .pt file (e.g. last.pt or best.pt)")
    if path.stat().st_size == 0:
        raise CheckpointError(path, "is empty (0 bytes); the write was probably interrupted")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, pickle.UnpicklingError,
            ValueError, KeyError, AttributeError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise CheckpointError(
            path,
            "cannot be read: it is truncated, corrupted or not a torch checkpoint "
            f"({type(error).__name__}: {first_line[:200]})",
        ) from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            path,
            "is not a mobilecnn checkpoint (no 'format': 'mobilecnn-checkpoint' entry); "
            "for a bare state_dict build the model and call load_state_dict yourself",
        )
    version = checkpoint.get("format_version")
    if not isinstance(version, int) or version > CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(
            path,
            f"has format_version {version!r}, this mobilecnn reads up to "
            f"{CHECKPOINT_FORMAT_VERSION}; upgrade mobilecnn",
        )
    missing = [key for key in REQUIRED_KEYS if key not in checkpoint]
    if missing:
        raise CheckpointError(path, f"lacks the entries {', '.join(missing)}")
    return checkpoint


def build_model_from_checkpoint(
    checkpoint: dict[str, Any], path: str | os.PathLike[str]
) -> MobileNetBase:
    """The checkpoint's architecture with its weights loaded (training mode)."""
    try:
        model = create_model(checkpoint["model_name"], **checkpoint["model_kwargs"])
    except (TypeError, ValueError) as error:
        raise CheckpointError(path, f"describes a model this mobilecnn cannot build: {error}") \
            from None
    try:
        model.load_state_dict(checkpoint["model"])
    except (RuntimeError, KeyError) as error:
        detail = " ".join(str(error).split())[:300]
        raise CheckpointError(path, f"weights do not fit {checkpoint['model_name']}: {detail}") \
            from None
    return model


def load_model(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> tuple[MobileNetBase, dict[str, Any]]:
    """Load a checkpoint's model in eval mode; returns ``(model, checkpoint_dict)``."""
    checkpoint = load_checkpoint(path, map_location=map_location)
    model = build_model_from_checkpoint(checkpoint, path)
    model.to(map_location)
    model.eval()
    return model, checkpoint
