"""The Process contract (bench.core.process) and DDPM behind it: the contract's pieces are the
DDPM maths they name, the time grid tabulates discrete and continuous time, and the one
constructor builds the process a config section names."""

from __future__ import annotations

import math

import pytest
import torch

from bench.core import processes
from bench.core.ddpm import DDPM
from bench.core.process import Process, TimeGrid


def test_the_training_pieces_are_ddpm_eps_prediction():
    d = DDPM("linear", 100)
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)
    t = torch.tensor([0, 5, 17, 50, 98, 99])
    abar = d.alphas_cumprod[t].float()[:, None]
    assert torch.equal(d.noised(x0, t, noise), d.q_sample(x0, t, noise))
    assert torch.allclose(d.noised(x0, t, noise), abar.sqrt() * x0 + (1 - abar).sqrt() * noise)
    assert torch.equal(d.target(x0, noise), noise)
    assert torch.equal(d.model_time(t), t)
    pred = torch.randn(6, 3, generator=g)
    assert torch.allclose(d.loss(pred, noise), ((noise - pred) ** 2).mean(dim=1))
    assert d.loss(pred.to(torch.bfloat16), noise).dtype == torch.float32   # upcast, never down
    assert d.loss(pred.double(), noise.double()).dtype == torch.float64


def test_losses_runs_the_network_at_the_model_time():
    d = DDPM("cosine", 50)
    seen = []

    def net(x, t):
        seen.append(t)
        return torch.zeros_like(x)
    x0, noise, t = torch.ones(4, 2), torch.full((4, 2), 2.0), torch.tensor([1, 2, 3, 4])
    assert torch.allclose(d.losses(net, x0, t, noise), torch.full((4,), 4.0))
    assert torch.equal(seen[0], t)


def test_log_snr_and_the_snr_table():
    d = DDPM("linear", 1000)
    t = torch.tensor([0, 499, 999])
    assert torch.allclose(d.log_snr(t), torch.log(d.alphas_cumprod[t] / (1 - d.alphas_cumprod[t])))
    assert d.snr.shape == (d.grid.size,) and d.grid.size == 1000


def test_pass_counts_of_samplers_and_likelihood():
    d = DDPM("linear", 1000)
    assert d.sample_passes("ddpm", 7) == 1000
    assert d.sample_passes("ddim", 50) == len(d.ddim_timesteps(50)) == 50
    assert d.likelihood_passes(0) == d.likelihood_passes(999) == 1000
    assert d.likelihood_passes(50) == 51
    with pytest.raises(ValueError, match=r"unknown sampler 'euler' for the ddpm process; valid: "
                                         r"ddpm, ddim"):
        d.sample_passes("euler", 10)


def test_sample_counts_one_progress_step_per_network_pass():
    d = DDPM("linear", 30)
    calls = []

    class Bar:
        def update(self, n):
            calls.append(n)
    for sampler, steps in (("ddpm", 0), ("ddim", 7)):
        calls.clear()
        x = d.sample(lambda x, t: torch.zeros_like(x), (2, 3), torch.Generator().manual_seed(1),
                     sampler=sampler, steps=steps, progress=Bar())
        assert x.shape == (2, 3) and len(calls) == d.sample_passes(sampler, steps)


def test_likelihood_terms_decoders():
    d = DDPM("linear", 100)
    g = torch.Generator().manual_seed(3)
    x0 = torch.rand(4, 5, generator=g) * 2 - 1
    noise, pred = torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g)
    t = torch.tensor([0, 0, 10, 60])
    x_t = d.noised(x0, t, noise)
    disc = d.likelihood_terms(pred, x0, x_t, t, decoder="discretized")
    kl = d.likelihood_terms(pred, x0, x_t, t, decoder="kl")
    gauss = d.likelihood_terms(pred, x0, x_t, t, decoder="gaussian")
    assert torch.equal(disc, d.vb_terms_bpd(pred, x0, x_t, t, decoder_at_zero=True))
    assert torch.equal(kl, d.vb_terms_bpd(pred, x0, x_t, t, decoder_at_zero=False))
    assert torch.equal(disc[2:], kl[2:]) and torch.equal(gauss[2:], kl[2:])   # t ≥ 1: the KL
    assert not torch.equal(gauss[:2], kl[:2])
    with pytest.raises(ValueError, match="unknown decoder 'x'; valid: discretized, gaussian, kl"):
        d.likelihood_terms(pred, x0, x_t, t, decoder="x")


def test_time_grid_discrete_and_continuous():
    g = TimeGrid(10)
    t = torch.tensor([0, 3, 9])
    assert torch.equal(g.cell(t), t)
    assert g.bins(torch.arange(10), 5).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    c = TimeGrid(4, discrete=False)
    assert c.cell(torch.tensor([0.0, 0.2499, 0.25, 0.99, 1.0])).tolist() == [0, 0, 1, 3, 3]
    assert c.bins(torch.tensor([0.0, 0.5, 1.0]), 2).tolist() == [0, 1, 1]


def test_the_one_constructor():
    d = processes.build({"schedule": "cosine", "timesteps": 64, "variance": "fixed_small"})
    assert isinstance(d, DDPM) and isinstance(d, Process)
    assert (d.schedule, d.T, d.variance, d.name) == ("cosine", 64, "fixed_small", "ddpm")
    ref = DDPM("cosine", 64, "fixed_small")
    assert torch.equal(d.alphas_cumprod, ref.alphas_cumprod)
    assert math.isclose(float(d.model_log_variance[5]), float(ref.model_log_variance[5]))
    with pytest.raises(ValueError, match="linear schedule needs timesteps >= 21"):
        processes.build({"schedule": "linear", "timesteps": 10, "variance": "fixed_large"})
