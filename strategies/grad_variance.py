"""Timestep sampling proportional to the per-timestep stochastic-gradient variance — the "Variance"
baseline of Kim et al. 2025 (CVPR 2025), Sec. 4 (Theorem 1, Fig. 2) and Table 4; the estimator
follows docs/official_code.md#gradient-variance (the paper does not specify one; the official code
has none).

Quantity. For bin k of timesteps, with g = ∇_θ ℓ_t(x0, ε) the gradient of one example's ε-MSE
ℓ_t = mean((ε − ε_θ(x_t, t))²), t uniform in the bin, x0 from the training batch:
    Var_k = E‖g − E g‖² = tr Cov(g).
The timesteps [0, T) are split into K (``bins``, 20) contiguous bins of (almost) equal size
(edges round(linspace(0, T, K+1))). Every ``refresh_every`` (500) steps, after the optimizer step
(θ_{k+1}, ``after_update``), Var_k is estimated from ``per_bin`` (32) examples per bin drawn from
the rank-local batch with fresh noise from the strategy's generator:

* ``estimator="two_half"`` (default): the gradients g_A, g_B of the two half-batch means;
  tr Cov ≈ (B/4)·‖g_A − g_B‖², unbiased since E‖g_A − g_B‖² = 2·tr Cov/(B/2); two backward passes
  per bin, on all parameters (or the last ``param_subset`` parameter tensors);
* ``estimator="per_sample"``: per-example gradients via ``torch.func.vmap(grad)`` on the last
  ``param_subset`` parameter tensors (0 = all), unbiased (1/(B−1))·Σ_b‖g_b − ḡ‖².

Gradients come from ``torch.autograd.grad`` / ``torch.func``: the parameters' ``.grad`` (owned by
the trainer) are never touched. The model is put in eval mode during estimation (``train_mode``;
no dropout, so the estimate consumes no global RNG), then restored. With several ranks each rank
estimates on its own slice and the estimates are averaged (``ctx.reduce``).

Sampling. The estimates are smoothed across refreshes with an EMA (``ema_decay`` 0.8; the first
refresh sets it), then
    p_t = (1 − u)·v_{k(t)}^power / Σ_τ v_{k(τ)}^power + u/T
with the uniform floor u = ``uniform_prob`` (0.001, as IDDPM's importance sampler) and power = 1
(p ∝ Var; power 0.5 gives p ∝ std, the classical variance-optimal importance-sampling density
√E‖g‖² when E g ≈ 0). Before the first refresh p is uniform. Importance: 1 by default (the paper's
samplers do not reweight, so the objective changes); ``reweight=True`` multiplies each example by
1/(T·p_t) (unbiased L_simple). Loss weight: 1.

The estimator is ``bench.core.grad_variance.bin_gradient_variance`` (the Fig. 2 diagnostics use
the same function).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from bench.core.grad_variance import ESTIMATORS, bin_gradient_variance, timestep_bins
from strategies.base import Draw, StepContext, Strategy
from strategies.registry import register

def _check(cond: bool, name: str, rule: str, value: Any) -> None:
    if not cond:
        raise ValueError(f"grad_variance: {name} must be {rule}, got {value!r}")


@register
class GradVariance(Strategy):
    name = "grad_variance"
    learned = True
    paper = ("Kim et al. 2025, Sec. 4 and Table 4 (sampling proportional to the per-timestep "
             "stochastic-gradient variance)")

    @dataclass(frozen=True)
    class Params:
        bins: int = 20                 # K timestep bins, 1 ≤ K ≤ T
        refresh_every: int = 500       # re-estimate when step % refresh_every == 0
        per_bin: int = 32              # examples per bin per refresh (even for two_half)
        estimator: str = "two_half"    # two_half | per_sample
        param_subset: int = 0          # last N parameter tensors (0 = all)
        ema_decay: float = 0.8         # EMA of the estimates across refreshes
        uniform_prob: float = 0.001    # uniform floor u: p_t ≥ u/T
        power: float = 1.0             # p ∝ Var^power
        reweight: bool = False         # importance 1/(T·p_t)
        train_mode: bool = False       # dropout on during estimation

        def __post_init__(self):
            for name, lo in (("bins", 1), ("refresh_every", 1), ("per_bin", 2),
                             ("param_subset", 0)):
                v = getattr(self, name)
                _check(isinstance(v, int) and not isinstance(v, bool) and v >= lo, name,
                       f"an integer >= {lo}", v)
            _check(self.estimator in ESTIMATORS, "estimator", f"one of {', '.join(ESTIMATORS)}",
                   self.estimator)
            _check(self.estimator != "two_half" or self.per_bin % 2 == 0, "per_bin",
                   "even for the two_half estimator", self.per_bin)
            _check(isinstance(self.ema_decay, (int, float)) and 0 <= self.ema_decay < 1,
                   "ema_decay", "in [0, 1)", self.ema_decay)
            _check(isinstance(self.uniform_prob, (int, float)) and 0 <= self.uniform_prob <= 1,
                   "uniform_prob", "in [0, 1]", self.uniform_prob)
            _check(isinstance(self.power, (int, float)) and self.power >= 0, "power", ">= 0",
                   self.power)
            for name in ("reweight", "train_mode"):
                _check(isinstance(getattr(self, name), bool), name, "a boolean",
                       getattr(self, name))

    def __init__(self, process, params: "GradVariance.Params | None" = None):
        super().__init__(process, params)
        if self.params.bins > self.T:
            raise ValueError(f"grad_variance: bins must be in [1, T={self.T}], "
                             f"got {self.params.bins}")
        self.edges = timestep_bins(self.T, self.params.bins)
        self.bin_of_t = torch.bucketize(torch.arange(self.T), self.edges[1:], right=True)
        self.var_ema: Tensor | None = None
        self.n_refresh = 0
        self.history: list[dict] = []
        self._p = self._probs()

    def _probs(self) -> Tensor:
        T, u = self.T, float(self.params.uniform_prob)
        if self.var_ema is None:
            return torch.full((T,), 1.0 / T, dtype=torch.float64)
        w = self.var_ema.clamp(min=0.0).pow(self.params.power)[self.bin_of_t]
        total = float(w.sum())
        q = w / total if total > 0 and torch.isfinite(w).all() else torch.full((T,), 1.0 / T,
                                                                               dtype=torch.float64)
        return (1.0 - u) * q + u / T

    def sample(self, x0: Tensor, generator: torch.Generator) -> Draw:
        t = torch.multinomial(self._p, x0.shape[0], replacement=True, generator=generator)
        d = self.draw(t, self.importance_weights()[t])
        return d.select(slice(None), x0.device)

    def importance_weights(self) -> Tensor:
        if not self.params.reweight:
            return super().importance_weights()
        return 1.0 / (self.T * self._p)

    def probabilities(self) -> Tensor:
        return self._p.clone()

    def planned_passes(self, batch_size: int, iterations: int) -> tuple[int, int]:
        """Each refresh (steps 0, refresh_every, …) draws per_bin examples in each of the K
        bins: K·per_bin forwards, and 2·K·per_bin backwards with two_half (two backward passes
        through each bin's batch) or K·per_bin with per_sample (at world size 1)."""
        p = self.params
        n = -(-iterations // p.refresh_every) * (len(self.edges) - 1) * p.per_bin
        return n, (2 * n if p.estimator == "two_half" else n)

    def after_update(self, ctx: StepContext) -> None:
        p = self.params
        if ctx.step % p.refresh_every:
            return
        v = bin_gradient_variance(ctx.model, ctx.process, ctx.x0, self.edges, per_bin=p.per_bin,
                                  estimator=p.estimator, param_subset=p.param_subset,
                                  generator=ctx.generator, train_mode=p.train_mode)
        if ctx.world_size > 1:
            v = ctx.reduce(v.to(ctx.x0.device)).cpu().double() / ctx.world_size
        self.var_ema = v if self.var_ema is None else (
            p.ema_decay * self.var_ema + (1.0 - p.ema_decay) * v)
        self.n_refresh += 1
        self._p = self._probs()
        ctx.adapted = {}
        self.history.append({"step": int(ctx.step), "var": v.tolist(),
                             "var_ema": self.var_ema.tolist(),
                             "bin_prob": [float(self._p[lo:hi].sum()) for lo, hi in
                                          zip(self.edges[:-1].tolist(), self.edges[1:].tolist())]})

    def diagnostics(self) -> list[dict]:
        """One dict per refresh: step, var (this refresh, per bin), var_ema, bin_prob."""
        return [dict(h) for h in self.history]

    def state_dict(self) -> dict[str, Any]:
        return {"var_ema": None if self.var_ema is None else self.var_ema.clone(),
                "n_refresh": self.n_refresh, "history": [dict(h) for h in self.history]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        v = state["var_ema"]
        self.var_ema = None if v is None else v.clone().double()
        self.n_refresh = int(state["n_refresh"])
        self.history = [dict(h) for h in state["history"]]
        self._p = self._probs()
