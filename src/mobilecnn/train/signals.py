"""SIGINT/SIGTERM during training: finish the step, save, stop; and the test hooks."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["StopFlag", "TrainHooks"]


class StopFlag:
    """Set by SIGINT/SIGTERM; the loop checks it after every step."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: object) -> None:
        if self.requested:  # a second Ctrl-C: give up on the graceful path
            raise KeyboardInterrupt
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        print(f"\n{self.signal_name} received: finishing this step, then saving a checkpoint "
              "(press Ctrl-C again to abort without saving)", file=sys.stderr, flush=True)

    def install(self) -> None:
        """Take over SIGINT/SIGTERM (main thread only; elsewhere signals stay as they are)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handler)

    def restore(self) -> None:
        """Put the previous handlers back."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


@dataclass
class TrainHooks:
    """Test hooks, passed as ``train(..., _hooks=TrainHooks(...))``; not part of a run's config.

    ``interrupt_after_steps``: behave as if SIGINT arrived after this many optimizer steps of
    this run. ``after_step(step_index, train_step)``: called after every step (e.g. to inject a
    fault).
    """

    interrupt_after_steps: int | None = None
    after_step: Callable[[int, Any], None] | None = None
