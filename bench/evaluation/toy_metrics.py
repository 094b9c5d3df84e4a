"""Sample-quality metrics for 2-D toys, where FID means nothing.

* Sliced Wasserstein-2 (Rabin et al. 2011; Bonneel et al. 2015): SW₂(P, Q)² = E_θ W₂²(θᵀP, θᵀQ)
  over directions θ uniform on the circle. Estimated with ``n_proj`` fixed directions (angles
  (k + u)·π/n_proj, k = 0..n_proj−1, one shared random offset u: a stratified grid of the half
  circle)
  and the 1-D W₂ between empirical quantile functions (sorted samples; unequal sizes are compared on
  the merged quantile grid). Reported as SW₂ (the square root), in data units.
* MMD² with an RBF kernel k(x, y) = exp(−‖x − y‖² / (2h²)) (Gretton et al. 2012, unbiased estimator
  eq. 3, may be slightly negative). Bandwidth h: a fixed value, or by default the **median
  heuristic computed on the reference (true) samples only** — the median pairwise distance of the
  fresh true points — so h depends only on the dataset and the evaluation seed and values stay
  comparable across checkpoints and strategies.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _quantiles(x: Tensor, q: Tensor) -> Tensor:
    """Empirical quantile function of sorted 1-D data ``x`` at levels ``q`` (step function)."""
    idx = (q * x.shape[0]).floor().long().clamp(max=x.shape[0] - 1)
    return x[idx]


def sliced_wasserstein(x: Tensor, y: Tensor, n_proj: int = 256,
                       generator: torch.Generator | None = None) -> float:
    """SW₂ between the empirical distributions of x [N, d] and y [M, d] (d = 2: stratified grid)."""
    x, y = x.double().reshape(x.shape[0], -1), y.double().reshape(y.shape[0], -1)
    d = x.shape[1]
    if d == 2:
        u = torch.rand((), generator=generator, dtype=torch.float64)
        ang = (torch.arange(n_proj, dtype=torch.float64) + u) * math.pi / n_proj
        theta = torch.stack([ang.cos(), ang.sin()], 1)
    else:
        theta = torch.randn(n_proj, d, generator=generator, dtype=torch.float64)
        theta = theta / theta.norm(dim=1, keepdim=True)
    px, _ = (x @ theta.T).sort(0)
    py, _ = (y @ theta.T).sort(0)
    if px.shape[0] == py.shape[0]:
        w2 = ((px - py) ** 2).mean(0)
    else:
        # merged grid of the two step quantile functions: exact 1-D W₂² = ∫ (F⁻¹ − G⁻¹)² dq
        edges = torch.cat([torch.arange(px.shape[0] + 1) / px.shape[0],
                           torch.arange(py.shape[0] + 1) / py.shape[0]]).double().unique()
        mid, width = (edges[:-1] + edges[1:]) / 2, edges[1:] - edges[:-1]
        w2 = (((_quantiles(px, mid) - _quantiles(py, mid)) ** 2) * width[:, None]).sum(0)
    return float(w2.mean().sqrt())


def median_bandwidth(x: Tensor, max_n: int = 2000) -> float:
    """Median pairwise Euclidean distance of (the first ``max_n`` rows of) x."""
    x = x.double().reshape(x.shape[0], -1)[:max_n]
    d = torch.cdist(x, x)
    iu = torch.triu_indices(x.shape[0], x.shape[0], offset=1)
    return float(d[iu[0], iu[1]].median())


def mmd2_rbf(x: Tensor, y: Tensor, bandwidth: float) -> float:
    """Unbiased MMD²(x, y) with k = exp(−‖a − b‖²/(2h²)) (Gretton et al. 2012, eq. 3)."""
    x, y = x.double().reshape(x.shape[0], -1), y.double().reshape(y.shape[0], -1)
    if bandwidth <= 0:
        raise ValueError(f"MMD bandwidth must be positive, got {bandwidth}")
    g = -0.5 / bandwidth**2
    n, m = x.shape[0], y.shape[0]
    kxx = torch.exp(g * torch.cdist(x, x) ** 2)
    kyy = torch.exp(g * torch.cdist(y, y) ** 2)
    kxy = torch.exp(g * torch.cdist(x, y) ** 2)
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(sxx + syy - 2 * kxy.mean())
