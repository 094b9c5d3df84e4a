"""Per-timestep diagnostics (Kim et al. 2025, Fig. 2, 5 and 6) of the process (DDPM; flow on its
grid cells, with its continuous-time ELBO as the ``vlb`` weighting), written under RUN/timesteps/.

At configured iterations, on the live (training) weights in eval mode:

* **loss per timestep bin** — [0, T) in K contiguous bins
  (``bench.core.grad_variance.timestep_bins``); per bin ``loss_per_bin`` train images with t
  uniform in the bin and fresh ε; the mean of w_t·mean_dims((ε − ε_θ(x_t, t))²) for two
  weightings: ``ddpm`` (w_t = 1, L_DDPM, paper eq. 5) and ``vlb`` (w_t = c_t =
  β_t²/(2σ_t²α_t(1 − ᾱ_t)), paper eq. 7, with σ_t² the model variance; for fixed-large σ_t² = β_t
  (t ≥ 1) this is β_t/(2α_t(1 − ᾱ_t))). The vlb loss is the KL term of L_VLB in nats/dim up to
  its θ-free constant.
* **stochastic-gradient variance per bin** — tr Cov(∇_θ w_t·ℓ_t) by
  ``bench.core.grad_variance.bin_gradient_variance`` (the same estimator as the ``grad_variance``
  strategy; ``per_bin`` examples, two-half or per-sample). For the vlb weighting the model is
  wrapped so that the backward pass through its output is scaled by c_t per example (the forward
  value is unchanged), which makes the estimator differentiate c_t·ℓ_t exactly. Both weightings
  use the same images, t and ε (the same generator seed), so their ratio is a common-random-numbers
  comparison.
* **the strategy's p(t)** — ``strategy.probabilities()`` at each snapshot (skipped when None), and a
  histogram of the t the strategy actually drew since the previous snapshot (Fig. 5).

Files (CSV, long/tidy format; the schemas are ``bench.rundir.runtables.timestep_table``,
``bench.rundir.runtables.read_timesteps(run_dir)`` reads them all):

    timesteps/diagnostics.csv  step, nimg, t_bin, t_lo, t_hi, weighting, loss, grad_var, n_loss,
                               n_grad, estimator, wall_s_eval — snapshots × bins × 2 weightings
    timesteps/p_t.csv          step, t, p           — snapshots × T rows
    timesteps/t_hist.csv       step, step_from, t_bin, t_lo, t_hi, count — intervals × hist_bins

``t_lo``/``t_hi`` are the bin's [lo, hi) timestep indices (index i = DDPM step i + 1). ``grad_var``
is empty when the gradient variance is off (``per_bin`` = 0). ``wall_s_eval`` is the seconds the
whole snapshot took (the same on all its rows; not part of the training clock).
"""

from __future__ import annotations

import math

import pandas as pd
import torch
from torch import Tensor, nn

from bench.core.process import Process
from bench.core.grad_variance import bin_gradient_variance, timestep_bins
from bench.core.rng import generator

WEIGHTINGS = ("ddpm", "vlb")


def weights(process: Process, weighting: str) -> Tensor:
    """Per grid cell, float64 [K]: ``ddpm`` ones; ``vlb`` the weights that turn the training
    loss into the ELBO (``Process.elbo_weights``: DDPM's c_t of Kim et al. eq. 7, flow's
    continuous-time integrand)."""
    if weighting == "ddpm":
        return torch.ones(process.grid.size, dtype=torch.float64)
    if weighting == "vlb":
        return process.elbo_weights()
    raise ValueError(f"unknown weighting {weighting!r}; valid: {', '.join(WEIGHTINGS)}")


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; backward multiplies the incoming gradient by ``w`` (per example)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, w):
        return x.clone()

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[1])

    @staticmethod
    def backward(ctx, g):
        (w,) = ctx.saved_tensors
        return g * w.reshape(-1, *([1] * (g.dim() - 1))).to(g.dtype), None


class WeightedGrad(nn.Module):
    """``model`` whose output back-propagates w_t·∂ℓ/∂ε̂: gradients of ℓ become those of w_t·ℓ."""

    def __init__(self, model: nn.Module, w: Tensor, process: Process):
        super().__init__()
        self.inner, self.process = model, process
        self.register_buffer("w", w.float(), persistent=False)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        """``t`` is the time the network embeds; its grid cell indexes ``w``."""
        return _ScaleGrad.apply(self.inner(x, t), self.w.to(x.device)[self.process.model_cell(t)])


@torch.no_grad()
def bin_losses(model: nn.Module, process: Process, x0: Tensor, edges: Tensor, n: int,
               gen: torch.Generator) -> Tensor:
    """Per-bin mean ε-MSE and c_t·ε-MSE, float64 [K, 2] (columns: ddpm, vlb)."""
    c = process.elbo_weights()
    out = torch.zeros(len(edges) - 1, 2, dtype=torch.float64)
    for k in range(len(edges) - 1):
        lo, hi = int(edges[k]), int(edges[k + 1])
        idx = torch.randint(0, x0.shape[0], (n,), generator=gen)
        t = torch.randint(lo, hi, (n,), generator=gen)
        noise = torch.randn((n, *x0.shape[1:]), generator=gen).to(x0.device)
        xb, td = x0[idx.to(x0.device)], t.to(x0.device)
        mse = process.losses(model, xb, td, noise).double().cpu()
        out[k, 0] = mse.mean()
        out[k, 1] = (c[t] * mse).mean()
    return out


def snapshot(model: nn.Module, process: Process, x0: Tensor, *, seed: int, step: int,
             bins: int = 20, loss_per_bin: int = 128, per_bin: int = 32,
             estimator: str = "two_half", param_subset: int = 0) -> pd.DataFrame:
    """One diagnostics snapshot as rows of diagnostics.csv (without ``nimg``)."""
    import time

    t0 = time.perf_counter()
    edges = timestep_bins(process.grid.size, bins)
    was_training = model.training
    model.eval()
    try:
        losses = bin_losses(model, process, x0, edges, loss_per_bin,
                            generator(seed, "diag_loss", step))
    finally:
        model.train(was_training)
    gv = {}
    for w in WEIGHTINGS:
        if per_bin <= 0:
            gv[w] = [math.nan] * bins
            continue
        m = model if w == "ddpm" else WeightedGrad(model, weights(process, w), process)
        gv[w] = bin_gradient_variance(
            m, process, x0, edges, per_bin=per_bin, estimator=estimator,
            param_subset=param_subset, generator=generator(seed, "diag_grad", step),
            train_mode=False).tolist()
    rows = []
    for j, w in enumerate(WEIGHTINGS):
        for k in range(bins):
            rows.append({"step": step, "t_bin": k, "t_lo": int(edges[k]),
                         "t_hi": int(edges[k + 1]), "weighting": w,
                         "loss": float(losses[k, j]), "grad_var": gv[w][k],
                         "n_loss": loss_per_bin, "n_grad": per_bin, "estimator": estimator})
    df = pd.DataFrame(rows)
    df["wall_s_eval"] = round(time.perf_counter() - t0, 4)
    return df


def p_t_frame(step: int, p: Tensor) -> pd.DataFrame:
    p = p.detach().double().cpu()
    return pd.DataFrame({"step": step, "t": range(p.shape[0]), "p": p.numpy()})


def bin_edges(T: int, k: int) -> Tensor:
    """Edges [min(k, T) + 1] of contiguous bins of [0, T) whose sizes differ by at most 1."""
    return timestep_bins(T, min(k, T))


def binned(per_t: Tensor, k: int) -> Tensor:
    """Per-timestep values [T] summed into ``bin_edges(T, k)``."""
    e = bin_edges(per_t.shape[0], k)
    return torch.stack([per_t[e[i]:e[i + 1]].sum() for i in range(len(e) - 1)])


def hist_frame(step: int, step_from: int, counts: Tensor, T: int) -> pd.DataFrame:
    k = counts.shape[0]
    edges = bin_edges(T, k)
    return pd.DataFrame({"step": step, "step_from": step_from, "t_bin": range(k),
                         "t_lo": edges[:-1].numpy(), "t_hi": edges[1:].numpy(),
                         "count": counts.long().numpy()})
