"""Rectified flow / flow matching (Liu et al. 2022; Lipman et al. 2022; Esser et al. 2024, SD3),
velocity prediction: the second ``Process`` (bench.core.process), ``process: {name: flow}``.

Convention (docs/processes.md; diffusers, kohya, OneTrainer, SimpleTuner): x_t = (1 − t)·x0 + t·ε,
t = 1 is pure noise, the network predicts v = ε − x0, and the sampler integrates dx/dt = v from
t = 1 to t = 0. SNR(t) = ((1 − t)/t)², λ = 2·ln((1 − t)/t).

Time on the grid: strategies choose one of K cells of [0, 1] (K = ``diffusion.timesteps``), as
they choose one of T indices under DDPM, so every time-indexed table (p(t), loss weights,
histograms, loss bins) has K entries and a strategy's code is the same on both processes. The
step trains at a continuous t drawn uniformly within the chosen cell, t = (i + u)/K with
u ~ U[0, 1) from the run's ``cell_time`` stream (``process.cell_time: uniform``, the default: a
strategy's density becomes piecewise constant on the cells, its loss weight the cell's), or at
the cell's centre (i + ½)/K (``cell_time: centre``: a fixed table of K times, as diffusers'
SD3/Flux scripts index one). A strategy's own evaluations at chosen cells (its hooks, the
diagnostics) use the centres. The network embeds 1000·t, the range of DDPM's default indices, so
the backbones' sinusoidal embeddings see the same scale.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from bench.core.io import upload
from bench.core.process import Process, TimeGrid, on_device

EMBED_SCALE = 1000.0          # model_time = 1000·t: DDPM's default index range [0, 1000)


class Flow(Process):
    """The linear (rectified-flow) path between data and Gaussian noise, on K cells."""

    name = "flow"
    SAMPLERS = ("euler", "heun")

    CELL_TIMES = ("uniform", "centre")

    def __init__(self, cells: int = 1000, cell_time: str = "uniform"):
        if cells < 2:
            raise ValueError(f"the flow's time grid needs >= 2 cells, got {cells}")
        if cell_time not in self.CELL_TIMES:
            raise ValueError(f"unknown process.cell_time {cell_time!r}; valid: "
                             f"{', '.join(self.CELL_TIMES)}")
        self.K, self.cell_time = cells, cell_time
        self.grid = TimeGrid(cells, discrete=False)
        self.t_centres = (torch.arange(cells, dtype=torch.float64) + 0.5) / cells
        self.snr = ((1.0 - self.t_centres) / self.t_centres) ** 2
        # ε-MSE = (1 − t)²·v-MSE at the same prediction: an ε-form loss weight w becomes the
        # velocity-loss weight w·(1 − t)² (the strategies that define ε-form weights use it)
        self.eps_to_loss = (1.0 - self.t_centres) ** 2

    # ------------------------------------------------------------------ the grid
    def _t(self, i: Tensor) -> Tensor:
        """The continuous time of ``i`` (float64, on ``i``'s device)."""
        return (i.double() if i.is_floating_point()
                else on_device(self.t_centres, i.device)[i.long()])

    def time(self, i: Tensor, like: Tensor | None = None) -> Tensor:
        """The continuous time t of ``i``: a floating tensor is t itself, an integer one holds
        cells, at their centres (float64; as ``like``'s dtype/device and broadcastable against it
        when given)."""
        if like is None:
            return self._t(i).cpu()
        t = self._t(i)
        return t.to(like.device, like.dtype).reshape(-1, *([1] * (like.dim() - 1)))

    # ------------------------------------------------------------------ the Process contract
    def noised(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        tt = self.time(t, x0)
        return (1.0 - tt) * x0 + tt * noise

    def target(self, x0: Tensor, noise: Tensor) -> Tensor:
        """v = ε − x0: the velocity of the path."""
        return noise - x0

    def train_times(self, cells: Tensor, generator: torch.Generator) -> Tensor:
        """cell_time uniform: t = (i + u)/K, u ~ U[0, 1) from ``generator`` (float64, on the
        cells' device); centre: the cells themselves (trained at their centres)."""
        if self.cell_time == "centre":
            return cells
        u = upload(torch.rand(cells.shape, generator=generator, dtype=torch.float64),
                   cells.device)
        return (cells.double() + u).div(self.K).clamp(max=1.0)

    def model_time(self, t: Tensor) -> Tensor:
        """1000·t (float32)."""
        return (self._t(t) * EMBED_SCALE).float()

    def model_cell(self, model_t: Tensor) -> Tensor:
        return (model_t.double() / EMBED_SCALE * self.K).floor().long().clamp(0, self.K - 1)

    def log_snr(self, t: Tensor) -> Tensor:
        tt = self.time(t)
        return 2.0 * torch.log((1.0 - tt) / tt)

    def elbo_weights(self) -> Tensor:
        """The continuous-time ELBO (Kingma et al. 2021, VDM eq. 17: ½·(−λ'(t))·‖ε − ε̂‖²) on
        the velocity MSE, over a cell of width 1/K: −λ'(t)/2 = 1/(t(1 − t)) and ε-MSE =
        (1 − t)²·v-MSE give (1 − t)/t per unit time, at the cell's centre."""
        t = self.t_centres
        return (1.0 - t) / t / self.K

    # ------------------------------------------------------------------ sampling
    def sample_passes(self, sampler: str, steps: int) -> int:
        """euler: N passes; heun: 2N − 1 (the last step, to t = 0, is an Euler step, as in
        Karras et al. 2022, Algorithm 1)."""
        self.check_sampler(sampler)
        if steps < 1:
            raise ValueError(f"sampler steps must be >= 1, got {steps}")
        return steps if sampler == "euler" else 2 * steps - 1

    @torch.no_grad()
    def sample(self, model, shape, generator: torch.Generator, *, sampler: str, steps: int,
               eta: float = 0.0, device="cpu", clip: bool = True, progress=None) -> Tensor:
        """Integrate dx/dt = v(x, t) from t = 1 (x ~ N(0, I)) to t = 0 on N equal steps."""
        self.sample_passes(sampler, steps)
        x = torch.randn(shape, generator=generator, device=device)
        ts = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64).tolist()

        def v(x: Tensor, t: float) -> Tensor:
            out = model(x, torch.full((shape[0],), t * EMBED_SCALE, device=device)).float()
            if progress is not None:
                progress.update(1)
            return out

        for t, t_next in zip(ts[:-1], ts[1:]):
            h = t_next - t
            d = v(x, t)
            x_next = x + h * d
            if sampler == "heun" and t_next > 0:
                x_next = x + h * 0.5 * (d + v(x_next, t_next))
            x = x_next
        return x.clamp(-1.0, 1.0) if clip else x

    # ------------------------------------------------------------------ likelihood
    def likelihood_passes(self, timesteps: int) -> int:
        """Forward passes per image of ``ode_bpd`` with ``timesteps`` Heun steps (as many
        backward passes per Hutchinson probe)."""
        return 2 * timesteps

    def likelihood_terms(self, pred, x0, x_t, t, **options) -> Tensor:
        """Per example, bits/dim: cell t's share of the continuous-time ELBO — ``elbo_weights``
        × the velocity MSE of ``pred`` (ε recovered from x_t: ε = (x_t − (1 − t)·x0)/t). The
        per-time terms a strategy reads (adaptive_beta's reward): a proxy, since the flow's
        likelihood is the ODE's (``ode_bpd``); the cell centres keep the t → 0 end finite
        ((1 − t)/t ≤ 2K − 1). DDPM's decoder options (``decoder``, ``clip``) mean nothing here
        and are ignored."""
        tt = self.time(t, x0)
        eps = (x_t - (1.0 - tt) * x0) / tt
        w = self.elbo_weights()[self.grid.cell(t).cpu()].to(pred.device, torch.float32)
        return w * self.loss(pred, self.target(x0, eps)) / math.log(2.0)

    def prior_bpd(self, x0: Tensor) -> Tensor:
        """0: the path ends at the prior itself (x₁ = ε), so no prior term is left."""
        return torch.zeros(x0.shape[0], device=x0.device)

    def ode_bpd(self, model, x0: Tensor, generator: torch.Generator, *, steps: int,
                probes: int = 1, bin_width: float | None = None, progress=None) -> Tensor:
        """−log₂ p(x0) per dimension under the model's ODE, per example (float64 [B]).

        log p₀(x) = log N(x₁; 0, I) + ∫₀¹ div v(x_t, t) dt along dx/dt = v from the data
        (t = 0) to noise (t = 1), on ``steps`` fixed Heun steps (2 network passes each, the
        log-density integrated with the same rule). The divergence is Hutchinson's estimate
        zᵀ(∂v/∂x)z with ``probes`` Rademacher vectors z per example, drawn once from
        ``generator`` and kept along the path; each probe costs one backward pass per network
        call. ``bin_width`` (8-bit images: 2/255): uniform dequantisation, y = x0 + Δ·(u − ½),
        and −log₂ of the density plus D·log₂(1/Δ) — an upper bound on the discrete NLL in
        expectation; None: the differential entropy of continuous data (may be negative)."""
        B, D, dev = x0.shape[0], x0[0].numel(), x0.device
        x = x0.float()
        if bin_width is not None:
            u = torch.rand(x0.shape, generator=generator).to(dev)
            x = x + bin_width * (u - 0.5)
        z = (torch.randint(0, 2, (probes, *x0.shape), generator=generator) * 2 - 1).float().to(dev)

        def field(x: Tensor, t: float) -> tuple[Tensor, Tensor]:
            out = hutchinson(model, x, torch.full((B,), t * EMBED_SCALE, device=dev), z)
            if progress is not None:
                progress.update(1)
            return out

        logdet = torch.zeros(B, dtype=torch.float64, device=dev)
        ts = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64).tolist()
        for t, t_next in zip(ts[:-1], ts[1:]):
            h = t_next - t
            v1, d1 = field(x, t)
            v2, d2 = field(x + h * v1, t_next)
            x = x + 0.5 * h * (v1 + v2)
            logdet += 0.5 * h * (d1 + d2)
        log_p1 = -0.5 * (x.double() ** 2).reshape(B, -1).sum(1) - 0.5 * D * math.log(2 * math.pi)
        nats = -(log_p1 + logdet) / D
        if bin_width is not None:
            nats = nats - math.log(bin_width)
        return nats / math.log(2.0)


def hutchinson(model, x: Tensor, model_t: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
    """v = model(x, model_t) and Hutchinson's estimate of div v per example (float64 [B]): the
    mean over the probes z [P, *x.shape] of zᵀ(∂v/∂x)z, one vector-Jacobian product (a backward
    pass) per probe."""
    B = x.shape[0]
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        v = model(x, model_t).float()
        div = torch.zeros(B, dtype=torch.float64, device=x.device)
        for p in range(z.shape[0]):
            (g,) = torch.autograd.grad((v * z[p]).sum(), x, retain_graph=p < z.shape[0] - 1)
            div += (g * z[p]).reshape(B, -1).sum(1).double()
    return v.detach(), div / z.shape[0]

