"""``uniform_of``: another process's uniform on this one (the matched arms of findings §6). Checked
against the two uniforms themselves, simulated here independently of the strategy's code: t ~ U(0, 1)
mapped to λ for flow, the index i ~ U{0 … T − 1} and its λ_i for DDPM. The registry-wide checks
(χ² of the draws, determinism, smoke on both processes) are in tests/test_strategies_registry.py."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch

import strategies
from bench.core.ddpm import DDPM
from bench.core.flow import Flow

RNG = np.random.default_rng(0)


def build(on, **params):
    return strategies.build("uniform_of", on, params)


@pytest.mark.parametrize("process", [DDPM("linear", 1000), DDPM("cosine", 50), Flow(1000),
                                     Flow(64)], ids=["ddpm-linear", "ddpm-cosine-50", "flow",
                                                     "flow-64"])
def test_its_own_process_uniform_is_uniform(process):
    params = {"process": process.name}
    if process.name == "ddpm":
        params |= {"schedule": process.schedule, "timesteps": process.T}
    for normalise in (True, False):
        s = build(process, normalise=normalise, **params)
        T = process.grid.size
        assert torch.allclose(s.probabilities(), torch.full((T,), 1 / T, dtype=torch.float64),
                              rtol=1e-9, atol=0)
        assert torch.allclose(s.loss_weights(), torch.ones(T, dtype=torch.float64), rtol=1e-9)


def test_flow_uniform_on_ddpm_is_logistic_lambda_truncated_to_ddpms_range():
    ddpm = DDPM("linear", 1000)
    s = build(ddpm, process="flow")
    lam_i = torch.log(ddpm.snr).numpy()                          # decreasing
    t = RNG.random(2_000_000)
    lam = 2 * np.log((1 - t) / t)                                # flow's uniform t, as λ
    half = 0.5 * (lam_i[0] - lam_i[1]), 0.5 * (lam_i[-2] - lam_i[-1])
    lam = lam[(lam <= lam_i[0] + half[0]) & (lam >= lam_i[-1] - half[1])]
    # the index whose λ is nearest (midpoint intervals), by bisection on the ascending table
    asc = lam_i[::-1]
    j = np.clip(np.searchsorted(asc, lam), 1, asc.size - 1)
    j = np.where(np.abs(asc[j - 1] - lam) < np.abs(asc[j] - lam), j - 1, j)
    idx = asc.size - 1 - j
    obs = np.bincount(idx // 50, minlength=20)                   # 20 groups of 50 indices
    exp = s.probabilities().numpy().reshape(20, 50).sum(1) * idx.size
    assert scipy.stats.chisquare(obs, exp).pvalue > 1e-3
    # 1.6 % of the logistic's mass lies beyond DDPM's λ range and is dropped, not piled up
    assert 0.01 < 1 - idx.size / t.size < 0.02
    assert s.probabilities()[-1] < 3 * s.probabilities()[-2]


def test_flow_uniform_on_ddpm_weights_noise_levels_as_flow_does():
    """p(λ)·w(λ) per unit λ is e^(−λ/2)/2 under flow's uniform t (its velocity loss on the
    ε-scale); unnormalised, the DDPM cells carry that mass."""
    ddpm = DDPM("linear", 1000)
    s = build(ddpm, process="flow", normalise=False)
    lam = torch.log(ddpm.snr).numpy()
    width = np.abs(np.gradient(lam))                             # each index's λ interval
    product = (s.probabilities() * s.loss_weights()).numpy()
    expected = 0.5 * np.exp(-lam / 2) * width
    expected /= 1 / (1 + np.exp(lam[-1] / 2)) - 1 / (1 + np.exp(lam[0] / 2))   # the kept mass
    ratio = product[1:-1] / expected[1:-1]
    # to second order in a cell's width: 3 % at the first indices (λ steps of 0.7), then < 0.5 %
    assert np.allclose(ratio, 1.0, rtol=0.04) and np.allclose(ratio[10:], 1.0, rtol=0.005)
    w = s.loss_weights().numpy()
    assert np.allclose(w, (1 + np.exp(-lam / 2)) ** 2)           # (1 − t)⁻² at t = sigmoid(−λ/2)
    normalised = build(ddpm, process="flow").loss_weights()
    assert np.isclose(float((s.probabilities() * normalised).sum()), 1.0)
    assert np.allclose(normalised.numpy() / w, normalised[0].item() / w[0])


def test_ddpm_uniform_on_flow_has_ddpms_noise_levels_and_eps_loss():
    flow, ddpm = Flow(1000), DDPM("linear", 1000)
    s = build(flow, process="ddpm", normalise=False)
    p = s.probabilities().numpy()
    t_i = 1 / (1 + np.sqrt(ddpm.snr.numpy()))                    # t = sigmoid(−λ/2) of each index
    centres = flow.t_centres.numpy()
    for t_star in (0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 0.95, 0.99):
        below = p[centres < t_star].sum()
        assert abs(below - (t_i < t_star).mean()) < 3e-3, t_star     # within a cell's worth
    assert p[centres < 0.7 * t_i[0]].sum() == 0 and p[centres > t_i[-1] + 0.01].sum() == 0
    # weight 1 on the ε-MSE: (1 − t)² on the velocity MSE
    assert np.allclose(s.loss_weights().numpy(), (1 - centres) ** 2)


def test_draws_follow_the_table_and_never_land_on_an_empty_cell():
    s = build(Flow(1000), process="ddpm")
    draw = s.sample(torch.zeros(200_000, 2), torch.Generator().manual_seed(1))
    p = s.probabilities()
    assert (p[draw.t] > 0).all()
    emp = torch.bincount(draw.t, minlength=1000).double() / draw.t.numel()
    assert float((emp - p).abs().sum()) / 2 < 0.05
    assert torch.equal(draw.loss_weight, s.loss_weights()[draw.t].float())


@pytest.mark.parametrize("params, message", [
    ({"process": "edm"}, "unknown process 'edm'; valid: ddpm, flow"),
    ({"schedule": "sqrt"}, "unknown schedule 'sqrt'; valid: linear, cosine, quad"),
    ({"timesteps": 10}, "the linear schedule needs timesteps >= 21"),
    ({"normalise": "yes"}, "normalise must be true or false"),
])
def test_bad_parameters_are_refused_by_name(params, message):
    with pytest.raises(ValueError, match="uniform_of: .*" + message.replace("(", r"\(")):
        build(DDPM("linear", 100), **params)
