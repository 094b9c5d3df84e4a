"""SpeeD — Wang et al. 2024, "A Closer Look at Time Steps is Worthy of Triple Speed-Up for
Diffusion Model Training" (arXiv 2405.17403). Implemented from the official code,
kaiwang960112/SpeeD ``speed/diffusion/iddpm/speed.py::SpeeDiffusion`` (the Kim et al. appendix:
"sampled timesteps according to the official code", γ = 1, k = 1).

Sampling density (asymmetric, from the process increments):

1. g_i = gradient of sqrt(1 − abar) over the index i (np.gradient: central differences inside,
   one-sided at the ends);
2. boundary m = argmax(g < δ) + 1 with δ = 1e-4 (τ = m − 1 is the first index with g_i < δ;
   m = 1 if g never drops below δ; δ is per index, so m is not invariant to T);
3. p_raw_i = tanh(slope·(g_i − δ)) + 1.5 with slope = 1e6 (≈ 2.5 in the acceleration area,
   ≈ 0.5 in the convergence area, intermediate for a few indices near τ), p = p_raw / Σ p_raw.

Dual sampling (``dual=True``, the official behaviour): for a batch of n, draw a = n//2 + 1 indices
t ~ p and append their mirrors dual(t) = m − t if t < m else t − m, keeping the first n. The batch
marginal is (a'/n)·p + ((n − a')/n)·p_dual with a' = min(a, n) and
p_dual(j) = p(m − j)·[1 ≤ j ≤ m] + p(j + m)·[j + m ≤ T − 1] (n = 128: 65 draws, 63 mirrors).
``probabilities()`` returns this marginal for the batch size of the last ``sample`` call, or
``batch_size`` before any. Mirrors are deterministic functions of the draws (correlated).
``dual=False`` draws all n from p.

Loss weight (change-aware weighting, the P2 form, on the ε-MSE only): 1/(k + SNR_i)^γ, k = γ = 1
(= 1 − abar_i). No importance correction for the non-uniform sampling (importance 1): the
objective changes, as in the official code.

Deviation from the official code: only where it would index out of range — if g first drops below
δ at the last index (m = T), the mirror of t = 0 would be T; here m is capped at T − 1. p is kept in
float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from strategies._checks import boolean, integer, number
from strategies.base import Draw, Strategy
from strategies.registry import register


def process_increments(alphas_cumprod: Tensor) -> np.ndarray:
    """g_i = d sqrt(1 − abar_i) / di (np.gradient semantics), float64 [T]."""
    return np.gradient(np.sqrt(1.0 - alphas_cumprod.double().numpy()))


def boundary(g: np.ndarray, threshold: float) -> int:
    """m = argmax(g < δ) + 1, capped at T − 1 (see the module docstring)."""
    return min(int(np.argmax(g < threshold)) + 1, len(g) - 1)


def dual_indices(t: Tensor, m: int) -> Tensor:
    return torch.where(t < m, m - t, t - m)


@register
class SpeeD(Strategy):
    name = "speed"
    paper = "Wang et al. 2024, SpeeD (arXiv 2405.17403), official speed.py"
    unsupported = {"flow": "SpeeD's asymmetric sampling is built from DDPM's discrete noise "
                           "increments d sqrt(1 - abar_t), which are constant under rectified "
                           "flow; no source defines a flow form, so none is invented"}

    @dataclass(frozen=True)
    class Params:
        dual: bool = True          # append mirrored timesteps (official behaviour)
        k: float = 1.0             # weight 1/(k + SNR)^γ, k >= 0
        gamma: float = 1.0         # γ >= 0
        threshold: float = 1e-4    # δ on the per-index increment, > 0
        slope: float = 1e6         # steepness of the tanh, > 0
        batch_size: int = 128      # batch size for probabilities() before any sample()

        def __post_init__(self):
            boolean("speed", "dual", self.dual)
            number("speed", "k", self.k, low=0)
            number("speed", "gamma", self.gamma, low=0)
            number("speed", "threshold", self.threshold, low=0, low_open=True)
            number("speed", "slope", self.slope, low=0, low_open=True)
            integer("speed", "batch_size", self.batch_size, low=1)

    def __init__(self, process, params=None):
        super().__init__(process, params)
        p = self.params
        g = process_increments(process.alphas_cumprod)
        self.m = boundary(g, p.threshold)
        p_raw = np.tanh(p.slope * (g - p.threshold)) + 1.5
        self._p = torch.from_numpy(p_raw / p_raw.sum())
        self._w = 1.0 / (p.k + process.snr.to(torch.float64)) ** p.gamma
        self._last_batch_size = p.batch_size

    def sample(self, x0: Tensor, generator: torch.Generator) -> Draw:
        n = x0.shape[0]
        self._last_batch_size = n
        if not self.params.dual:
            return self.draw(torch.multinomial(self._p, n, replacement=True, generator=generator))
        t = torch.multinomial(self._p, n // 2 + 1, replacement=True, generator=generator)
        t = torch.cat([t, dual_indices(t, self.m)])[:n]
        return self.draw(t)

    def sampling_density(self) -> Tensor:
        """p over [0, T) of one non-mirrored draw."""
        return self._p.clone()

    def dual_density(self) -> Tensor:
        """p_dual: the distribution of dual(t) for t ~ p."""
        p, m, T = self._p, self.m, self.T
        out = torch.zeros_like(p)
        j = torch.arange(T)
        low = (j >= 1) & (j <= m)
        out[low] += p[(m - j[low])]
        high = j + m <= T - 1
        out[high] += p[j[high] + m]
        return out

    def probabilities(self, batch_size: int | None = None) -> Tensor:
        n = batch_size or self._last_batch_size
        if not self.params.dual:
            return self._p.clone()
        a = min(n // 2 + 1, n)
        return (a / n) * self._p + ((n - a) / n) * self.dual_density()

    def loss_weights(self) -> Tensor:
        return self._w.clone()

    def state_dict(self) -> dict[str, Any]:
        return {"last_batch_size": self._last_batch_size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._last_batch_size = int(state.get("last_batch_size", self.params.batch_size))
