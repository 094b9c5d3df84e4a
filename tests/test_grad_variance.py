"""grad_variance: the estimators against direct per-sample gradients and a closed-form variance,
the sampling density (floor, proportionality, reweighting) from hand-computed values, trainer use,
parameter validation, state round trip."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from torch import nn

import strategies
from bench import config as C
from bench.core.ddpm import DDPM
from bench.experiment import run
from strategies.base import StepContext
from bench.core.grad_variance import bin_gradient_variance, gradient_variance, timestep_bins


class LinearEps(nn.Module):
    """ε̂ = W x_t + b (float64), t ignored."""

    def __init__(self, D):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.W = nn.Parameter(0.3 * torch.randn(D, D, generator=g, dtype=torch.float64))
        self.b = nn.Parameter(0.1 * torch.randn(D, generator=g, dtype=torch.float64))

    def forward(self, x, t):
        return x @ self.W.t() + self.b


def direct_per_sample_grads(model, x, eps):
    """g_b for ℓ_b = (1/D)‖ε_b − W x_b − b‖²: ∂/∂W = −(2/D) r xᵀ, ∂/∂b = −(2/D) r."""
    D = x.shape[1]
    r = eps - model(x, None).detach()
    gW = -(2.0 / D) * r[:, :, None] * x[:, None, :]
    gb = -(2.0 / D) * r
    return torch.cat([gW.reshape(len(x), -1), gb], dim=1)


def test_estimators_match_direct_per_sample_computation():
    B, D = 16, 3
    g = torch.Generator().manual_seed(1)
    x = torch.randn(B, D, generator=g, dtype=torch.float64)
    eps = torch.randn(B, D, generator=g, dtype=torch.float64)
    t = torch.zeros(B, dtype=torch.long)
    model = LinearEps(D)
    G = direct_per_sample_grads(model, x, eps)
    per_sample = float(((G - G.mean(0)) ** 2).sum() / (B - 1))
    two_half = B / 4 * float(((G[: B // 2].mean(0) - G[B // 2:].mean(0)) ** 2).sum())
    assert gradient_variance(model, x, t, eps, estimator="per_sample") == pytest.approx(
        per_sample, rel=1e-10)
    assert gradient_variance(model, x, t, eps, estimator="two_half") == pytest.approx(
        two_half, rel=1e-10)
    # a parameter subset: only b (the last parameter tensor)
    Gb = G[:, D * D:]
    assert gradient_variance(model, x, t, eps, estimator="per_sample", param_subset=1) == \
        pytest.approx(float(((Gb - Gb.mean(0)) ** 2).sum() / (B - 1)), rel=1e-10)
    for p in model.parameters():
        assert p.grad is None                      # .grad is never touched


class DiagEps(nn.Module):
    """ε̂ = w ⊙ x_t."""

    def __init__(self, D):
        super().__init__()
        self.w = nn.Parameter(torch.linspace(0.0, 1.5, D, dtype=torch.float64))

    def forward(self, x, t):
        return self.w * x


@pytest.mark.parametrize("estimator,per_bin,reps,rtol", [("per_sample", 256, 1, 0.08),
                                                         ("two_half", 64, 4, 0.15)])
def test_bin_variance_against_closed_form(estimator, per_bin, reps, rtol):
    """x0 = 0, ε̂ = w ⊙ x_t, x_t = s_t ε with s_t = √(1 − abar_t):
    g_d = −(2/D) s (1 − w_d s) ε_d², Var(ε²) = 2 ⇒ tr Cov = Σ_d 8 s² (1 − w_d s)² / D²."""
    T, D = 4, 256
    diffusion = DDPM("quad", T)
    b = np.linspace(1e-2, 0.02 ** 0.5, T) ** 2
    s = np.sqrt(1 - np.cumprod(1 - b))
    model = DiagEps(D)
    w = model.w.detach().numpy()
    exact = np.array([np.sum(8 * si ** 2 * (1 - w * si) ** 2) / D ** 2 for si in s])
    edges = timestep_bins(T, T)                       # one timestep per bin
    g = torch.Generator().manual_seed(0)
    est = sum(bin_gradient_variance(model, diffusion, torch.zeros(8, D, dtype=torch.float64),
                                    edges, per_bin=per_bin, estimator=estimator, generator=g)
              for _ in range(reps)) / reps
    np.testing.assert_allclose(est.numpy(), exact, rtol=rtol)


def test_timestep_bins():
    assert timestep_bins(10, 3).tolist() == [0, 3, 7, 10]
    assert timestep_bins(1000, 20).tolist() == list(range(0, 1001, 50))
    with pytest.raises(ValueError, match="bins"):
        timestep_bins(10, 11)


# ---------------------------------------------------------------- the sampling density
def build(T=10, schedule="quad", **params):
    return strategies.build("grad_variance", DDPM(schedule, T), params)


def with_var(s, var):
    st = s.state_dict()
    st["var_ema"] = torch.tensor(var, dtype=torch.float64)
    s.load_state_dict(st)
    return s


def test_initial_density_is_uniform():
    p = build(T=37).probabilities()
    assert torch.allclose(p, torch.full((37,), 1 / 37, dtype=torch.float64))


def test_density_golden_uneven_bins_with_floor():
    """T = 10, K = 3: bins {0,1,2}, {3,4,5,6}, {7,8,9}; Var = (1, 2, 4), u = 0.1:
    p_t = 0.9·Var_k/(3·1 + 4·2 + 3·4) + 0.1/10."""
    s = with_var(build(bins=3, uniform_prob=0.1), [1.0, 2.0, 4.0])
    gold = [0.9 * v / 23 + 0.01 for v in [1, 1, 1, 2, 2, 2, 2, 4, 4, 4]]
    np.testing.assert_allclose(s.probabilities().numpy(), gold, rtol=1e-12)
    assert float(s.probabilities().sum()) == pytest.approx(1.0, abs=1e-12)
    # power 0.5: p ∝ std
    s = with_var(build(bins=3, uniform_prob=0.0, power=0.5), [1.0, 4.0, 16.0])
    gold = np.array([1, 1, 1, 2, 2, 2, 2, 4, 4, 4]) / (3 * 1 + 4 * 2 + 3 * 4)
    np.testing.assert_allclose(s.probabilities().numpy(), gold, rtol=1e-12)


def test_floor_respected_and_degenerate_estimates_fall_back_to_uniform():
    s = with_var(build(T=100, bins=20, uniform_prob=0.05), [0.0] * 19 + [1e6])
    p = s.probabilities()
    assert float(p.min()) >= 0.05 / 100 - 1e-15 and float(p.sum()) == pytest.approx(1.0)
    s = with_var(build(T=100, bins=20), [0.0] * 20)
    assert torch.allclose(s.probabilities(), torch.full((100,), 0.01, dtype=torch.float64))


def test_importance_reweighting_off_by_default_and_available():
    x0 = torch.zeros(4096, 2)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    s = with_var(build(bins=3), [1.0, 2.0, 4.0])
    d = s.sample(x0, g())
    assert torch.all(d.importance == 1) and torch.all(d.loss_weight == 1)
    s = with_var(build(bins=3, reweight=True), [1.0, 2.0, 4.0])
    d2 = s.sample(x0, g())
    assert torch.equal(d.t, d2.t)
    p = s.probabilities()
    assert torch.allclose(d2.importance.double(), 1 / (10 * p[d2.t]), rtol=1e-6)
    assert float(d2.importance.double().mean()) == pytest.approx(1.0, abs=0.05)


# ---------------------------------------------------------------- hooks and the trainer
def test_after_update_refreshes_with_ema_and_leaves_grad_alone():
    T = 50
    diffusion = DDPM("linear", T)
    s = strategies.build("grad_variance", diffusion, {"bins": 5, "refresh_every": 2,
                                                     "per_bin": 8, "ema_decay": 0.5})
    model = nn.Sequential(nn.Linear(2, 16), nn.SiLU(), nn.Linear(16, 2))
    m = type("M", (nn.Module,), {"forward": lambda self, x, t: model(x)})()
    m.add_module("net", model)
    sentinel = [torch.full_like(p, 7.0) for p in model.parameters()]
    for p, v in zip(model.parameters(), sentinel):
        p.grad = v.clone()
    x0 = torch.randn(32, 2)
    for step in range(5):
        d = s.sample(x0, torch.Generator().manual_seed(step))
        ctx = StepContext(step=step, x0=x0, draw=d, losses=torch.zeros(32), model=m,
                          process=diffusion, generator=torch.Generator().manual_seed(50 + step))
        s.after_update(ctx)
    h = s.diagnostics()
    assert [x["step"] for x in h] == [0, 2, 4] and s.n_refresh == 3
    v = [torch.tensor(x["var"], dtype=torch.float64) for x in h]
    ema = 0.25 * v[0] + 0.25 * v[1] + 0.5 * v[2]
    assert torch.allclose(s.var_ema, ema, rtol=1e-12)
    assert all(float(x) > 0 for x in h[-1]["var"])
    for p, v0 in zip(model.parameters(), sentinel):
        assert torch.equal(p.grad, v0)
    assert sum(h[-1]["bin_prob"]) == pytest.approx(1.0)


@pytest.mark.parametrize("estimator", ["two_half", "per_sample"])
def test_trainer_toy_run(tmp_path, estimator):
    cfg = C.resolve({
        "name": "gv", "seed": 0, "dataset": {"name": "toy2d", "n_train": 2048, "n_test": 64},
        "backbone": {"name": "mlp", "width": 32, "depth": 2},
        "strategy": {"name": "grad_variance", "bins": 10, "refresh_every": 5, "per_bin": 16,
                     "estimator": estimator, "uniform_prob": 0.01},
        "diffusion": {"schedule": "linear", "timesteps": 100},
        "train": {"iterations": 12, "batch_size": 64, "lr": 1e-3, "warmup": 0, "log_every": 6,
                  "ckpt_every": 12, "device": "cpu"}})
    holder = []
    run(cfg, tmp_path / "gv", progress=False, trainer_hook=holder.append)
    s = holder[0].strategy
    assert [h["step"] for h in s.diagnostics()] == [0, 5, 10]
    p = s.probabilities()
    assert float(p.sum()) == pytest.approx(1.0, abs=1e-12)
    assert float(p.min()) >= 0.01 / 100 - 1e-15
    assert not torch.allclose(p, torch.full_like(p, 0.01))


def test_state_dict_round_trip():
    s = with_var(build(T=100, bins=20), list(np.linspace(1, 5, 20)))
    s.history = [{"step": 0, "var": [1.0], "var_ema": [1.0], "bin_prob": [1.0]}]
    buf = io.BytesIO()
    torch.save(s.state_dict(), buf)
    buf.seek(0)
    o = build(T=100, bins=20)
    o.load_state_dict(torch.load(buf, weights_only=False))
    assert torch.equal(o.probabilities(), s.probabilities())
    x0 = torch.zeros(256, 2)
    assert torch.equal(o.sample(x0, torch.Generator().manual_seed(3)).t,
                       s.sample(x0, torch.Generator().manual_seed(3)).t)
    assert o.diagnostics() == s.diagnostics() and o.n_refresh == s.n_refresh


@pytest.mark.parametrize("params,name", [
    ({"bins": 0}, "bins"), ({"bins": 11}, "bins"), ({"refresh_every": 0}, "refresh_every"),
    ({"per_bin": 1}, "per_bin"), ({"per_bin": 7}, "per_bin"), ({"estimator": "x"}, "estimator"),
    ({"ema_decay": 1.0}, "ema_decay"), ({"ema_decay": -0.1}, "ema_decay"),
    ({"uniform_prob": -0.1}, "uniform_prob"), ({"uniform_prob": 1.5}, "uniform_prob"),
    ({"power": -1.0}, "power"), ({"param_subset": -1}, "param_subset"),
    ({"reweight": "yes"}, "reweight"),
])
def test_bad_params(params, name):
    with pytest.raises(ValueError, match=name):
        build(T=10, **params)


def test_per_sample_odd_batch_is_fine():
    build(T=10, bins=5, estimator="per_sample", per_bin=7)
