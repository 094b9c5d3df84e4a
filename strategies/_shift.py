"""The SD3/Flux timestep shift as a transform of any sampler's draw on flow (``compose``'s
``shift``): pure functions.

SD3 (Esser et al. 2024, §5.3.2) and diffusers' ``FlowMatchEulerDiscreteScheduler``:
t' = s·t / (1 + (s − 1)·t) (t = σ, 1 the noise end) — in log-SNR a plain shift λ' = λ − 2·ln s,
so s > 1 moves every draw towards noise. Flux's resolution-dependent form is the same map with
s = e^μ, μ linear in the image's sequence length from 0.5 at 256 tokens to 1.15 at 4096
(diffusers ``pipeline_flux.calculate_shift``; a 1024² image is 4096 tokens: s = e^1.15 ≈ 3.158).

On the suite's grid a drawn cell i stands for t = (i + u)/K, u ~ U[0, 1) (as the trainer's
``cell_time``); its shifted t' falls in cell ⌊t'·K⌋. The shifted cell masses are those of that
piecewise-constant density pushed through the map, exactly.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

FLUX_SEQ_LEN = (256, 4096)       # diffusers calculate_shift: base_seq_len, max_seq_len
FLUX_MU = (0.5, 1.15)            # base_shift, max_shift


def flux_shift(seq_len: int) -> float:
    """s = e^μ for an image of ``seq_len`` tokens (μ linear through the Flux constants)."""
    (x1, x2), (y1, y2) = FLUX_SEQ_LEN, FLUX_MU
    slope = (y2 - y1) / (x2 - x1)
    return math.exp(slope * seq_len + (y1 - slope * x1))


def shift_t(t: Tensor, s: float) -> Tensor:
    """t' = s·t / (1 + (s − 1)·t)."""
    return s * t / (1.0 + (s - 1.0) * t)


def unshift_t(t: Tensor, s: float) -> Tensor:
    """The inverse map: t = t' / (s − (s − 1)·t')."""
    return t / (s - (s - 1.0) * t)


def shift_cells(cells: Tensor, s: float, generator: torch.Generator, K: int) -> Tensor:
    """The cells (int64) the drawn ``cells`` of a K-cell grid land in under the shift."""
    u = torch.rand(cells.shape, generator=generator, dtype=torch.float64,
                   device=generator.device).cpu()
    t = (cells.cpu().double() + u) / K
    return (shift_t(t, s) * K).floor().long().clamp(0, K - 1).to(cells.device)


def shifted_probabilities(p: Tensor, s: float) -> Tensor:
    """Cell masses after the shift of the piecewise-constant density with cell masses ``p``."""
    p = p.to(torch.float64)
    K = p.numel()
    below = torch.cat([torch.zeros(1, dtype=torch.float64), p.cumsum(0)])   # F at i/K
    x = unshift_t(torch.arange(K + 1, dtype=torch.float64) / K, s) * K     # pre-images of edges
    i = x.floor().long().clamp(0, K - 1)
    F = below[i] + p[i] * (x - i)
    F[0], F[-1] = 0.0, 1.0
    return (F[1:] - F[:-1]).clamp(min=0.0)
