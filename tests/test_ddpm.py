"""The diffusion process against closed forms computed here, independently of bench.core.ddpm."""

import math

import numpy as np
import pytest
import torch

from bench.core.ddpm import DDPM, make_betas, normal_kl


@pytest.mark.parametrize("T", [1000, 200])
def test_linear_and_quad_schedules(T):
    lin = make_betas("linear", T)
    s = 1000 / T
    assert lin[0] == pytest.approx(1e-4 * s) and lin[-1] == pytest.approx(0.02 * s)
    assert np.allclose(np.diff(lin), (0.02 - 1e-4) * s / (T - 1))
    quad = make_betas("quad", T)
    assert quad[0] == pytest.approx(1e-4) and quad[-1] == pytest.approx(0.02)
    assert np.allclose(np.sqrt(quad), np.linspace(0.01, math.sqrt(0.02), T))


def test_cosine_schedule_closed_form_and_clip():
    T = 1000
    b = make_betas("cosine", T)
    f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    # abar_i = f((i+1)/T)/f(0) wherever no clip bit (all but the last index).
    abar = np.cumprod(1 - b)
    for i in (0, 10, 500, 998):
        assert abar[i] == pytest.approx(f((i + 1) / T) / f(0), rel=1e-9)
    assert b[-1] == 0.999 and b[-2] < 0.999


def test_unknown_schedule_lists_choices():
    with pytest.raises(ValueError, match="linear, cosine, quad"):
        make_betas("sigmoid", 10)
    with pytest.raises(ValueError, match="fixed_large, fixed_small"):
        DDPM("linear", 10, variance="learned")


def test_q_sample_moments():
    d = DDPM("linear", 1000)
    x0 = torch.full((200000, 1), 0.5)
    t = torch.full((200000,), 300)
    xt = d.q_sample(x0, t, torch.randn(x0.shape, generator=torch.Generator().manual_seed(0)))
    abar = np.prod(1 - make_betas("linear", 1000)[:301])
    assert xt.mean().item() == pytest.approx(math.sqrt(abar) * 0.5, abs=5e-3)
    assert xt.var().item() == pytest.approx(1 - abar, rel=1e-2)


def test_posterior_is_the_gaussian_product():
    """q(x_{t-1}|x_t,x0) ∝ N(x_{t-1}; √abar_{t-1} x0, 1-abar_{t-1}) · N(x_t; √α_t x_{t-1}, β_t)."""
    d = DDPM("cosine", 100)
    b = make_betas("cosine", 100)
    abar = np.cumprod(1 - b)
    i = 40
    x0, xt = torch.tensor([[0.3]]), torch.tensor([[-0.7]])
    mean, logvar = d.q_posterior(x0, xt, torch.tensor([i]))
    prec = 1 / (1 - abar[i - 1]) + (1 - b[i]) / b[i]
    m = (math.sqrt(abar[i - 1]) * 0.3 / (1 - abar[i - 1]) + math.sqrt(1 - b[i]) * -0.7 / b[i]) / prec
    assert mean.item() == pytest.approx(m, rel=1e-5)
    assert math.exp(logvar.item()) == pytest.approx(1 / prec, rel=1e-5)


def test_eps_x0_roundtrip():
    d = DDPM("quad", 50)
    x0, eps = torch.randn(4, 3), torch.randn(4, 3)
    t = torch.tensor([0, 10, 30, 49])
    xt = d.q_sample(x0, t, eps)
    assert torch.allclose(d.predict_x0(xt, t, eps), x0, atol=1e-4)
    assert torch.allclose(d.predict_eps(xt, t, x0), eps, atol=1e-3)


@pytest.mark.parametrize("variance", ["fixed_large", "fixed_small"])
def test_vb_terms_with_perfect_eps(variance):
    """With ε̂ = ε the model mean equals the true posterior mean, so KL depends only on variances."""
    T = 100
    d = DDPM("linear", T, variance)
    b = make_betas("linear", T)
    abar = np.cumprod(1 - b)
    abar_prev = np.append(1, abar[:-1])
    pv = b * (1 - abar_prev) / (1 - abar)
    x0 = torch.rand(3, 1, 4, 4) * 2 - 1
    eps = torch.randn_like(x0)
    for i in (1, 2, 50, 99):
        t = torch.full((3,), i)
        xt = d.q_sample(x0, t, eps)
        vb = d.vb_terms_bpd(eps, x0, xt, t)
        model_var = b[i] if variance == "fixed_large" else pv[i]
        expect = 0.5 * (-1 + math.log(model_var) - math.log(pv[i]) + pv[i] / model_var) / math.log(2)
        assert torch.allclose(vb, torch.full((3,), expect, dtype=vb.dtype), atol=1e-5), i


def test_decoder_nll_matches_exact_gaussian_bins():
    """t = 0: −log of the Gaussian mass of the 8-bit bin (exact erf here vs the tanh approximation)."""
    d = DDPM("linear", 1000, "fixed_small")
    x0 = torch.tensor([[0.0, 0.5, -1.0, 1.0]]).reshape(1, 1, 2, 2)
    eps = torch.zeros_like(x0)
    t = torch.zeros(1, dtype=torch.long)
    xt = d.q_sample(x0, t, eps)
    nll = d.vb_terms_bpd(eps, x0, xt, t).item()
    b = make_betas("linear", 1000)
    std = math.sqrt(b[1] * b[0] / (1 - (1 - b[0]) * (1 - b[1])))  # posterior variance at index 1
    Phi = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    logs = []
    for v in (0.0, 0.5, -1.0, 1.0):
        lo = -math.inf if v < -0.999 else (v - 1 / 255 - v) / std
        hi = math.inf if v > 0.999 else (v + 1 / 255 - v) / std
        p = (1.0 if hi == math.inf else Phi(hi)) - (0.0 if lo == -math.inf else Phi(lo))
        logs.append(-math.log(p))
    assert nll == pytest.approx(np.mean(logs) / math.log(2), rel=2e-3)


def test_prior_closed_form():
    d = DDPM("quad", 1000)
    abar = np.prod(1 - make_betas("quad", 1000))
    x0 = torch.full((1, 5), 0.8)
    m, v = math.sqrt(abar) * 0.8, 1 - abar
    expect = 0.5 * (-1 - math.log(v) + v + m * m) / math.log(2)
    assert d.prior_bpd(x0).item() == pytest.approx(expect, rel=1e-3)  # float32 cancellation


def test_normal_kl_zero_for_equal():
    a = torch.randn(5)
    assert torch.allclose(normal_kl(a, a * 0 + 0.3, a, a * 0 + 0.3), torch.zeros(5))


class PointMassDenoiser(torch.nn.Module):
    """The exact ε-prediction for data = a point mass at c: ε = (x_t − √abar c)/√(1−abar)."""

    def __init__(self, d: DDPM, c: float):
        super().__init__()
        self.d, self.c = d, c

    def forward(self, x, t):
        abar = self.d._at(self.d.alphas_cumprod, t, x)
        return (x - abar.sqrt() * self.c) / (1 - abar).sqrt()


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "ddim_eta1"])
def test_samplers_recover_a_point_mass(sampler):
    d = DDPM("linear", 200)
    model = PointMassDenoiser(d, 0.4)
    g = torch.Generator().manual_seed(0)
    if sampler == "ddpm":
        x = d.sample_ddpm(model, (64, 2), g)
    else:
        x = d.sample_ddim(model, (64, 2), g, steps=20, eta=1.0 if sampler == "ddim_eta1" else 0.0)
    assert torch.allclose(x, torch.full_like(x, 0.4), atol=2e-2)


def test_ddim_timesteps():
    d = DDPM("linear", 1000)
    seq = d.ddim_timesteps(10)
    assert seq[0] == 0 and seq[-1] == 999 and len(seq) == 10
    with pytest.raises(ValueError, match=r"\[1, 1000\]"):
        d.ddim_timesteps(0)
