"""How a run stops early: interrupted (a checkpoint was saved) or diverged (nothing saved)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["TrainingDiverged", "TrainingInterrupted"]


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM (or the test hook) stopped training after a step; a checkpoint was saved."""

    def __init__(self, checkpoint: Path, epoch: int, step: int) -> None:
        self.checkpoint = checkpoint
        self.epoch = epoch
        self.step = step
        super().__init__(
            f"training interrupted in epoch {epoch + 1} after step {step}; checkpoint saved to "
            f"{checkpoint}; continue with --resume {checkpoint}"
        )


class TrainingDiverged(RuntimeError):
    """The loss (or the weights) became NaN/inf; nothing was saved over the good checkpoints."""

    def __init__(self, epoch: int, step: int, last_good: Path | None) -> None:
        self.epoch = epoch
        self.step = step
        self.last_good = last_good
        kept = (f"the last good checkpoint {last_good} is unchanged" if last_good is not None
                else "no checkpoint was written")
        super().__init__(
            f"training diverged: the loss became NaN or infinite in epoch {epoch + 1} (by step "
            f"{step}); {kept}; lower --lr, set --grad-clip, use --precision fp32, or pass "
            "--skip-nonfinite to skip such steps"
        )
