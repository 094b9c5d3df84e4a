"""Loss-second-moment importance sampling — Nichol & Dhariwal 2021, "Improved Denoising Diffusion
Probabilistic Models" (arXiv 2102.09672, Sec. 3.3: p_t ∝ sqrt(E[L_t²]), Σ p_t = 1, loss L_t/p_t);
official code openai/improved-diffusion
``improved_diffusion/resample.py::LossSecondMomentResampler``.

State: the last ``history`` (= 10) per-example losses of every timestep (a FIFO per t) and their
counts. Sampling density: uniform until *every* t holds ``history`` losses; then
w_t = sqrt(mean(history_t²)), w ← w/Σw, w ← w·(1 − uniform_prob) + uniform_prob/T, p = w/Σw.
Importance: 1/(T·p_t) on the per-example loss (IDDPM ``train_util.py``), so the objective stays
unbiased for L_simple. Loss weight: 1.

Update: in ``before_update`` (IDDPM updates right after the forward, before the backward) from the
per-example ε-MSE of the step (``ctx.losses``) and its timesteps (``ctx.draw.t``), gathered over
ranks through ``ctx.reduce`` (a sum into each rank's slot), in rank order then batch order, as
IDDPM's all-gather. IDDPM meant it for the L_vlb objective; with the ε-MSE the loss is largest at
small t, so this concentrates on small t.

Deviations from the official code: it feeds the loss the trainer optimises (the ε-MSE; IDDPM feeds
``losses["loss"]``, whatever that objective is) and draws with torch instead of NumPy's global RNG.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from strategies._checks import integer, number
from strategies.base import Draw, StepContext, Strategy
from strategies.registry import register


@register
class LossSecondMoment(Strategy):
    name = "loss_second_moment"
    learned = True
    updates_every_step = True
    paper = "Nichol & Dhariwal 2021, IDDPM (arXiv 2102.09672) §3.3, LossSecondMomentResampler"

    @dataclass(frozen=True)
    class Params:
        history: int = 10              # losses kept per timestep (history_per_term), >= 1
        uniform_prob: float = 0.001    # uniform mixture weight, in [0, 1]

        def __post_init__(self):
            integer("loss_second_moment", "history", self.history, low=1)
            number("loss_second_moment", "uniform_prob", self.uniform_prob, low=0, high=1)

    def __init__(self, process, params=None):
        super().__init__(process, params)
        self.loss_history = torch.zeros(self.T, self.params.history, dtype=torch.float64)
        self.loss_counts = torch.zeros(self.T, dtype=torch.long)

    # ------------------------------------------------------------------ density
    def warmed_up(self) -> bool:
        return bool(self._warmed_up())

    def _warmed_up(self) -> Tensor:
        return (self.loss_counts == self.params.history).all()

    def probabilities(self) -> Tensor:
        """Uniform until warmed up (or while every kept loss is 0: no information), else
        IDDPM's mixture; both computed, one selected on the tensor (no host read)."""
        T = self.T
        uniform = torch.full((T,), 1.0 / T, dtype=torch.float64)
        w = torch.sqrt((self.loss_history ** 2).mean(dim=-1))
        total = w.sum()
        w = w / total
        w = w * (1.0 - self.params.uniform_prob) + self.params.uniform_prob / T
        return torch.where(self._warmed_up() & (total > 0), w / w.sum(), uniform)

    def sample(self, x0: Tensor, generator: torch.Generator) -> Draw:
        p = self.probabilities()
        t = torch.multinomial(p, x0.shape[0], replacement=True, generator=generator)
        return self.draw(t, importance=self._importance(p)[t])

    def _importance(self, p: Tensor) -> Tensor:
        return 1.0 / (self.T * p)

    def importance_weights(self) -> Tensor:
        return self._importance(self.probabilities())

    # ------------------------------------------------------------------ update
    def before_update(self, ctx: StepContext) -> None:
        losses, t = ctx.losses.detach(), ctx.draw.t
        b, r, W = losses.shape[0], ctx.rank, ctx.world_size
        buf = torch.zeros(2, W * b, dtype=torch.float64, device=losses.device)
        buf[0, r * b:(r + 1) * b] = t.to(losses.device, torch.float64)
        buf[1, r * b:(r + 1) * b] = losses.to(torch.float64)
        if W > 1:
            buf = ctx.reduce(buf)
        buf = buf.cpu()
        self.update(buf[0].round().long(), buf[1])
        ctx.adapted = {}

    def update(self, t: Tensor, losses: Tensor) -> None:
        """Push (t, loss) pairs in order into the per-t FIFOs (IDDPM ``update_with_all_losses``),
        all at once: each t's FIFO becomes the last ``history`` values of (its kept losses, then
        its new ones in batch order), which is what pushing them one by one leaves."""
        H, T, n = self.params.history, self.T, t.shape[0]
        t = t.long()
        order = torch.sort(t, stable=True).indices
        ts = t[order]
        k = torch.empty_like(t)                  # how many earlier pairs of the batch share t
        k[order] = torch.arange(n) - torch.searchsorted(ts, ts)
        new = torch.zeros(T, dtype=torch.long).index_add_(0, t, torch.ones_like(t))
        ext = torch.cat([self.loss_history, self.loss_history.new_zeros(T, n)], dim=1)
        ext[t, self.loss_counts[t] + k] = losses.to(torch.float64)
        end = self.loss_counts + new
        start = (end - H).clamp(min=0)
        self.loss_history = ext.gather(1, start[:, None] + torch.arange(H))
        self.loss_counts = end.clamp(max=H)

    # ------------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict[str, Any]:
        return {"loss_history": self.loss_history.clone(), "loss_counts": self.loss_counts.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        hist, counts = state["loss_history"], state["loss_counts"]
        if tuple(hist.shape) != tuple(self.loss_history.shape):
            raise ValueError(f"loss_second_moment: saved history has shape {tuple(hist.shape)}, "
                             f"expected {tuple(self.loss_history.shape)} (T, history)")
        self.loss_history = hist.detach().to("cpu", torch.float64).clone()
        self.loss_counts = counts.detach().to("cpu", torch.long).clone()
