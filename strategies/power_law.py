"""Power-law time density — flow-matching posterior estimation (Wildberger et al. 2023, FMPE,
arXiv 2305.17161), official code ``dingo-gw/dingo`` ``dingo/core/posterior_models/cflow_base.py``
``sample_t``: s = v^(1/(1 + α)), v ~ U(0, 1), on its time s with s = 1 the **data**;
``time_prior_exponent`` α has no code default, its example settings and docs use α = 1 (the
default here).

p(t) ∝ (1 − t)^α in this suite's convention (t = 1 noise), i.e. the source's p(s) ∝ s^α on its
own time s = 1 − t with s = 1 the data: α > 0 puts the mass at the data end, α = 0 is uniform.
CDF F(t) = 1 − (1 − t)^(1+α); the draw t = 1 − v^(1/(1+α)) (the source's s = v^(1/(1+α))).
Importance 1, loss weight 1. On DDPM the density maps onto indices as ``strategies._unit`` says
(this suite's derivation).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from strategies._checks import number
from strategies._unit import UnitDensity
from strategies.registry import register


@register
class PowerLaw(UnitDensity):
    name = "power_law"
    paper = "Wildberger et al. 2023, FMPE power-law time prior (arXiv 2305.17161; dingo)"

    @dataclass(frozen=True)
    class Params:
        alpha: float = 1.0    # the exponent, > −1 (0: uniform; > 0: towards the data)

        def __post_init__(self):
            number("power_law", "alpha", self.alpha, low=-1, low_open=True, high=1e3)

    def cdf(self, u: Tensor) -> Tensor:
        return 1.0 - (1.0 - u).clamp(min=0.0) ** (1.0 + self.params.alpha)

    def quantile(self, v: Tensor) -> Tensor:
        return (1.0 - (1.0 - v) ** (1.0 / (1.0 + self.params.alpha))).clamp(0.0, 1.0)
