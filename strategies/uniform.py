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

    def sample(self, x0: Tensor, generator: torch.Generator) -> Draw:
        t = torch.randint(0, self.T, (x0.shape[0],), generator=generator)
        return self.draw(t)

    def probabilities(self) -> Tensor:
        return torch.full((self.T,), 1.0 / self.T, dtype=torch.float64)
