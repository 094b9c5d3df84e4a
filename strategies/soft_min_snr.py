"""Soft-min-SNR weighting — Crowson et al. 2024, HDiT (arXiv 2401.11605), official code
``crowsonkb/k-diffusion`` ``k_diffusion/layers.py`` (``Denoiser``, ``weighting="soft-min-snr"``):
c_weight = (σ·σ_d)²/(σ² + σ_d²)² on k-diffusion's preconditioned target, which is the weight
1/(σ² + σ_d²) on the denoised (x0) error and, with x0-error = σ²·ε-error and SNR = 1/σ²,

    w(t) = 1 / (1 + σ_d²·SNR(t))   on the ε-MSE,

a smooth form of Min-SNR (γ = 1/σ_d²). ``sigma_data`` σ_d = 0.5 (HDiT's configs; the code's
default is 1.0). On uniform t. On DDPM SNR = ᾱ/(1 − ᾱ) (the VP process is the VE one scaled, the
same σ = 1/√SNR). On flow no source defines it: × (1 − t)² gives t²(1 − t)²/(t² + σ_d²(1 − t)²)
on the velocity loss — this suite's derivation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from strategies._checks import number
from strategies.registry import register
from strategies.uniform import Uniform


@register
class SoftMinSNR(Uniform):  # uniform density (sample, probabilities)
    name = "soft_min_snr"
    paper = "Crowson et al. 2024, HDiT soft-min-SNR (arXiv 2401.11605; k-diffusion)"

    @dataclass(frozen=True)
    class Params:
        sigma_data: float = 0.5    # σ_d, > 0

        def __post_init__(self):
            number("soft_min_snr", "sigma_data", self.sigma_data, low=0, low_open=True)

    def __init__(self, process, params=None):
        super().__init__(process, params)
        snr = process.snr.to(torch.float64)
        self._w = process.eps_to_loss / (1.0 + self.params.sigma_data ** 2 * snr)

    def loss_weights(self) -> Tensor:
        return self._w.clone()
