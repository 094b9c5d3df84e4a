"""U-shaped timestep density — Lee, Lin & Fanti 2024, "Improving the Training of Rectified Flows"
(arXiv 2405.20320), §3.3, official code ``sangyun884/rfpp`` ``t_dist.py``: more weight at both
ends of the path, where the flow's 1-rectified training is hardest,

    p(t) = a·cosh(a(t − ½)) / (2·sinh(a/2)),  t ∈ [0, 1],

``a`` = 2 (the code's argparse default; its README's recipes use a = 4). Symmetric in t ↔ 1 − t,
so the source's convention (t = 1 data or noise) does not matter. CDF
F(t) = (sinh(a(t − ½)) + sinh(a/2)) / (2·sinh(a/2)); the draw is its inverse,
t = ½ + asinh((2v − 1)·sinh(a/2)) / a. Importance 1, loss weight 1. On DDPM: the index mapping of
``strategies._unit`` (this suite's derivation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from strategies._checks import number
from strategies._unit import UnitDensity
from strategies.registry import register


@register
class UShaped(UnitDensity):
    name = "u_shaped"
    paper = "Lee et al. 2024, U-shaped t (arXiv 2405.20320; rfpp t_dist.py)"

    @dataclass(frozen=True)
    class Params:
        a: float = 2.0     # the concentration at both ends, > 0 (a → 0: uniform)

        def __post_init__(self):
            number("u_shaped", "a", self.a, low=0, low_open=True, high=200)

    def cdf(self, u: Tensor) -> Tensor:
        a = self.params.a
        return (torch.sinh(a * (u - 0.5)) + math.sinh(a / 2)) / (2 * math.sinh(a / 2))

    def quantile(self, v: Tensor) -> Tensor:
        a = self.params.a
        return (0.5 + torch.asinh((2 * v - 1) * math.sinh(a / 2)) / a).clamp(0.0, 1.0)

    @staticmethod
    def density(t: Tensor, a: float) -> Tensor:
        """p(t) of the source's formula (float64)."""
        return a * torch.cosh(a * (t - 0.5)) / (2 * math.sinh(a / 2))
