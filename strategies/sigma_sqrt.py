"""σ⁻² loss weight — diffusers ``training_utils.compute_loss_weighting_for_sd3``
(``weighting_scheme="sigma_sqrt"``): w(σ) = σ⁻² on the flow's velocity loss, σ = t, on uniform t
(compose it with a sampler for SD3's other densities). Since x0-MSE = t²·v-MSE, it is x0-MSE/t⁴:
large at low noise (t → 0; at the first of K cells' centre, (2K)²). Flow only: its σ is the flow's t, and no source gives a DDPM form.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from strategies.registry import register
from strategies.uniform import Uniform


@register
class SigmaSqrt(Uniform):  # uniform density (sample, probabilities)
    name = "sigma_sqrt"
    paper = "diffusers SD3 training weighting_scheme sigma_sqrt, w = σ⁻²"
    unsupported = {"ddpm": "σ⁻² is diffusers' weight on the flow's σ = t (SD3 training); no "
                           "source gives a DDPM form — on DDPM use p2, min_snr or debiased"}

    @dataclass(frozen=True)
    class Params:
        pass

    def loss_weights(self) -> Tensor:
        return self.process.time(torch.arange(self.T)) ** -2.0
