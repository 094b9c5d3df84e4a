"""The bits/dim bound (bench.evaluation.nll) against a closed form, its stratified estimator, and a digits run.

Closed form. Data x0 ~ N(μ, s²) i.i.d. per dimension; with x_t = a·x0 + b·ε (a² = ᾱ_t, b² = 1 − ᾱ_t)
the MMSE noise prediction is ε̂(x_t) = E[ε | x_t] = b(x_t − aμ)/(a²s² + b²), which minimises every
term of the bound (fixed variances), and Var(x0 | x_t) = s²b²/(a²s² + b²). For t ≥ 1 the model mean
and the posterior mean differ by coef1_t·(x0 − x̂0), so per dimension (nats)

    E L_t = ½[−1 + ln σ_t² − ln σ̃_t² + σ̃_t²/σ_t² + coef1_t²·Var(x0|x_t)/σ_t²],

at t = 0 (coef1 = 1, coef2 = 0; Gaussian decoder) E L_0 = ½ ln(2πσ_0²) + Var(x0|x_1)/(2σ_0²), and
the prior E KL(N(a x0, b²) ‖ N(0, 1)) = ½(−1 − ln b² + b² + a²(μ² + s²)). The schedule is rebuilt
here from its definition, not read from bench.core.ddpm.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bench.evaluation import nll
from bench.core.ddpm import DDPM


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


T, D, MU, S = 100, 16, 0.3, 0.5


def closed_form_terms(T: int, mu: float, s: float) -> tuple[np.ndarray, float]:
    """Expected per-t terms [T] and prior, nats per dimension (linear schedule, fixed-large)."""
    beta = np.linspace(1e-4 * 1000 / T, 0.02 * 1000 / T, T)
    abar = np.cumprod(1 - beta)
    abar_prev = np.append(1.0, abar[:-1])
    post_var = beta * (1 - abar_prev) / (1 - abar)
    q_logvar = np.log(np.append(post_var[1], post_var[1:]))      # clipped posterior variance
    p_var = np.append(post_var[1], beta[1:])                        # fixed-large model variance
    coef1 = beta * np.sqrt(abar_prev) / (1 - abar)
    cond_var = s * s * (1 - abar) / (abar * s * s + 1 - abar)      # Var(x0 | x_t)
    L = 0.5 * (-1 + np.log(p_var) - q_logvar + np.exp(q_logvar) / p_var
               + coef1**2 * cond_var / p_var)
    L[0] = 0.5 * np.log(2 * np.pi * p_var[0]) + cond_var[0] / (2 * p_var[0])
    prior = 0.5 * (-1 - np.log(1 - abar[-1]) + 1 - abar[-1] + abar[-1] * (mu * mu + s * s))
    return L, prior


class OptimalDenoiser(torch.nn.Module):
    def __init__(self, diffusion: DDPM, mu: float, s: float):
        super().__init__()
        self.abar, self.mu, self.s = diffusion.alphas_cumprod, mu, s

    def forward(self, x, t):
        abar = self.abar.to(x.dtype)[t].reshape(-1, *([1] * (x.dim() - 1)))
        a, b = abar.sqrt(), (1 - abar).sqrt()
        return b * (x - a * self.mu) / (a * a * self.s**2 + b * b)


@pytest.fixture(scope="module")
def setup():
    diffusion = DDPM("linear", T, "fixed_large")
    g = torch.Generator().manual_seed(0)
    x0 = MU + S * torch.randn(2000, D, generator=g)
    return diffusion, OptimalDenoiser(diffusion, MU, S), x0


def test_full_bound_matches_closed_form(setup):
    diffusion, model, x0 = setup
    L, prior = closed_form_terms(T, MU, S)
    out = nll.bpd_batch(model, diffusion, x0, torch.Generator().manual_seed(1), timesteps=0,
                        decoder="gaussian", clip=False)
    tot = out["total"].double()
    se = float(tot.std()) / math.sqrt(len(tot))
    expected = (L.sum() + prior) / math.log(2)
    assert abs(float(tot.mean()) - expected) < 4 * se, (float(tot.mean()), expected, se)
    # every per-t term, too (bits/dim), within 5 standard errors
    terms = out["terms"].double()
    se_t = terms.std(0) / math.sqrt(terms.shape[0])
    gap = (terms.mean(0) - torch.from_numpy(L / math.log(2))).abs()
    assert bool((gap < 5 * se_t + 1e-6).all()), float((gap / se_t).max())
    assert out["prior"].mean().item() == pytest.approx(prior / math.log(2), rel=0.05)


def test_stratified_estimator_is_unbiased(setup):
    diffusion, model, x0 = setup
    L, prior = closed_form_terms(T, MU, S)
    expected = (L.sum() + prior) / math.log(2)
    est = torch.cat([nll.bpd_batch(model, diffusion, x0, torch.Generator().manual_seed(r), 10,
                                   "gaussian", False)["total"].double() for r in range(3)])
    se = float(est.std()) / math.sqrt(len(est))
    assert abs(float(est.mean()) - expected) < 4 * se, (float(est.mean()), expected, se)


def test_strata_partition_and_estimator_names():
    for T_, K in ((1000, 50), (100, 7), (10, 9)):
        st = nll.strata(T_, K)
        assert len(st) == K and st[0][0] == 1 and st[-1][1] == T_
        assert all(a[1] == b[0] and a[0] < a[1] for a, b in zip(st, st[1:]))
    with pytest.raises(ValueError):
        nll.strata(100, 100)
    assert nll.estimator_name(1000, 0) == "full_T1000"
    assert nll.estimator_name(1000, 50) == "stratified_K50"


def test_discretized_decoder_on_images_is_positive_and_finite():
    diffusion = DDPM("linear", 50)
    x0 = (torch.randint(0, 17, (8, 1, 8, 8)).float() / 16) * 2 - 1

    def zero(x, t):
        return torch.zeros_like(x)

    out = nll.bpd_batch(zero, diffusion, x0, torch.Generator().manual_seed(0), 0, "discretized")
    assert torch.isfinite(out["total"]).all() and (out["total"] > 0).all()
    with pytest.raises(ValueError, match="decoder"):
        nll.resolve_decoder("bogus", True)


def test_digits_model_gets_finite_bpd_that_improves_with_training(tmp_path):
    """A short digits run, evaluated by the trainer callback at steps 10 and 150 (common noise)."""
    import pandas as pd

    from bench import config as C
    from bench import experiment

    cfg = C.resolve({
        "name": "digits_nll", "dataset": {"name": "digits"},
        "backbone": {"name": "unet", "ch": 8, "ch_mult": [1], "num_res_blocks": 1,
                     "attn_resolutions": [], "dropout": 0.0},
        "diffusion": {"timesteps": 200},
        "train": {"iterations": 150, "batch_size": 32, "lr": 3e-3, "ema_decay": 0.9,
                  "log_every": 50, "ckpt_every": 150, "device": "cpu"},
        "eval": {"at": [10, 150], "metrics": ["nll"],
                 "nll": {"n_images": 96, "timesteps": 20, "batch_size": 96}},
    })
    experiment.run(cfg, tmp_path / "run", progress=False)
    ev = pd.read_csv(tmp_path / "run" / "evals.csv")
    assert list(ev["step"]) == [10, 150] and set(ev["metric"]) == {"nll_bpd"}
    assert set(ev["sampler"]) == {"stratified_K20"} and set(ev["n_samples"]) == {96}
    v = ev["value"].to_numpy()
    assert np.isfinite(v).all() and (v > 0).all()
    assert v[1] < v[0] - 0.5, v
    assert (ev["wall_s_eval"] > 0).all() and ev["wall_s_train"].is_monotonic_increasing
