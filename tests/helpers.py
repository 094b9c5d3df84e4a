"""Small helpers shared by tests (import as ``from helpers import ...``; tests/ is on sys.path)."""

from __future__ import annotations


class StopAt:
    """A trainer callback that requests a stop once the trainer reaches ``step``, as SIGTERM
    does: the trainer writes a checkpoint and raises ``Interrupted``."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, tr) -> None:
        if tr.step == self.step:
            tr.stop_requested = True
