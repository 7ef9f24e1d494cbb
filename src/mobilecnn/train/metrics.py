"""Accuracy over a whole split (counts, not averages of batch averages) and the metrics log."""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..fileio import atomic_write, write_text_atomic

__all__ = [
    "MetricLog",
    "SplitMetrics",
    "read_metrics",
    "strict_json",
    "topk_correct",
    "write_per_class_csv",
]


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(item) for item in value]
    return value


def strict_json(value: Any, **dumps_kwargs: Any) -> str:
    """``json.dumps`` that writes NaN/inf as ``null``: the output is valid JSON (RFC 8259)."""
    return json.dumps(_finite_or_none(value), allow_nan=False, **dumps_kwargs)


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks: Sequence[int]) -> list[int]:
    """Number of rows whose label is among the ``k`` highest logits, for each ``k``."""
    max_k = min(max(ks), logits.shape[1])
    top = logits.topk(max_k, dim=1).indices
    hits = top.eq(labels.unsqueeze(1))
    return [int(hits[:, : min(k, max_k)].any(dim=1).sum()) for k in ks]


@dataclass
class SplitMetrics:
    """Sums over a split; accuracies are computed from counts at the end.

    ``add`` is called per batch; :meth:`all_reduce` sums the counts of every DDP process, so
    the figures cover the whole split exactly once.
    """

    num_classes: int
    loss_sum: float = 0.0
    count: int = 0
    top1: int = 0
    top5: int = 0
    class_correct: torch.Tensor = field(init=False)
    class_total: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.class_correct = torch.zeros(self.num_classes, dtype=torch.int64)
        self.class_total = torch.zeros(self.num_classes, dtype=torch.int64)

    def add(self, logits: torch.Tensor, labels: torch.Tensor, loss_sum: float) -> None:
        """Add one batch: its logits, labels and the *sum* of its per-sample losses."""
        top1, top5 = topk_correct(logits, labels, (1, 5))
        self.loss_sum += float(loss_sum)
        self.count += int(labels.numel())
        self.top1 += top1
        self.top5 += top5
        correct = logits.argmax(dim=1).eq(labels).to(torch.int64).cpu()
        labels_cpu = labels.cpu()
        self.class_total += torch.bincount(labels_cpu, minlength=self.num_classes)
        self.class_correct += torch.bincount(labels_cpu, weights=correct, minlength=self.num_classes
                                             ).to(torch.int64)

    def all_reduce(self, device: torch.device) -> None:
        """Sum the counts over all processes (no-op without torch.distributed)."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return
        scalars = torch.tensor([self.loss_sum, self.count, self.top1, self.top5],
                               dtype=torch.float64, device=device)
        dist.all_reduce(scalars)
        self.loss_sum = float(scalars[0])
        self.count, self.top1, self.top5 = (int(round(float(v))) for v in scalars[1:])
        classes = torch.stack([self.class_correct, self.class_total]).to(device)
        dist.all_reduce(classes)
        self.class_correct, self.class_total = classes.cpu().unbind(0)

    @property
    def loss(self) -> float:
        return self.loss_sum / self.count if self.count else math.nan

    @property
    def top1_acc(self) -> float:
        return self.top1 / self.count if self.count else math.nan

    @property
    def top5_acc(self) -> float:
        return self.top5 / self.count if self.count else math.nan

    def per_class_accuracy(self) -> list[float]:
        """Top-1 accuracy of each class (NaN for a class with no samples)."""
        pairs = zip(self.class_correct.tolist(), self.class_total.tolist(), strict=True)
        return [c / t if t else math.nan for c, t in pairs]

    def state_dict(self) -> dict[str, Any]:
        """The running sums, for a mid-epoch checkpoint."""
        return {"loss_sum": self.loss_sum, "count": self.count, "top1": self.top1,
                "top5": self.top5, "class_correct": self.class_correct.clone(),
                "class_total": self.class_total.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the running sums saved by :meth:`state_dict`."""
        self.loss_sum = float(state["loss_sum"])
        self.count = int(state["count"])
        self.top1, self.top5 = int(state["top1"]), int(state["top5"])
        self.class_correct = state["class_correct"].clone().cpu()
        self.class_total = state["class_total"].clone().cpu()


class MetricLog:
    """``metrics.jsonl``: one strict-JSON object per epoch (NaN/inf written as ``null``).

    Every change replaces the whole (small) file atomically, so a kill or a full disk leaves
    the previous complete file, never half a line.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def append(self, row: dict[str, Any]) -> None:
        """Add one row."""
        existing = self.path.read_text(encoding="utf-8") if self.path.exists() else ""
        if existing and not existing.endswith("\n"):
            existing += "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.path, existing + strict_json(row, sort_keys=True) + "\n")

    def rewrite(self, rows: Sequence[dict[str, Any]]) -> None:
        """Replace the file by ``rows`` (on resume: drop epochs logged after the checkpoint)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.path, "".join(strict_json(row, sort_keys=True) + "\n"
                                             for row in rows))


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows of a ``metrics.jsonl`` file."""
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_per_class_csv(
    path: str | os.PathLike[str],
    metrics: SplitMetrics,
    classes: Sequence[str],
    class_names: Sequence[str],
) -> Path:
    """CSV with ``class_index, class_id, class_name, correct, total, accuracy``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    accuracies = metrics.per_class_accuracy()
    with atomic_write(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["class_index", "class_id", "class_name", "correct", "total", "accuracy"])
        for index, (correct, total) in enumerate(
            zip(metrics.class_correct.tolist(), metrics.class_total.tolist(), strict=True)
        ):
            writer.writerow([index, classes[index], class_names[index], correct, total,
                             f"{accuracies[index]:.6f}"])
    return path
