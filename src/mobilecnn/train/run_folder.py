"""Whose folder is it: the files a run writes, how a run folder is recognized, and which
folders a run may write into.

A run folder is marked by its ``config.json``: ``{"format": "mobilecnn-run", ...}`` (folders of
mobilecnn 0.1 and 0.2, whose config.json has no ``format``, are recognized by its options). No
file's content decides where a run writes: a fresh run writes into ``--out``, a resumed one
into ``--out`` or else the folder its checkpoint file is in. Nothing of anyone else is
overwritten: a folder holding files a run would write, that are not the run's own, is refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .config import TrainConfig

__all__ = [
    "RUN_FILES",
    "RUN_FORMAT",
    "check_fresh_folder",
    "check_resume_folder",
    "is_run_config",
    "run_config_json",
    "same_folder",
]

RUN_FORMAT = "mobilecnn-run"
"""``config.json``'s ``format``: the folder holds a mobilecnn training run."""
RUN_FILES = ("last.pt", "best.pt", "config.json", "metrics.jsonl", "result.json",
             "val_per_class.csv", "loss.png", "accuracy.png", "model_int8.onnx")
"""The files a run writes into its folder."""
_CHECKPOINTS = ("last.pt", "best.pt")
_OLD_RUN_KEYS = {"model", "data", "out_dir", "epochs", "batch_size", "optimizer", "seed"}


def run_config_json(config: TrainConfig) -> str:
    """The text of a run's ``config.json``: the marker, then every option."""
    return json.dumps({"format": RUN_FORMAT, **config.to_dict()}, indent=2) + "\n"


def is_run_config(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` is a run's config.json (marked, or written by mobilecnn 0.1/0.2)."""
    try:
        values: Any = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(values, dict):
        return False
    if "format" in values:
        return values["format"] == RUN_FORMAT
    known = set(TrainConfig.__dataclass_fields__) | {"interrupt_after_steps"}
    return _OLD_RUN_KEYS <= set(values) <= known


def _present(folder: Path) -> list[str]:
    return [name for name in RUN_FILES if (folder / name).exists()]


def _names(names: list[str]) -> str:
    return ", ".join(names)


def check_fresh_folder(out_dir: Path) -> None:
    """A fresh run writes only into a folder without a run's files, or into a run folder that
    holds nothing but its config.json (a run that stopped before its first checkpoint)."""
    present = _present(out_dir)
    if "last.pt" in present:
        raise ValueError(
            f"{out_dir} already holds a run ({out_dir / 'last.pt'}); continue it with --resume "
            f"{out_dir / 'last.pt'}, or choose another --out folder (nothing was overwritten)"
        )
    if "best.pt" in present:
        raise ValueError(
            f"{out_dir} holds {out_dir / 'best.pt'} but no last.pt (an earlier run stopped "
            "before its first checkpoint, or files were moved); move best.pt away or choose "
            "another --out folder (nothing was overwritten)"
        )
    if present == ["config.json"] and is_run_config(out_dir / "config.json"):
        return
    if present:
        raise ValueError(_not_ours(out_dir, present, "a new run"))


def _not_ours(out_dir: Path, names: list[str], who: str) -> str:
    return (f"{out_dir} holds {_names(names)} but no run to continue; {who} would overwrite "
            f"them: choose another --out folder, or move them away (nothing was overwritten)")


def check_resume_folder(out_dir: Path, path: Path) -> None:
    """A resumed run writes into its checkpoint's own folder, or into a folder without a run.

    In its own folder, files that are not the run's (a config.json that is no run's, or
    outputs without a run's config.json) are refused. Elsewhere the folder must be free, as
    for a fresh run (:func:`~mobilecnn.train.resume.restore` also refuses to branch a run
    with nothing left to train).
    """
    present = _present(out_dir)
    if same_folder(out_dir, path.parent):
        has_config = "config.json" in present
        if has_config and not is_run_config(out_dir / "config.json"):
            foreign = ["config.json"]
        else:
            foreign = [] if has_config else [n for n in present if n not in _CHECKPOINTS]
        if foreign:
            raise ValueError(
                f"{out_dir} holds {_names(foreign)}, not this run's (no mobilecnn run's "
                "config.json is there); resuming here would overwrite them: move them away, or "
                "resume into an empty folder with --out DIR (nothing was overwritten)")
        return
    for name in _CHECKPOINTS:
        if name in present:
            raise ValueError(
                f"{out_dir} holds another run ({out_dir / name}); resuming {path} there would "
                f"overwrite it: pass an empty --out folder, or continue that run with --resume "
                f"{out_dir / name} (nothing was overwritten)")
    if present and not (present == ["config.json"] and is_run_config(out_dir / "config.json")):
        raise ValueError(_not_ours(out_dir, present, "resuming there"))


def same_folder(a: Path, b: Path) -> bool:
    """True if ``a`` and ``b`` are the same folder (through links too)."""
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False
