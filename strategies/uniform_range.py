"""Uniform timesteps on a sub-range of [0, T) — the sampler of the interdependence experiment of
Kim et al. 2025 (CVPR 2025), Sec. 4, Fig. 4: from a partly trained model, train only on
t ∈ [0, 0.2T) and watch the loss of every timestep.

For the first ``start_step`` iterations t ~ Uniform{0, …, T−1} (the partly trained model); from
then on t ~ Uniform{lo, …, hi−1} with lo = round(low·T), hi = round(high·T). Importance 1, loss
weight 1 (L_simple). The iteration count is the strategy's state (checkpointed), so a resumed run
switches at the same step. Not from an official code base (the paper gives the experiment, not
its code); ``low: 0, high: 1`` is uniform.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from strategies._checks import integer, number
from strategies.base import CountsSteps, Draw, Strategy
from strategies.registry import register


@register
class UniformRange(CountsSteps, Strategy):
    name = "uniform_range"
    paper = "Kim et al. 2025, Sec. 4, Fig. 4 (training on t ∈ [0, 0.2T) only)"

    @dataclass(frozen=True)
    class Params:
        low: float = 0.0           # the range [low·T, high·T), fractions of T
        high: float = 1.0
        start_step: int = 0        # iterations of plain uniform before the range applies

        def __post_init__(self):
            number("uniform_range", "low", self.low, low=0, high=1, high_open=True)
            number("uniform_range", "high", self.high, low=0, high=1, low_open=True)
            if self.high <= self.low:
                raise ValueError(f"uniform_range: high must be > low, got low={self.low!r}, "
                                 f"high={self.high!r}")
            integer("uniform_range", "start_step", self.start_step, low=0)

    def __init__(self, process, params=None):
        super().__init__(process, params)
        p = self.params
        self.lo, self.hi = round(p.low * self.T), round(p.high * self.T)
        if self.hi <= self.lo:
            raise ValueError(f"uniform_range: [{p.low}·T, {p.high}·T) holds no timestep at "
                             f"T={self.T}; widen the range")

    def _bounds(self) -> tuple[int, int]:
        return (self.lo, self.hi) if self.steps >= self.params.start_step else (0, self.T)

    def sample(self, x0: Tensor, generator: torch.Generator) -> Draw:
        lo, hi = self._bounds()
        return self.draw(torch.randint(lo, hi, (x0.shape[0],), generator=generator))

    def probabilities(self) -> Tensor:
        lo, hi = self._bounds()
        p = torch.zeros(self.T, dtype=torch.float64)
        p[lo:hi] = 1.0 / (hi - lo)
        return p
