"""EDM2 learned uncertainty weighting — Karras et al. 2024, "Analyzing and Improving the Training
Dynamics of Diffusion Models" (arXiv 2312.02696, Sec. 5 / App. B: loss = λ(σ)/e^{u(σ)}·‖D − x‖² +
u(σ), a Kendall-style multi-task uncertainty weighting); official code NVlabs/edm2
``training/training_loop.py::EDM2Loss`` and ``training/networks_edm2.py::Precond`` (logvar head).

DDPM-ε adaptation (a mapping, not from EDM2; docs/official_code.md#edm2-uncertainty): a learned
log-variance u(i) per timestep, loss_i = ε-MSE_i / e^{u(i)} + u(i). At the optimum e^{u(i)} =
E[ε-MSE_i], so every timestep contributes ≈ 1 to the objective.

* u(i) = w·φ(c_i), c_i = −logSNR_i / 8 (= EDM2's c_noise = ln σ / 4 with σ = SNR^{−1/2});
  φ = EDM2's MPFourier(``features``): √2·cos(2π(f·c + φ₀)), f ~ N(0, 1), φ₀ ~ U[0, 1) from
  ``seed``; w a linear map features → 1.
* Sampling density: uniform; importance 1. Loss weight on the ε-MSE: e^{−u(i)} (detached; the
  additive u term has no gradient w.r.t. the network, so the strategy minimises it itself).
* Update (``before_update``, on the step's per-example ε-MSE of θ_k and its t): one Adam step on
  mean_b(ε-MSE_b·e^{−u(t_b)} + u(t_b)); on several ranks the gradient is averaged with
  ``ctx.reduce``.

Deviations from EDM2: its own Adam (``lr``, default 1e-2, β = (0.9, 0.99) as EDM2's) instead of
sharing the network's optimizer and learning-rate schedule; a plain linear head initialised to zero
(u ≡ 0, i.e. L_simple at the start) instead of a magnitude-preserving MPConv; EDM2's λ(σ) and its
log-normal σ sampling are not used (the base weight is 1 on the ε-MSE and t is uniform).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from strategies._checks import integer, number
from strategies.base import StepContext
from strategies.registry import register
from strategies.uniform import Uniform


@register
class EDM2Uncertainty(Uniform):  # uniform density (sample, probabilities)
    name = "edm2_uncertainty"
    learned = True        # its loss weighting (the density stays uniform)
    updates_every_step = True
    paper = "Karras et al. 2024, EDM2 learned uncertainty weighting (arXiv 2312.02696)"

    @dataclass(frozen=True)
    class Params:
        features: int = 128     # MPFourier features, >= 1
        lr: float = 1e-2        # Adam learning rate of the log-variance head, > 0
        seed: int = 0           # frequencies and phases of the Fourier features

        def __post_init__(self):
            integer("edm2_uncertainty", "features", self.features, low=1)
            number("edm2_uncertainty", "lr", self.lr, low=0, low_open=True)
            integer("edm2_uncertainty", "seed", self.seed)

    def __init__(self, process, params=None):
        super().__init__(process, params)
        p = self.params
        g = torch.Generator().manual_seed(p.seed)
        freqs = torch.randn(p.features, generator=g, dtype=torch.float64)
        phases = torch.rand(p.features, generator=g, dtype=torch.float64)
        c = -torch.log(process.snr.to(torch.float64)) / 8.0
        self.features = (math.sqrt(2.0) * torch.cos(2 * math.pi * (c[:, None] * freqs + phases))
                         ).float()                                    # [T, features]
        self.head = torch.zeros(p.features, requires_grad=True)
        self.opt = torch.optim.Adam([self.head], lr=p.lr, betas=(0.9, 0.99))

    def log_variance(self) -> Tensor:
        """u(i) for every index, float64 [T] (no gradient)."""
        with torch.no_grad():
            return (self.features @ self.head).double()

    def loss_weights(self) -> Tensor:
        return torch.exp(-self.log_variance())

    def before_update(self, ctx: StepContext) -> None:
        grad = self.gradient(ctx.draw.t.cpu(), ctx.losses.detach().float().cpu())
        if ctx.world_size > 1:      # average over ranks (reduce sums, on the training device)
            grad = ctx.reduce(grad.to(ctx.losses.device)).cpu() / ctx.world_size
        self.step(grad)
        ctx.adapted = {}

    def gradient(self, t: Tensor, losses: Tensor) -> Tensor:
        """∂/∂w of mean_b(loss_b·e^{−u(t_b)} + u(t_b))."""
        head = self.head.detach().requires_grad_(True)
        u = self.features[t] @ head
        (grad,) = torch.autograd.grad((losses * torch.exp(-u) + u).mean(), head)
        return grad

    def step(self, grad: Tensor) -> None:
        self.head.grad = grad.to(self.head.dtype)
        self.opt.step()
        self.head.grad = None

    def update(self, t: Tensor, losses: Tensor) -> None:
        """One Adam step from one process's (t, ε-MSE) pairs."""
        self.step(self.gradient(t, losses))

    def state_dict(self) -> dict[str, Any]:
        return {"head": self.head.detach().clone(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.head.copy_(state["head"])
        self.opt.load_state_dict(state["opt"])
