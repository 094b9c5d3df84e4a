"""Log-normal / logit-normal timestep sampling.

The Kim et al. appendix cites EDM (Karras et al. 2022, arXiv 2206.00364) for its "Log-normal"
baseline but describes "weights from a normal distribution with mean 0 and std 1, followed by a
sigmoid" — SD3's logit-normal (Esser et al. 2024, arXiv 2403.03206, Sec. 3.1, "lognorm(m, s)").
Both are here; the sampling density is the whole strategy (importance 1, loss weight 1: neither the
appendix nor SD3 reweights with it; compose with a weighting strategy to add one).

``variant="logit_normal"`` (default): n ~ N(m, s²), u = sigmoid(n) ∈ (0, 1), then an index:

* ``discretise="round"`` (default): i = round(u·(T − 1)), how the paper's own Beta sampler maps u
  to an index (ATS ``utils/train.py::sample_timesteps``), so the baseline and the adaptive sampler
  share the discretisation. P(i) = Φ((logit(b_{i+1}) − m)/s) − Φ((logit(b_i) − m)/s) with
  b_i = clip((i − ½)/(T − 1), 0, 1): the end indices get half-width bins.
* ``discretise="floor"``: i = min(floor(u·T), T − 1), the diffusers SD3/Flux scripts'
  ``(u * num_train_timesteps).long()``; P(i) = Φ((logit((i+1)/T) − m)/s) − Φ((logit(i/T) − m)/s).

The index pmf does not depend on the β schedule (for m = 0 it peaks at the middle index and gives
the ends ≈ 2.5e-12 at T = 1000). Index 0 is the least noisy step; for m ≠ 0 note that diffusers'
FlowMatch timesteps are descending, so their m maps to −m here.

``variant="edm"``: EDM's training density ln σ ~ N(P_mean, P_std²), P_mean = −1.2, P_std = 1.2
(EDM Table 1 / ``training/loss.py::EDMLoss``), mapped to the discrete schedule through the VP↔VE
relation σ_i = sqrt((1 − abar_i)/abar_i): i is the index with the nearest ln σ_i (midpoint edges).
Most of its mass is at low noise. EDM's loss weight λ(σ) (= 1 + σ²/σ_d² on the ε-MSE) is *not*
applied: this strategy is a sampling density only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from strategies._checks import choice, number
from strategies._unit import index_edges, index_of, logit
from strategies.base import Draw, Strategy
from strategies.registry import register

VARIANTS = ("logit_normal", "edm")
DISCRETISATIONS = ("round", "floor")


@register
class LogNormal(Strategy):
    name = "lognormal"
    paper = ("Esser et al. 2024, SD3 logit-normal (arXiv 2403.03206) §3.1; "
             "Karras et al. 2022, EDM log-normal (arXiv 2206.00364)")

    @dataclass(frozen=True)
    class Params:
        variant: str = "logit_normal"   # logit_normal | edm
        m: float = 0.0                  # logit_normal: mean of n
        s: float = 1.0                  # logit_normal: std of n, > 0
        discretise: str = "round"       # logit_normal: round (i = round(u(T−1))) | floor (⌊uT⌋)
        p_mean: float = -1.2            # edm: mean of ln σ
        p_std: float = 1.2              # edm: std of ln σ, > 0

        def __post_init__(self):
            choice("lognormal", "variant", self.variant, VARIANTS)
            choice("lognormal", "discretise", self.discretise, DISCRETISATIONS)
            number("lognormal", "m", self.m)
            number("lognormal", "s", self.s, low=0, low_open=True)
            number("lognormal", "p_mean", self.p_mean)
            number("lognormal", "p_std", self.p_std, low=0, low_open=True)

    def __init__(self, process, params=None):
        super().__init__(process, params)
        T, p = self.T, self.params
        if p.variant == "edm":
            if process.name == "ddpm":           # (DDPM's own formula: its goldens bit for bit)
                abar = process.alphas_cumprod.to(torch.float64)
                log_sigma = 0.5 * (torch.log1p(-abar) - torch.log(abar))   # increasing in i
            else:                                # flow: σ = t/(1 − t), ln σ = −λ/2
                log_sigma = -0.5 * torch.log(process.snr.to(torch.float64))
            self._edges = 0.5 * (log_sigma[1:] + log_sigma[:-1])       # T − 1 inner edges
            z = (self._edges - p.p_mean) / p.p_std
        else:
            z = (logit(index_edges(T, p.discretise == "round")) - p.m) / p.s
            z = z[1:-1]
        cdf = torch.cat([torch.zeros(1, dtype=torch.float64), torch.special.ndtr(z),
                         torch.ones(1, dtype=torch.float64)])
        self._p = (cdf[1:] - cdf[:-1]).clamp(min=0.0)

    inverse_cdf = True

    def sample(self, x0: Tensor, generator: torch.Generator) -> Draw:
        n = x0.shape[0]
        if self.stratified:                      # z = Φ⁻¹(v), v stratified
            z = torch.special.ndtri(self.uniforms(n, generator).cpu())
        else:
            z = torch.randn(n, generator=generator, dtype=torch.float64)
        p = self.params
        if p.variant == "edm":
            log_sigma = p.p_mean + p.p_std * z
            t = torch.searchsorted(self._edges, log_sigma)
        else:
            t = index_of(torch.sigmoid(p.m + p.s * z), self.T, p.discretise == "round")
        return self.draw(t.long())

    def probabilities(self) -> Tensor:
        return self._p.clone()
