"""Divergence of a training run: ``FiniteWatch`` remembers, on the training device and without
making a step wait, the first step whose loss or gradient norm is not finite; the trainer asks
it (``check``, one host read) wherever it is about to write anything, and ``Diverged`` stops the
run there, before the write. A divergence therefore runs on for the steps until then (at most
``train.log_every`` − 1), and nothing of them is written."""

from __future__ import annotations

import torch
from torch import Tensor


class Diverged(RuntimeError):
    """A non-finite loss or gradient norm at ``step`` (found at a later step, before anything
    of it was written)."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step


class FiniteWatch:
    """The first non-finite step (0: none yet) and its loss and gradient norm, on ``device``."""

    def __init__(self, device: torch.device):
        self.bad_step = torch.zeros((), dtype=torch.long, device=device)
        self.values = torch.zeros(2, dtype=torch.float64, device=device)

    def note(self, step: int, loss: Tensor, grad_norm: Tensor) -> None:
        """Step ``step`` (0-based) had this loss and gradient norm (0-dim tensors)."""
        bad = ~(torch.isfinite(loss) & torch.isfinite(grad_norm))
        first = bad & (self.bad_step == 0)
        self.bad_step.masked_fill_(first, step + 1)
        self.values = torch.where(first, torch.stack([loss.double(), grad_norm.double()]),
                                  self.values)

    def check(self, now: int, last_good: str) -> None:
        """Raise ``Diverged`` if a step so far was not finite (``now``: the current step;
        ``last_good``: where the last good checkpoint is). With several ranks the averaged
        gradient is non-finite on every rank when it is on one, so all stop at the same step."""
        bad = int(self.bad_step)
        if not bad:
            return
        loss, grad_norm = self.values.tolist()
        raise Diverged(f"diverged at step {bad}: loss {loss}, gradient norm {grad_norm} (found "
                       f"at step {now}); {last_good}. Lower train.lr or set train.grad_clip; "
                       f"nothing non-finite was logged", bad)
