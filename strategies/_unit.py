"""The shared base of the strategies that are a density on the unit interval: ``UnitDensity``.

u ∈ [0, 1] with u = 1 the noise end — the flow's t itself (x_t = (1 − u)·x0 + u·ε). A strategy
gives the density's CDF ``cdf(u)`` and its quantile function ``quantile(v)``; the draw is
u = quantile(v), v ~ U[0, 1) from ``Strategy.uniforms`` (so ``compose``'s ``stratified`` option
applies), and the cell it lands in:

* flow: cell ⌊u·K⌋ of the K cells of [0, 1]; the cell's mass is F((i + 1)/K) − F(i/K), and the
  trainer's continuous t within the cell makes the trained density the piecewise-constant form
  of the source's;
* DDPM: index round(u·(T − 1)), the discretisation of the paper's own Beta sampler (ATS
  ``sample_timesteps``) and of ``lognormal``: mass F(b_{i+1}) − F(b_i), b_i = clip((i − ½)/(T − 1),
  0, 1) — this suite's mapping of a flow density onto DDPM's indices (u = i/(T − 1): index 0 the
  least noisy), not a source's.

Importance 1 and loss weight 1 unless a subclass overrides ``loss_weights``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from strategies.base import Draw, Strategy


def logit(x: Tensor) -> Tensor:
    """log(x/(1 − x)): ±inf at 1 and 0, as wanted for CDF edges."""
    return torch.log(x) - torch.log1p(-x)


def index_edges(T: int, rounded: bool) -> Tensor:
    """The T + 1 edges on [0, 1] of the indices that u maps to (float64): ``rounded``
    (i = round(u(T − 1))): clip((i − ½)/(T − 1), 0, 1), the end indices half-width; else
    (i = ⌊uT⌋): i/T."""
    i = torch.arange(T + 1, dtype=torch.float64)
    return ((i - 0.5) / (T - 1)).clamp(0.0, 1.0) if rounded else i / T


def index_of(u: Tensor, T: int, rounded: bool) -> Tensor:
    """The index (int64) of every u ∈ [0, 1]: round(u(T − 1)) or ⌊uT⌋ (``index_edges``)."""
    i = torch.round(u * (T - 1)) if rounded else torch.floor(u * T)
    return i.long().clamp(0, T - 1)


def bisect_increasing(f, y: Tensor, iterations: int = 60) -> Tensor:
    """x ∈ [0, 1] with f(x) = y for an increasing f on [0, 1] (float64, elementwise)."""
    lo, hi = torch.zeros_like(y), torch.ones_like(y)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        below = f(mid) < y
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    return 0.5 * (lo + hi)


class UnitDensity(Strategy):
    inverse_cdf = True

    def cdf(self, u: Tensor) -> Tensor:
        """P(U ≤ u), float64, increasing from 0 at u = 0 to 1 at u = 1."""
        raise NotImplementedError

    def quantile(self, v: Tensor) -> Tensor:
        """The inverse of ``cdf``: u with P(U ≤ u) = v (float64)."""
        raise NotImplementedError

    def sample(self, x0: Tensor, generator: torch.Generator) -> Draw:
        u = self.quantile(self.uniforms(x0.shape[0], generator).cpu())
        return self.draw(index_of(u, self.T, self.process.name == "ddpm"))

    def probabilities(self) -> Tensor:
        """Each cell's mass under the density (float64 [T])."""
        F = self.cdf(index_edges(self.T, self.process.name == "ddpm"))
        F[0], F[-1] = 0.0, 1.0
        return (F[1:] - F[:-1]).clamp(min=0.0)
