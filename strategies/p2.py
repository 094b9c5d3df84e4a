"""P2 weighting — Choi et al. 2022, "Perception Prioritized Training of Diffusion Models"
(CVPR 2022, arXiv 2204.00227): the weighting λ'_t = λ_t / (k + SNR(t))^γ of the paper's Sec. 3
(equation number not checked here); official code jychoi118/P2-weighting,
``guided_diffusion/gaussian_diffusion.py::training_losses`` ("# P2 weighting").

Sampling density: uniform, i ~ U{0, …, T−1}; importance 1.
Loss weight on the ε-MSE: λ_i = 1 / (k + SNR_i)^γ with SNR_i = abar_i / (1 − abar_i), used raw
(no normalisation), exactly as the official code multiplies it into ``mean_flat((ε − ε_θ)²)``.

Defaults k = 1, γ = 1 (the official README's training command; λ_i = 1 − abar_i). γ = 0.5 gives
√(1 − abar_i). Note: the Kim et al. appendix lists P2 with γ = 0, k = 1 — the official code's
*disabled* defaults — and γ = 0 makes λ ≡ 1, i.e. that setting is the uniform baseline.
Deviation from the official code: none for the ε-MSE; the learned-σ ``vb`` term (unweighted there)
does not exist in this benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from strategies._checks import number
from strategies.registry import register
from strategies.uniform import Uniform


@register
class P2(Uniform):  # uniform density (sample, probabilities)
    name = "p2"
    paper = "Choi et al. 2022, P2 weighting (arXiv 2204.00227), λ = 1/(k+SNR)^γ"

    @dataclass(frozen=True)
    class Params:
        k: float = 1.0       # p2_k: offset added to the SNR, >= 0
        gamma: float = 1.0   # p2_gamma: exponent, >= 0 (0 = uniform baseline)

        def __post_init__(self):
            number("p2", "k", self.k, low=0)
            number("p2", "gamma", self.gamma, low=0)

    def __init__(self, process, params=None):
        super().__init__(process, params)
        snr = process.snr.to(torch.float64)
        # the ε-form weight, on the process's own loss (flow: × (1 − t)², docs/processes.md)
        self._w = process.eps_to_loss / (self.params.k + snr) ** self.params.gamma

    def loss_weights(self) -> Tensor:
        return self._w.clone()
