"""Another process's uniform strategy, expressed on this one — this suite's construction for the
transfer study (docs/findings.md §6), not a published strategy.

"The same strategy" on DDPM and on flow matching can mean the same name or the same weighting of
noise levels. The training objective of either, written on the ε-MSE over log-SNR λ, is
∫ p(λ)·w(λ)·E‖ε − ε̂‖² dλ: p the density of the noise levels drawn, w the weight on the ε-MSE.
This strategy gives the run's process the source process's p(λ) **and** its w(λ):

* ``process: flow`` (rectified flow, uniform t): t = sigmoid(−λ/2), so P(Λ > λ) = sigmoid(−λ/2)
  (λ ~ Logistic(0, 2)); the velocity MSE is the ε-MSE / (1 − t)², so w(λ) = (1 − t)⁻² =
  (1 + e^(−λ/2))²; p·w = e^(−λ/2)/2.
* ``process: ddpm`` (uniform index on ``schedule`` with ``timesteps`` indices, weight 1): the
  index is spread over λ, each index i uniformly over its interval [e_(i+1), e_i] of midpoints
  between neighbouring λ_i (the end intervals extended by half a spacing), so P(Λ > λ) is
  piecewise linear, i/T at e_i; w = 1.

On the run's process, cell i covers the λ interval [e_(i+1), e_i] (DDPM: the same midpoint edges
of its own λ table; flow: λ at t = i/K and (i + 1)/K, ±∞ at the ends); its probability is the
source's mass in that interval, renormalised to the run's λ range (the flow source's tails beyond
DDPM's range, 1.6 % on the linear schedule, are dropped, not piled onto the end indices), and its
loss weight is w(λ_i) on the ε-MSE times the process's ``eps_to_loss`` (flow: (1 − t)²). Draws
are the inverse CDF of that table (so ``compose``'s ``stratified`` applies); importance 1.

``normalise: true`` (the default) divides the loss weight by its mean under p, so the training
loss keeps the scale of the run's own uniform and only the balance between noise levels is the
source's: unnormalised, flow's uniform on linear DDPM averages a weight of 160 (its largest,
25 000, at the noisiest index) and DDPM's uniform on flow 0.17 — a different effective learning
rate, which gradient clipping and Adam's ε would then also see. ``normalise: false`` keeps w as
written above.

On its own process (``process`` = the run's, DDPM with the run's schedule and T) it is uniform:
p = 1/T and weight 1, to rounding — tested.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from bench.core.ddpm import SCHEDULES, make_betas
from bench.core.process import Process
from bench.core.processes import build
from strategies._checks import boolean, choice, integer
from strategies.base import Draw, Strategy
from strategies.registry import register

SOURCES = ("ddpm", "flow")


def midpoint_edges(log_snr: np.ndarray) -> np.ndarray:
    """The T + 1 decreasing λ edges of a decreasing λ table: midpoints between neighbours, the two
    end intervals extended by half their neighbour's spacing."""
    mid = 0.5 * (log_snr[1:] + log_snr[:-1])
    return np.concatenate([[1.5 * log_snr[0] - 0.5 * log_snr[1]], mid,
                           [1.5 * log_snr[-1] - 0.5 * log_snr[-2]]])


def cell_edges(process: Process) -> np.ndarray:
    """The T + 1 decreasing λ edges of the run's grid cells."""
    if process.grid.discrete:
        return midpoint_edges(torch.log(process.snr).numpy())
    t = torch.arange(process.grid.size + 1, dtype=torch.float64) / process.grid.size
    with np.errstate(divide="ignore"):
        return (2.0 * (np.log1p(-t.numpy()) - np.log(t.numpy())))     # +inf at t = 0, −inf at 1


@register
class UniformOf(Strategy):
    name = "uniform_of"
    paper = "this suite: another process's uniform p(λ) and ε-weight w(λ) (docs/findings.md §6)"

    @dataclass(frozen=True)
    class Params:
        process: str = "ddpm"        # whose uniform: ddpm | flow
        schedule: str = "linear"     # the DDPM source's β schedule (process: ddpm)
        timesteps: int = 1000        # the DDPM source's number of indices (process: ddpm)
        normalise: bool = True       # scale the loss weight to mean 1 under p (module docstring)

        def __post_init__(self):
            choice("uniform_of", "process", self.process, SOURCES)
            choice("uniform_of", "schedule", self.schedule, SCHEDULES)
            integer("uniform_of", "timesteps", self.timesteps, low=2)
            boolean("uniform_of", "normalise", self.normalise)
            try:
                make_betas(self.schedule, self.timesteps)
            except ValueError as e:
                raise ValueError(f"uniform_of: {e}") from None

    inverse_cdf = True

    def __init__(self, process, params=None):
        super().__init__(process, params)
        edges = cell_edges(process)
        above = self._mass_above(edges)                   # P(Λ > e_i), increasing in i
        mass = np.clip(above[1:] - above[:-1], 0.0, None)
        if mass.sum() <= 0:
            raise ValueError(f"uniform_of: {self.params.process}'s uniform puts no mass on this "
                             f"{process.name} run's noise levels")
        self._p = torch.from_numpy(mass / mass.sum())
        self._cdf = torch.cumsum(self._p, 0)
        self._last = int(torch.nonzero(self._p).max())     # rounding never draws past it
        lam = torch.log(process.snr)
        w = self._eps_weight(lam) * process.eps_to_loss
        self._w = w / (self._p * w).sum() if self.params.normalise else w

    def _mass_above(self, lam: np.ndarray) -> np.ndarray:
        """P(Λ > λ) under the source's uniform, at each λ (±∞ allowed)."""
        if self.params.process == "flow":
            return 1.0 / (1.0 + np.exp(np.clip(lam, -700, 700) / 2.0))      # sigmoid(−λ/2)
        src = build({"schedule": self.params.schedule, "timesteps": self.params.timesteps})
        edges = midpoint_edges(torch.log(src.snr).numpy())                   # decreasing
        levels = np.arange(edges.size) / (edges.size - 1)                    # i/T at e_i
        return np.interp(lam, edges[::-1], levels[::-1], left=1.0, right=0.0)

    def _eps_weight(self, lam: Tensor) -> Tensor:
        """w(λ) on the ε-MSE: flow (1 + e^(−λ/2))², DDPM 1."""
        if self.params.process == "flow":
            return (1.0 + torch.exp(-lam / 2.0)) ** 2
        return torch.ones_like(lam)

    def sample(self, x0: Tensor, generator: torch.Generator) -> Draw:
        u = self.uniforms(x0.shape[0], generator).cpu()
        return self.draw(torch.searchsorted(self._cdf, u, right=True).clamp(max=self._last))

    def probabilities(self) -> Tensor:
        return self._p.clone()

    def loss_weights(self) -> Tensor:
        return self._w.clone()
