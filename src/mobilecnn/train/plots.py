"""PNG plots of the training curves (matplotlib, imported only here)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..fileio import atomic_path

__all__ = ["plot_history"]


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError(
            'plotting needs matplotlib: pip install "mobilecnn[plot]"'
        ) from error
    return plt


def plot_history(history: Sequence[dict[str, Any]], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write ``loss.png`` and ``accuracy.png`` (train vs val per epoch) into ``out_dir``.

    ``history`` is the list of per-epoch rows of ``metrics.jsonl``.
    """
    if not history:
        raise ValueError("no epochs to plot: the history is empty")
    plt = _pyplot()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    epochs = [row["epoch"] for row in history]
    written: list[Path] = []
    panels = (
        ("loss.png", "Loss", [("train_loss", "train"), ("val_loss", "val")]),
        ("accuracy.png", "Top-1 accuracy (%)",
         [("train_acc", "train"), ("val_top1", "val top-1"), ("val_top5", "val top-5")]),
    )
    for filename, ylabel, series in panels:
        figure, axes = plt.subplots(figsize=(6, 4), dpi=100)
        for key, label in series:
            if any(row.get(key) is None for row in history):
                continue
            scale = 100.0 if filename == "accuracy.png" else 1.0
            axes.plot(epochs, [scale * float(row[key]) for row in history], marker="o",
                      markersize=3, label=label)
        axes.set_xlabel("epoch")
        axes.set_ylabel(ylabel)
        axes.grid(alpha=0.3)
        axes.legend()
        figure.tight_layout()
        path = out / filename
        with atomic_path(path) as temporary:
            figure.savefig(temporary, format="png")
        plt.close(figure)
        written.append(path)
    return written
