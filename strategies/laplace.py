"""Laplace log-SNR sampling — Hang et al. 2024, "Improved Noise Schedule for Diffusion Training"
(arXiv 2407.03297): importance sampling of log-SNR with λ ~ Laplace(μ, b), i.e. the "Laplace"
schedule λ(t) = μ − b·sgn(0.5 − t)·ln(1 − 2|t − 0.5|), defaults μ = 0, b = 0.5
(docs/official_code.md#laplace; the paper's own section was not read here).

Discrete DDPM form (not from the paper): keep the benchmark's β schedule and give index i the
Laplace mass of the log-SNR interval nearest to logSNR_i:
P(i) = F(e_i) − F(e_{i+1}), e_0 = +∞, e_T = −∞, e_i = (logSNR_{i−1} + logSNR_i)/2, with F the
Laplace CDF. Sampling draws λ ~ Laplace(μ, b) (inverse CDF) and takes the index whose interval
holds it. This concentrates the batch around logSNR = μ (for μ = 0: SNR = 1).
Importance 1, loss weight 1 (the sampling density is the schedule change; there is no reweighting).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from strategies._checks import number
from strategies.base import Draw, Strategy
from strategies.registry import register


def laplace_cdf(x: Tensor, mu: float, b: float) -> Tensor:
    z = (x - mu) / b
    return torch.where(z < 0, 0.5 * torch.exp(z), 1.0 - 0.5 * torch.exp(-z))


@register
class Laplace(Strategy):
    name = "laplace"
    paper = "Hang et al. 2024, Laplace log-SNR schedule (arXiv 2407.03297)"

    @dataclass(frozen=True)
    class Params:
        mu: float = 0.0    # location of log-SNR
        b: float = 0.5     # scale of log-SNR, > 0

        def __post_init__(self):
            number("laplace", "mu", self.mu)
            number("laplace", "b", self.b, low=0, low_open=True)

    def __init__(self, process, params=None):
        super().__init__(process, params)
        log_snr = torch.log(process.snr.to(torch.float64))          # decreasing in i
        # Ascending edges of −logSNR, so that searchsorted gives the index directly.
        self._neg_edges = -0.5 * (log_snr[1:] + log_snr[:-1])
        cdf = laplace_cdf(-self._neg_edges, self.params.mu, self.params.b)   # F(e_1..e_{T−1})
        one, zero = torch.ones(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
        upper = torch.cat([one, cdf])           # F(e_i), i = 0..T−1
        lower = torch.cat([cdf, zero])          # F(e_{i+1})
        self._p = (upper - lower).clamp(min=0.0)

    inverse_cdf = True

    def sample(self, x0: Tensor, generator: torch.Generator) -> Draw:
        u = self.uniforms(x0.shape[0], generator).cpu() - 0.5
        lam = self.params.mu - self.params.b * torch.sign(u) * torch.log1p(-2.0 * u.abs())
        t = torch.searchsorted(self._neg_edges, -lam, right=True)
        return self.draw(t)

    def probabilities(self) -> Tensor:
        return self._p.clone()
