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

__all__ = ["MetricLog", "SplitMetrics", "read_metrics", "topk_correct", "write_per_class_csv"]


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
    """Appends one JSON object per epoch to ``metrics.jsonl`` (flushed and fsync'ed)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def append(self, row: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def rewrite(self, rows: Sequence[dict[str, Any]]) -> None:
        """Replace the file by ``rows`` (on resume: drop epochs logged after the checkpoint)."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, sort_keys=True) + "\n")
        os.replace(tmp, self.path)


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
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["class_index", "class_id", "class_name", "correct", "total", "accuracy"])
        for index, (correct, total) in enumerate(
            zip(metrics.class_correct.tolist(), metrics.class_total.tolist(), strict=True)
        ):
            writer.writerow([index, classes[index], class_names[index], correct, total,
                             f"{accuracies[index]:.6f}"])
    return path
