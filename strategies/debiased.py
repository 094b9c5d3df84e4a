"""Debiased estimation — Yu et al. 2023, "Debias the Training of Diffusion Models"
(arXiv 2310.08442), official code ``yuhuUSTC/Debias`` ``guided_diffusion/gaussian_diffusion.py``:
the ε-MSE weighted by

    w(t) = 1/√SNR(t),   SNR = ᾱ/(1 − ᾱ),

on uniform t, with no clipping and no normalisation (the code computes a normalised
``sqrt_snr_norm`` and does not use it). The mean weight is far from 1 (≈ 17.8 over the linear
schedule's 1000 indices; ``python -m bench.strategies show debiased`` prints it), which scales
the effective learning rate. kohya sd-scripts' ``apply_debiased_estimation`` clips the SNR at
1000 first (``max_snr: 1000`` reproduces it; its v-prediction form 1/(SNR + 1) is a different
weight and not offered). On flow no source defines it: the ε-form weight becomes the velocity
loss's through the (1 − t)² factor, (1 − t)²·t/(1 − t) = t(1 − t) — this suite's derivation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from strategies._checks import number
from strategies.registry import register
from strategies.uniform import Uniform


@register
class Debiased(Uniform):  # uniform density (sample, probabilities)
    name = "debiased"
    paper = "Yu et al. 2023, debiased estimation w = 1/√SNR (arXiv 2310.08442)"

    @dataclass(frozen=True)
    class Params:
        max_snr: float | None = None    # clip the SNR at this value first (kohya: 1000); None: off

        def __post_init__(self):
            if self.max_snr is not None:
                number("debiased", "max_snr", self.max_snr, low=0, low_open=True)

    def __init__(self, process, params=None):
        super().__init__(process, params)
        snr = process.snr.to(torch.float64)
        if self.params.max_snr is not None:
            snr = snr.clamp(max=self.params.max_snr)
        self._w = snr.rsqrt() * process.eps_to_loss

    def loss_weights(self) -> Tensor:
        return self._w.clone()
