"""Uniform timestep sampling — DDPM (Ho et al. 2020, arXiv 2006.11239, Algorithm 1).

i ~ Uniform{0, …, T−1}, importance 1, loss weight 1: the trainer minimises L_simple.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from strategies.base import Draw, Strategy
from strategies.registry import register


@register
class Uniform(Strategy):
    name = "uniform"
    paper = "Ho et al. 2020, DDPM (arXiv 2006.11239), Alg. 1"

    @dataclass(frozen=True)
    class Params:
        pass

    inverse_cdf = True

    def sample(self, x0: Tensor, generator: torch.Generator) -> Draw:
        if self.stratified:        # i = ⌊v·T⌋ (VDM's ceil(v·T) on indices 1 … T)
            v = self.uniforms(x0.shape[0], generator).cpu()
            return self.draw((v * self.T).floor().long().clamp(max=self.T - 1))
        t = torch.randint(0, self.T, (x0.shape[0],), generator=generator)
        return self.draw(t)

    def probabilities(self) -> Tensor:
        return torch.full((self.T,), 1.0 / self.T, dtype=torch.float64)
