"""CosMap — Esser et al. 2024, SD3 (arXiv 2403.03206), §3.1, "Cosine-Mapped": the rectified-flow
density that matches the cosine schedule's log-SNR,

    t = f(u) = 1 − 1/(tan(π·u/2) + 1),  u ~ U(0, 1),   π(t) = 2 / (π·(1 − 2t + 2t²)),

(t = 1 noise, the paper's and this suite's convention). The paper defines it as a **sampling
density** (``use: density``, the default). diffusers' ``compute_loss_weighting_for_sd3``
(``weighting_scheme="cosmap"``) applies the same function as a **loss weight** on uniform t,
w(σ) = 2/(π(1 − 2σ + 2σ²)) with σ = t: ``use: weight`` reproduces that (flow only — its σ is the
flow's t; as a weight it composes with any sampler through ``compose``). Same expected loss either
way, different gradient variance. The density's CDF is F(t) = (2/π)·atan(t/(1 − t)). On DDPM the
density maps onto indices as ``strategies._unit`` says (this suite's derivation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from strategies._checks import choice
from strategies._unit import UnitDensity
from strategies.registry import register

USES = ("density", "weight")


def cosmap_weight(t: Tensor) -> Tensor:
    """2/(π(1 − 2t + 2t²)) (float64)."""
    return 2.0 / (math.pi * (1.0 - 2.0 * t + 2.0 * t * t))


@register
class CosMap(UnitDensity):
    name = "cosmap"
    paper = "Esser et al. 2024, SD3 CosMap (arXiv 2403.03206) §3.1; diffusers weighting"

    @dataclass(frozen=True)
    class Params:
        use: str = "density"    # density (SD3 paper) | weight (diffusers' weighting_scheme)

        def __post_init__(self):
            choice("cosmap", "use", self.use, USES)

    def __init__(self, process, params=None):
        super().__init__(process, params)
        if self.params.use == "weight" and process.name != "flow":
            raise ValueError("cosmap: use=weight is diffusers' weight on the flow's σ = t; it "
                             "has no source form on process ddpm; use=density maps onto DDPM")

    def cdf(self, u: Tensor) -> Tensor:
        if self.params.use == "weight":
            return u.clone()
        return (2.0 / math.pi) * torch.atan2(u, 1.0 - u)

    def quantile(self, v: Tensor) -> Tensor:
        if self.params.use == "weight":
            return v.clone()
        return 1.0 - 1.0 / (torch.tan(math.pi * v / 2.0) + 1.0)

    def loss_weights(self) -> Tensor:
        if self.params.use == "weight":
            return cosmap_weight(self.process.time(torch.arange(self.T)))
        return super().loss_weights()
