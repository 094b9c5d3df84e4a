"""Golden tests of the practitioners' strategies (SD3/Flux densities and weights, shift, U-shaped,
Beta, power-law, debiased, soft-min-SNR, the flow-matching curriculum, stratified draws): each
against its source's own formula and conventions, written here independently of the strategy's
code — the source's sampler run in numpy where it has one, its literal values where it gives them.
The registry-wide checks (χ², determinism, state, smoke on both processes) are in
tests/test_strategies_registry.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

import strategies
from bench.core.ddpm import DDPM
from bench.core.flow import Flow

K = 1000
FLOW = Flow(K)
RNG = np.random.default_rng(0)


def flow_strategy(name, **params):
    return strategies.build(name, FLOW, params)


def cell_masses_of(t: np.ndarray) -> np.ndarray:
    """Empirical mass of each of the K flow cells of draws t ∈ [0, 1] (t = 1 noise)."""
    return np.bincount(np.minimum((t * K).astype(np.int64), K - 1), minlength=K) / t.size


def assert_same_law(p: torch.Tensor, t: np.ndarray, bins: int = 50):
    """``p`` (cell masses) against source draws ``t``: χ² on ``bins`` equal groups of cells."""
    obs = np.bincount(np.minimum((t * bins).astype(np.int64), bins - 1), minlength=bins)
    exp = p.double().numpy().reshape(bins, -1).sum(1) * t.size
    keep = exp > 5
    pval = scipy.stats.chisquare(obs[keep], exp[keep] * obs[keep].sum() / exp[keep].sum()).pvalue
    assert pval > 1e-3, pval


# --------------------------------------------------------------------------- SD3 densities
def test_mode_matches_diffusers_formula_and_is_uniform_at_scale_0():
    u = RNG.random(400_000)
    s = 1.29          # diffusers' mode_scale default in its SD3/Flux scripts
    t = 1 - u - s * (np.cos(math.pi * u / 2) ** 2 - 1 + u)      # compute_density_…("mode")
    assert_same_law(flow_strategy("mode").probabilities(), t)
    p0 = flow_strategy("mode", scale=0.0).probabilities()
    assert torch.allclose(p0, torch.full((K,), 1 / K, dtype=torch.float64), atol=1e-12)


def test_cosmap_density_is_sd3s_and_its_weight_diffusers():
    t = (torch.arange(K, dtype=torch.float64) + 0.5) / K
    p = flow_strategy("cosmap").probabilities()
    density = 2 / (math.pi * (1 - 2 * t + 2 * t**2))             # SD3 eq. (π_CosMap)
    assert torch.allclose(p * K, density, rtol=1e-5)
    u = RNG.random(400_000)
    assert_same_law(p, 1 - 1 / (np.tan(math.pi * u / 2) + 1))   # the paper's t = f(u)
    w = flow_strategy("cosmap", use="weight")
    sigmas = t                                                   # σ = t on this suite's flow
    bot = 1 - 2 * sigmas + 2 * sigmas**2                         # compute_loss_weighting_for_sd3
    assert torch.allclose(w.loss_weights(), 2 / (math.pi * bot), rtol=1e-12)
    assert torch.allclose(w.probabilities(), torch.full((K,), 1 / K, dtype=torch.float64))


def test_lognormal_is_sd3s_logit_normal_and_diffusers_mean_is_the_opposite_sign():
    """diffusers indexes a descending table: σ = 1 − ⌊1000u⌋/1000 for u = sigmoid(N(m, s)), so
    its logit_mean m is −m here (harmless at m = 0)."""
    m = 0.5
    u = 1 / (1 + np.exp(-RNG.normal(m, 1.0, 400_000)))
    sigma = 1 - np.floor(u * K) / K                             # noise_scheduler.timesteps[idx]
    ours = flow_strategy("lognormal", m=-m, discretise="floor").probabilities()
    assert_same_law(ours, np.clip(sigma - 0.5 / K, 0, 1))       # edge values → their cell
    same_sign = flow_strategy("lognormal", m=m, discretise="floor").probabilities()
    assert float((same_sign[: K // 2]).sum()) < 0.35 < float((ours[: K // 2]).sum())


# --------------------------------------------------------------------------- other densities
def test_u_shaped_literals_and_the_rfpp_sampler():
    a4 = flow_strategy("u_shaped", a=4.0).probabilities() * K
    assert float(a4[0]) == pytest.approx(2 / math.tanh(2), rel=2e-3)   # ≈ 2.07 at the ends
    assert float(a4[-1]) == pytest.approx(2.0746, rel=2e-3)
    assert float(a4[K // 2]) == pytest.approx(2 / math.sinh(2), rel=1e-3)  # ≈ 0.55 at ½
    # rfpp t_dist.py: t from C·exp(a·t) on [0, 1] by inverse CDF, then mixed half/half with 1 − t
    a, n = 2.0, 400_000                                          # its argparse default a
    t = np.log1p(RNG.random(n) * (math.exp(a) - 1)) / a
    t = np.where(RNG.random(n) < 0.5, t, 1 - t)
    assert_same_law(flow_strategy("u_shaped").probabilities(), t)


def test_beta_t_is_scipys_beta_with_the_b_ttdm_defaults():
    p = flow_strategy("beta_t").probabilities()
    edges = np.arange(K + 1) / K
    want = np.diff(scipy.stats.beta(0.8, 1.0).cdf(edges))
    assert np.allclose(p.numpy(), want, atol=1e-12)
    # OneTrainer (PR #1225) with β = 1: u = rand^(1/α), high timestep = noise
    assert_same_law(p, RNG.random(400_000) ** (1 / 0.8))
    st = flow_strategy("beta_t", alpha=2.0, beta=2.0).probabilities()   # SimpleTuner's 2/2
    assert int(st.argmax()) in (K // 2 - 1, K // 2)


def test_power_law_is_dingos_prior_on_the_reversed_time():
    """dingo sample_t: s = v^(1/(1+α)) with s = 1 the data; this suite's t = 1 − s."""
    s = RNG.random(400_000) ** (1 / (1 + 1.0))
    p = flow_strategy("power_law").probabilities()
    assert_same_law(p, 1 - s)
    assert float(p[: K // 2].sum()) == pytest.approx(1 - 0.5**2, abs=1e-12)   # towards the data


# --------------------------------------------------------------------------- weights
def test_debiased_is_the_official_inverse_sqrt_snr_with_its_mean_weight():
    d = DDPM("linear", 1000)
    w = strategies.build("debiased", d, {}).loss_weights()
    abar = d.alphas_cumprod.double()
    snr = 1.0 / (1 - abar) - 1                                  # the official code's snr
    assert torch.allclose(w, 1 / snr.sqrt(), rtol=1e-12)
    assert float(w.mean()) == pytest.approx(17.817, abs=1e-3)   # over the linear schedule
    kohya = strategies.build("debiased", d, {"max_snr": 1000}).loss_weights()
    assert torch.allclose(kohya, 1 / snr.clamp(max=1000).sqrt(), rtol=1e-12)
    t = (torch.arange(K, dtype=torch.float64) + 0.5) / K
    assert torch.allclose(flow_strategy("debiased").loss_weights(), t * (1 - t), rtol=1e-12)


def test_soft_min_snr_is_k_diffusions_weight_on_the_eps_loss():
    """k-diffusion: c_weight = (σσ_d)²/(σ² + σ_d²)² on the preconditioned target, whose error is
    the denoised error / c_out, c_out = σσ_d/√(σ² + σ_d²); the ε error is the denoised one / σ."""
    d, sd = DDPM("cosine", 1000), 0.5
    abar = d.alphas_cumprod.double()
    sigma = ((1 - abar) / abar).sqrt()                            # VP ↔ VE
    c_weight = (sigma * sd) ** 2 / (sigma**2 + sd**2) ** 2
    c_out2 = (sigma * sd) ** 2 / (sigma**2 + sd**2)
    eps_weight = c_weight / c_out2 * sigma**2
    w = strategies.build("soft_min_snr", d, {}).loss_weights()
    assert torch.allclose(w, eps_weight, rtol=1e-9)
    t = (torch.arange(K, dtype=torch.float64) + 0.5) / K
    want = t**2 * (1 - t) ** 2 / (t**2 + sd**2 * (1 - t) ** 2)   # the derived flow form
    assert torch.allclose(flow_strategy("soft_min_snr").loss_weights(), want, rtol=1e-12)


def test_sigma_sqrt_is_diffusers_inverse_square_sigma():
    t = (torch.arange(K, dtype=torch.float64) + 0.5) / K
    assert torch.allclose(flow_strategy("sigma_sqrt").loss_weights(), t**-2.0, rtol=1e-12)


@pytest.mark.parametrize("name", ["debiased", "soft_min_snr"])
def test_derived_flow_weights_are_the_eps_weight_of_the_same_prediction(name):
    """On flow a v-weighted loss equals the ε-weighted loss of the same prediction."""
    f = Flow(20)
    i = torch.arange(20)
    t = f.time(i)[:, None]
    x0, eps, v_hat = (torch.randn(20, 6, dtype=torch.float64) for _ in range(3))
    x_t = f.noised(x0, i, eps)
    eps_mse = ((eps - (x_t + (1 - t) * v_hat)) ** 2).mean(1)
    eps_w = {"debiased": 1 / f.snr.sqrt(), "soft_min_snr": 1 / (1 + 0.25 * f.snr)}[name]
    v_loss = strategies.build(name, f, {}).loss_weights() * f.loss(v_hat, f.target(x0, eps))
    assert torch.allclose(v_loss, eps_w * eps_mse, rtol=1e-10)


# --------------------------------------------------------------------------- curriculum
def test_fm_curriculum_switches_from_logit_normal_to_uniform_at_its_step():
    s = flow_strategy("fm_curriculum", switch_step=3)
    ln = flow_strategy("lognormal", discretise="floor").probabilities()
    for step in range(5):
        p = s.probabilities()
        want = ln if step < 3 else torch.full((K,), 1 / K, dtype=torch.float64)
        assert torch.allclose(p, want, atol=1e-12), step
        s.after_update(None)
    assert s.state_dict() == {"steps": 5}


# --------------------------------------------------------------------------- shift
def test_shift_is_sd3s_map_and_fluxs_mu_at_1024_pixels():
    from strategies._shift import flux_shift, shift_t
    assert flux_shift(4096) == pytest.approx(math.exp(1.15)) and math.exp(1.15) == \
        pytest.approx(3.158, abs=1e-3)
    assert flux_shift(256) == pytest.approx(math.exp(0.5))
    # diffusers FlowMatchEulerDiscreteScheduler: sigmas = shift·σ / (1 + (shift − 1)·σ)
    sig = torch.linspace(1, 1000, 1000, dtype=torch.float64) / 1000
    assert torch.allclose(shift_t(sig, 3.0), 3 * sig / (1 + 2 * sig))
    # λ' = λ − 2 ln s: the shift moves log-SNR by a constant
    t = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    lam = lambda x: 2 * torch.log((1 - x) / x)                   # noqa: E731
    assert torch.allclose(lam(shift_t(t, 3.0)), lam(t) - 2 * math.log(3.0))


def test_shifted_uniform_has_the_shifted_law():
    s = strategies.build("compose", FLOW, {"shift": 3.0})
    y = np.arange(K + 1) / K
    want = np.diff(y / (3 - 2 * y))                              # P(t' ≤ y) = shift⁻¹(y)
    assert np.allclose(s.probabilities().numpy(), want, atol=1e-12)
    u = RNG.random(400_000)
    assert_same_law(s.probabilities(), 3 * u / (1 + 2 * u))


# --------------------------------------------------------------------------- stratified
def test_stratified_draws_cover_every_stratum_once_and_keep_the_marginal():
    s = strategies.build("compose", FLOW, {"stratified": True})
    g = torch.Generator().manual_seed(0)
    d = s.sample(torch.zeros(K, 2), g)
    assert torch.equal(d.t.sort().values, torch.arange(K))      # B = K: one draw per cell
    m = strategies.build("compose", FLOW, {"sampler": {"name": "mode"}, "stratified": True})
    draws = torch.cat([m.sample(torch.zeros(64, 2), g).t for _ in range(3000)])
    obs = torch.bincount(draws // 20, minlength=50).numpy()
    exp = m.probabilities().reshape(50, 20).sum(1).numpy() * draws.numel()
    assert scipy.stats.chisquare(obs, exp).pvalue > 1e-3


def test_stratified_is_refused_for_a_draw_that_is_not_an_inverse_cdf():
    with pytest.raises(ValueError, match="stratified needs a sampler whose draw is an inverse "
                                         "CDF; 'speed'.*Valid: .*uniform"):
        strategies.build("compose", DDPM("linear", 100),
                         {"sampler": {"name": "speed"}, "stratified": True})
