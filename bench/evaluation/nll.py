"""Test NLL in bits/dim: the DDPM variational bound (Ho et al. 2020 eq. 5; IDDPM ``calc_bpd_loop``).

    bpd(x0) = Σ_{t=0}^{T−1} L_t(x0) + L_prior(x0)

L_t (t ≥ 1) = KL(q(x_{t−1}|x_t, x0) ‖ p_θ(x_{t−1}|x_t)) with one fresh ε per (image, t); L_0 is the
decoder NLL −log p_θ(x0|x_1); L_prior = KL(q(x_T|x0) ‖ N(0, I)); everything a mean over dimensions
divided by ln 2 (the process's ``likelihood_terms`` / ``prior_bpd``, bench.core.ddpm). Decoders:

* ``discretized`` — IDDPM's discretised Gaussian over 256 bins of [−1, 1] (8-bit images): a
  discrete NLL upper bound, ≥ 0;
* ``gaussian`` — the continuous Gaussian density N(x0; μ_θ(x_1, 1), σ_1²) (2-D toys, continuous
  data): a bound on the differential entropy in bits/dim, which can be negative.

Estimators (``timesteps``):

* ``0`` — all T terms ("full"), T network calls per image, as IDDPM;
* ``K > 0`` — stratified: t = 0 always, and [1, T) cut into K contiguous strata S_k; per image one
  t_k ~ U(S_k) per stratum and the estimate Σ_k |S_k|·L_{t_k}, unbiased for Σ_{t≥1} L_t (each term
  has expectation Σ_{t∈S_k} L_t). K + 1 network calls per image. Recorded as ``stratified_K<K>``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from bench.core.ddpm import vlb_is_full
from bench.core.process import Process

DECODERS = ("auto", "discretized", "gaussian")


def estimator_name(T: int, timesteps: int) -> str:
    return f"full_T{T}" if vlb_is_full(T, timesteps) else f"stratified_K{timesteps}"


def likelihood_plan(process: Process, timesteps: int, ode_steps: int, probes: int) -> dict:
    """The process's likelihood estimate as evals.csv records it: ``metric``, ``estimator`` (its
    ``sampler`` column) and the network's forward ``passes`` per image. DDPM: the VLB with
    ``timesteps`` terms (``nll_bpd``); flow: the ODE likelihood with ``ode_steps`` Heun steps and
    ``probes`` Hutchinson probes, each one backward pass per forward (``nll_ode_bpd``)."""
    if process.name == "flow":
        return {"metric": "nll_ode_bpd", "estimator": f"ode_heun{ode_steps}_hutch{probes}",
                "passes": process.likelihood_passes(ode_steps)}
    return {"metric": "nll_bpd", "estimator": estimator_name(process.T, timesteps),
            "passes": process.likelihood_passes(timesteps)}


def strata(T: int, K: int) -> list[tuple[int, int]]:
    """K contiguous, near-equal [lo, hi) strata covering [1, T)."""
    if not 1 <= K <= T - 1:
        raise ValueError(f"the number of strata must be in [1, {T - 1}], got {K}")
    edges = np.linspace(1, T, K + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def term_bpd(model, process: Process, x0: Tensor, t: Tensor, noise: Tensor, decoder: str,
             clip: bool) -> Tensor:
    """L_t per example in bits/dim for (possibly different) timesteps t [B]."""
    x_t = process.noised(x0, t, noise)
    pred = model(x_t, process.model_time(t)).float()
    return process.likelihood_terms(pred, x0, x_t, t, decoder=decoder, clip=clip)


@torch.no_grad()
def bpd_batch(model, process: Process, x0: Tensor, generator: torch.Generator,
              timesteps: int = 0, decoder: str = "discretized", clip: bool = True,
              progress=None) -> dict[str, Tensor]:
    """Per-image bound of a batch: {"total", "prior", "terms"} (terms [B, T] for the full loop).

    ``generator`` is a CPU generator; noise is drawn on the CPU and moved (device-independent).
    """
    T, B, dev = process.T, x0.shape[0], x0.device
    total = process.prior_bpd(x0).float()
    prior = total.clone()
    full = vlb_is_full(T, timesteps)
    terms = torch.zeros(B, T, device=dev) if full else None
    if full:
        plan = [(t, t + 1, 1) for t in reversed(range(T))]
    else:
        plan = [(lo, hi, hi - lo) for lo, hi in reversed(strata(T, timesteps))] + [(0, 1, 1)]
    for lo, hi, weight in plan:
        if hi - lo == 1:
            t = torch.full((B,), lo, dtype=torch.long)
        else:
            t = torch.randint(lo, hi, (B,), generator=generator)
        noise = torch.randn(x0.shape, generator=generator).to(dev)
        vb = term_bpd(model, process, x0, t.to(dev), noise, decoder, clip)
        total = total + weight * vb
        if terms is not None:
            terms[:, lo] = vb
        if progress is not None:
            progress.update(1)
    return {"total": total, "prior": prior, "terms": terms}


def resolve_decoder(decoder: str, is_image: bool) -> str:
    if decoder not in DECODERS:
        raise ValueError(f"unknown NLL decoder {decoder!r}; valid: {', '.join(DECODERS)}")
    if decoder == "auto":
        return "discretized" if is_image else "gaussian"
    return decoder


def evaluate_nll(model, process: Process, split, n_images: int, generator: torch.Generator,
             device: torch.device, timesteps: int = 0, batch_size: int = 256,
             decoder: str = "discretized", clip: bool = True, progress: bool = False,
             ode_steps: int = 20, probes: int = 1) -> dict:
    """Mean bound over the first ``n_images`` of ``split`` (len/get): bpd, its standard error,
    the metric's name and its estimator. DDPM: the VLB (``nll_bpd``); flow: the ODE likelihood
    (``nll_ode_bpd``, ``ode_steps`` Heun steps, ``probes`` Hutchinson probes; dequantised for the
    ``discretized`` decoder, i.e. 8-bit images), which never shares a column with the VLB."""
    n = len(split) if n_images <= 0 else min(n_images, len(split))
    was_training = model.training
    model.eval()
    plan = likelihood_plan(process, timesteps, ode_steps, probes)
    calls = plan["passes"]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=calls * math.ceil(n / batch_size), desc="nll", unit="step", leave=False,
                   dynamic_ncols=True, mininterval=1.0)
    totals = []
    try:
        for i in range(0, n, batch_size):
            x0 = split.get(torch.arange(i, min(i + batch_size, n))).to(device)
            if plan["metric"] == "nll_ode_bpd":
                bpd = process.ode_bpd(model, x0, generator, steps=ode_steps, probes=probes,
                                      bin_width=2 / 255 if decoder == "discretized" else None,
                                      progress=bar)
            else:
                bpd = bpd_batch(model, process, x0, generator, timesteps, decoder, clip,
                                bar)["total"]
            totals.append(bpd.double().cpu())
    finally:
        model.train(was_training)
        if bar is not None:
            bar.close()
    tot = torch.cat(totals)
    return {"bpd": float(tot.mean()),
            "se": float(tot.std() / math.sqrt(len(tot))) if len(tot) > 1 else float("nan"),
            "n": len(tot), "metric": plan["metric"], "estimator": plan["estimator"]}
