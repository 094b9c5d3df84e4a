"""Mode sampling with heavy tails — Esser et al. 2024, SD3 (arXiv 2403.03206), §3.1:

    t = f_mode(u; s) = 1 − u − s·(cos²(π·u/2) − 1 + u),  u ~ U(0, 1),

``scale`` s (the paper's s; diffusers' ``mode_scale``, default 1.29 in its training scripts and
in ``compute_density_for_timestep_sampling``). s = 0 is uniform; s > 0 puts mass at the middle,
s < 0 at the ends; f is a bijection of [0, 1] only for −1 ≤ s ≤ 2/(π − 2) ≈ 1.752, the paper's
range. f is symmetric (f(1 − u) = 1 − f(u)), so the paper's and diffusers' conventions
(diffusers' σ ≈ 1 − u) give the same density. The draw is t = f(1 − v) (increasing in v, the
same law); the CDF P(t ≤ x) = 1 − f⁻¹(x), f⁻¹ by bisection. Importance 1, loss weight 1. On DDPM
the density maps onto indices as ``strategies._unit`` says (this suite's derivation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from strategies._checks import number
from strategies._unit import UnitDensity, bisect_increasing
from strategies.registry import register

MAX_SCALE = 2.0 / (math.pi - 2.0)


def f_mode(u: Tensor, s: float) -> Tensor:
    """The paper's f_mode(u; s) (float64)."""
    return 1.0 - u - s * (torch.cos(math.pi * u / 2.0) ** 2 - 1.0 + u)


@register
class Mode(UnitDensity):
    name = "mode"
    paper = "Esser et al. 2024, SD3 mode sampling (arXiv 2403.03206) §3.1"

    @dataclass(frozen=True)
    class Params:
        scale: float = 1.29    # s in [−1, 2/(π − 2)]; 0 is uniform

        def __post_init__(self):
            number("mode", "scale", self.scale, low=-1.0, high=MAX_SCALE)

    def quantile(self, v: Tensor) -> Tensor:
        return f_mode(1.0 - v, self.params.scale).clamp(0.0, 1.0)

    def cdf(self, u: Tensor) -> Tensor:
        # P(f(1 − v) ≤ x) = P(1 − v ≥ f⁻¹(x)) = 1 − f⁻¹(x); g(w) = 1 − f(w) is increasing
        s = self.params.scale
        return 1.0 - bisect_increasing(lambda w: 1.0 - f_mode(w, s), 1.0 - u)
