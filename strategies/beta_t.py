"""Beta-distributed timesteps: t ~ Beta(α, β) on [0, 1], t = 1 noise — B-TTDM (Zheng et al.,
"Beta-Tuned Timestep Diffusion Model", ECCV 2024; no official code): α = 0.8, β = 1, the values
recommended for it in OneTrainer PR #1225, the defaults here (mass towards the data end).
SimpleTuner's Beta timestep schedule defaults to α = β = 2 (``alpha: 2, beta: 2``: a bump at the
middle). The draw is the inverse regularised incomplete Beta function of v (scipy), the CDF its
forward form. Importance 1, loss weight 1. On DDPM the density maps onto indices as
``strategies._unit`` says (this suite's derivation), the discretisation of adaptive_beta's own
Beta draw — so ``beta_t`` is adaptive_beta's sampler frozen at (α, β).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from scipy import special
from torch import Tensor

from strategies._checks import number
from strategies._unit import UnitDensity
from strategies.registry import register


@register
class BetaT(UnitDensity):
    name = "beta_t"
    paper = "Zheng et al. 2024, B-TTDM Beta(α, β) timesteps (ECCV 2024)"

    @dataclass(frozen=True)
    class Params:
        alpha: float = 0.8    # > 0
        beta: float = 1.0     # > 0

        def __post_init__(self):
            number("beta_t", "alpha", self.alpha, low=0, low_open=True, high=1e4)
            number("beta_t", "beta", self.beta, low=0, low_open=True, high=1e4)

    def cdf(self, u: Tensor) -> Tensor:
        p = self.params
        return torch.from_numpy(special.betainc(p.alpha, p.beta, u.double().numpy()))

    def quantile(self, v: Tensor) -> Tensor:
        p = self.params
        return torch.from_numpy(special.betaincinv(p.alpha, p.beta, v.double().numpy()))
