"""Golden values for every strategy, from the formulas (docs/official_code.md),
computed independently in ``strategy_formulas`` (NumPy/SciPy/math) or derived by hand below —
never copied from program output. Linear, cosine and quad schedules, T = 1000 and T ≠ 1000."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import strategies
import strategy_formulas as F
from bench.core.ddpm import DDPM
from bench.core.process import TimeGrid
from strategies.min_snr import min_snr_target_weights

SCHEDULES = ("linear", "cosine", "quad")
GRID = [(s, T) for s in SCHEDULES for T in (1000, 200, 50)]
_DIFF: dict = {}


def diffusion(schedule: str, T: int) -> DDPM:
    if (schedule, T) not in _DIFF:
        _DIFF[schedule, T] = DDPM(schedule, T)
    return _DIFF[schedule, T]


def build(name, schedule, T, **params):
    return strategies.build(name, diffusion(schedule, T), params)


def close(a, b, rtol=1e-10, atol=1e-15):
    np.testing.assert_allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64),
                               rtol=rtol, atol=atol)


def draw(strategy, n=256, seed=0):
    return strategy.sample(torch.zeros(n, 2), torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("schedule,T", GRID)
def test_reference_schedule_matches_diffusion(schedule, T):
    """The goldens below rest on F.abar; it must be the process the strategies see."""
    close(diffusion(schedule, T).alphas_cumprod, F.abar(schedule, T), rtol=1e-12)


# --------------------------------------------------------------------------- P2
@pytest.mark.parametrize("schedule,T", GRID)
def test_p2_weights(schedule, T):
    a, snr = F.abar(schedule, T), F.snr(schedule, T)
    uniform = np.full(T, 1.0 / T)
    s = build("p2", schedule, T)                              # k = 1, γ = 1: 1/(1 + SNR) = 1 − abar
    close(s.loss_weights(), 1.0 - a)
    close(s.probabilities(), uniform)
    close(build("p2", schedule, T, gamma=0.5).loss_weights(), np.sqrt(1.0 - a))
    close(build("p2", schedule, T, gamma=0).loss_weights(), np.ones(T))   # the appendix's γ = 0
    close(build("p2", schedule, T, k=2.0, gamma=0.7).loss_weights(),
          [math.pow(2.0 + x, -0.7) for x in snr])
    d = draw(s)
    close(d.loss_weight, (1.0 - a)[d.t.numpy()], rtol=1e-6)
    assert torch.all(d.importance == 1)


def test_p2_mean_weight_literals():
    """P2: the mean of 1 − abar over uniform t is 0.724 (linear) and 0.504 (cosine) at T = 1000."""
    for schedule, mean in (("linear", 0.724), ("cosine", 0.504)):
        w = build("p2", schedule, 1000).loss_weights()
        assert float(w.mean()) == pytest.approx(mean, abs=5e-4)


# --------------------------------------------------------------------------- Min-SNR
@pytest.mark.parametrize("schedule,T", GRID)
def test_min_snr_weights(schedule, T):
    snr = F.snr(schedule, T)
    eps = np.minimum(snr, 5.0) / snr
    for pred, target in (("eps", eps), ("x0", np.minimum(snr, 5.0)),
                         ("v", np.minimum(snr, 5.0) / (snr + 1.0))):
        s = build("min_snr", schedule, T, prediction=pred)
        close(s.target_weights(), target)
        close(s.loss_weights(), eps)   # the same objective expressed on the ε-MSE
        close(s.probabilities(), np.full(T, 1.0 / T))
    close(build("min_snr", schedule, T, gamma=1.5).loss_weights(), np.minimum(snr, 1.5) / snr)


def test_min_snr_equivalence_of_forms_on_eps_mse():
    """x0-MSE = ε-MSE/SNR and v-MSE = ε-MSE·(SNR+1)/SNR: each target weight maps to the ε form."""
    snr = torch.tensor(F.snr("cosine", 200))
    eps = min_snr_target_weights(snr, 5.0, "eps")
    close(min_snr_target_weights(snr, 5.0, "x0") / snr, eps)
    close(min_snr_target_weights(snr, 5.0, "v") * (snr + 1) / snr, eps)


def test_min_snr_zero_snr_guard_and_literal_boundaries():
    snr = torch.tensor([0.0, 0.5, 5.0, 20.0], dtype=torch.float64)
    close(min_snr_target_weights(snr, 5.0, "eps"), [1.0, 1.0, 1.0, 0.25])
    close(min_snr_target_weights(snr, 5.0, "x0"), [1.0, 0.5, 5.0, 5.0])
    close(min_snr_target_weights(snr, 5.0, "v"), [1.0, 0.5 / 1.5, 5.0 / 6.0, 5.0 / 21.0])
    fake = SimpleNamespace(name="ddpm", grid=TimeGrid(4), snr=snr,      # a process with just a
                           eps_to_loss=torch.ones(4, dtype=torch.float64))  # grid and SNR
    close(strategies.get("min_snr")(fake).loss_weights(), [1.0, 1.0, 1.0, 0.25])
    # SNR < 5 (weight 1) from index 130 (linear) and 261 (cosine) at T = 1000.
    for schedule, first in (("linear", 130), ("cosine", 261)):
        w = build("min_snr", schedule, 1000).loss_weights().numpy()
        assert np.all(w[first:] == 1.0) and w[first - 1] < 1.0


# --------------------------------------------------------------------------- log-normal
@pytest.mark.parametrize("schedule,T", GRID)
def test_logit_normal_masses(schedule, T):
    close(build("lognormal", schedule, T).probabilities(), F.logit_normal_round(T), atol=1e-14)
    close(build("lognormal", schedule, T, discretise="floor").probabilities(),
          F.logit_normal_floor(T), atol=1e-14)
    close(build("lognormal", schedule, T, m=0.7, s=1.6).probabilities(),
          F.logit_normal_round(T, 0.7, 1.6), atol=1e-14)
    assert torch.all(build("lognormal", schedule, T).loss_weights() == 1)


def test_logit_normal_literals():
    """Schedule-agnostic; P(i=0) ≈ 2.5e-12 for floor(u·T) at T = 1000 (Φ(logit(1e-3)));
    symmetric about the middle for m = 0; round gives the ends half-width bins."""
    p_floor = build("lognormal", "linear", 1000, discretise="floor").probabilities().numpy()
    assert p_floor[0] == pytest.approx(0.5 * math.erfc(-math.log(1e-3 / (1 - 1e-3)) / math.sqrt(2)),
                                       rel=1e-9)
    assert p_floor[0] == pytest.approx(2.5e-12, rel=0.02)
    close(p_floor, p_floor[::-1], atol=1e-15)
    p_round = build("lognormal", "quad", 1000).probabilities().numpy()
    close(p_round, p_round[::-1], atol=1e-15)
    close(p_round, build("lognormal", "cosine", 1000).probabilities(), atol=0)
    assert int(np.argmax(p_round)) in (499, 500)


@pytest.mark.parametrize("schedule,T", GRID)
def test_edm_lognormal_masses(schedule, T):
    close(build("lognormal", schedule, T, variant="edm").probabilities(),
          F.edm_lognormal(schedule, T), atol=1e-14)
    close(build("lognormal", schedule, T, variant="edm", p_mean=0.5, p_std=2.0).probabilities(),
          F.edm_lognormal(schedule, T, 0.5, 2.0), atol=1e-14)


def test_edm_lognormal_literal():
    """About 0.37 % of the mass on i = 0 for linear (T = 1000)."""
    p = build("lognormal", "linear", 1000, variant="edm").probabilities()
    assert float(p[0]) == pytest.approx(0.0037, abs=1e-4)


# --------------------------------------------------------------------------- SpeeD
@pytest.mark.parametrize("schedule,T", GRID)
def test_speed_marginal_and_weight(schedule, T):
    s = build("speed", schedule, T)
    g = F.speed_increments(schedule, T)
    assert s.m == F.speed_boundary(g)
    close(s.sampling_density(), F.speed_p(schedule, T), atol=1e-15)
    close(s.probabilities(), F.speed_marginal(schedule, T, 128), atol=1e-15)   # default B = 128
    for n in (1, 2, 7, 64):
        close(s.probabilities(batch_size=n), F.speed_marginal(schedule, T, n), atol=1e-15)
    close(build("speed", schedule, T, dual=False).probabilities(), F.speed_p(schedule, T),
          atol=1e-15)
    close(build("speed", schedule, T, batch_size=7).probabilities(),
          F.speed_marginal(schedule, T, 7), atol=1e-15)
    close(s.loss_weights(), 1.0 - F.abar(schedule, T))       # k = γ = 1


def test_speed_literals():
    """n = 128: 65 draws + 63 mirrors; the plateaus are 2.5 and 0.5 (ratio 5); the top index is
    never a mirror; with no g below δ, m = 1."""
    s = build("speed", "linear", 1000)
    p = F.speed_p("linear", 1000)
    m = s.m
    assert p[:m - 1].max() / p[m + 10:].min() == pytest.approx(5.0, rel=1e-6)
    close(s.probabilities(), 65 / 128 * p + 63 / 128 * s.dual_density().numpy(), atol=1e-15)
    assert float(s.dual_density()[999]) == 0.0
    assert build("speed", "quad", 50).m == 1 and build("speed", "cosine", 50).m == 1


@pytest.mark.parametrize("schedule,T,n", [("linear", 1000, 128), ("cosine", 200, 7),
                                          ("quad", 50, 64)])
def test_speed_draw_structure(schedule, T, n):
    """The batch is [n//2+1 draws, mirrors of the first draws][:n]; weight 1 − abar."""
    s = build("speed", schedule, T)
    d = draw(s, n=n, seed=3)
    a = n // 2 + 1
    first, mirrors = d.t[:a], d.t[a:]
    m = F.speed_boundary(F.speed_increments(schedule, T))
    expect = [m - t if t < m else t - m for t in first[: n - a].tolist()]
    assert mirrors.tolist() == expect
    close(d.loss_weight, (1.0 - F.abar(schedule, T))[d.t.numpy()], rtol=1e-6)
    assert torch.all(d.importance == 1)
    close(s.probabilities(), F.speed_marginal(schedule, T, n), atol=1e-15)   # tracks the last n


# --------------------------------------------------------------------------- loss second moment
def _feed(strategy, pushes: int):
    """Push, for every t, losses (t+1)·k for k = 1..pushes, k-major."""
    T = strategy.T
    for k in range(1, pushes + 1):
        t = torch.arange(T)
        strategy.update(t, (t + 1).double() * k)


@pytest.mark.parametrize("schedule,T", [("linear", 50), ("cosine", 200), ("quad", 1000)])
def test_loss_second_moment_weights(schedule, T):
    s = build("loss_second_moment", schedule, T)
    close(s.probabilities(), np.full(T, 1 / T))
    _feed(s, 9)
    s.update(torch.arange(T - 1), torch.ones(T - 1, dtype=torch.float64))   # all but the last t
    close(s.probabilities(), np.full(T, 1 / T))                   # not warmed up: uniform
    s = build("loss_second_moment", schedule, T)
    _feed(s, 12)   # the FIFO keeps k = 3..12, so w_t = (t+1)·sqrt(mean(k²)) ∝ t + 1
    lin = np.arange(1, T + 1) / (T * (T + 1) / 2)
    expect = lin * (1 - 0.001) + 0.001 / T
    close(s.probabilities(), expect)
    assert s.loss_history[4].tolist() == [5.0 * k for k in range(3, 13)]
    d = draw(s, n=512)
    close(d.importance, 1.0 / (T * expect[d.t.numpy()]), rtol=1e-6)
    assert torch.all(d.loss_weight == 1)


def test_loss_second_moment_hook_gathers_ranks_in_order():
    """before_update pushes rank 0's slot, then rank 1's (IDDPM's all-gather order)."""
    T = 50
    s = build("loss_second_moment", "linear", T)
    t = torch.tensor([3, 3])
    other = torch.zeros(2, 4, dtype=torch.float64)
    other[0, 2:], other[1, 2:] = torch.tensor([3.0, 7.0]), torch.tensor([30.0, 40.0])
    ctx = strategies.StepContext(
        step=0, x0=torch.zeros(2, 2), draw=strategies.Draw(t, torch.ones(2), torch.ones(2)),
        losses=torch.tensor([10.0, 20.0]), model=None, process=diffusion("linear", T),
        generator=torch.Generator(), reduce=lambda x: x + other, rank=0, world_size=2)
    s.before_update(ctx)
    assert s.loss_history[3, :3].tolist() == [10.0, 20.0, 30.0]
    assert s.loss_history[7, 0].item() == 40.0
    assert s.loss_counts[3].item() == 3 and s.loss_counts[7].item() == 1


# --------------------------------------------------------------------------- Laplace
@pytest.mark.parametrize("schedule,T", GRID)
def test_laplace_masses(schedule, T):
    s = build("laplace", schedule, T)
    close(s.probabilities(), F.laplace_masses(schedule, T), atol=1e-14)
    close(build("laplace", schedule, T, mu=1.5, b=2.0).probabilities(),
          F.laplace_masses(schedule, T, 1.5, 2.0), atol=1e-14)
    assert torch.all(s.loss_weights() == 1)


def test_laplace_literal():
    """The mode sits where logSNR crosses μ = 0 (SNR = 1, abar = ½); mass beyond ±b·ln(1/0.01)
    of log-SNR is 1 %."""
    snr = F.snr("cosine", 1000)
    p = build("laplace", "cosine", 1000).probabilities().numpy()
    assert abs(int(np.argmax(p)) - int(np.argmin(np.abs(np.log(snr))))) <= 1
    inside = np.abs(np.log(snr)) < 0.5 * math.log(100)
    assert p[inside].sum() == pytest.approx(0.99, abs=0.01)


# --------------------------------------------------------------------------- compose
@pytest.mark.parametrize("schedule,T", [("linear", 1000), ("cosine", 200), ("quad", 50)])
def test_compose_speed_with_min_snr(schedule, T):
    s = build("compose", schedule, T, sampler={"name": "speed"},
              weighting={"name": "min_snr", "gamma": 5})
    snr = F.snr(schedule, T)
    close(s.probabilities(), F.speed_marginal(schedule, T, 128), atol=1e-15)
    close(s.loss_weights(), np.minimum(snr, 5) / snr)
    d = draw(s, n=128)
    close(d.loss_weight, (np.minimum(snr, 5) / snr)[d.t.numpy()], rtol=1e-6)
    assert torch.all(d.importance == 1)


def test_compose_keeps_the_samplers_importance_and_hooks():
    T = 50
    s = build("compose", "linear", T, sampler={"name": "loss_second_moment"},
              weighting={"name": "p2", "gamma": 0.5})
    _feed(s.sampler, 12)
    lin = np.arange(1, T + 1) / (T * (T + 1) / 2)
    expect = lin * (1 - 0.001) + 0.001 / T
    close(s.probabilities(), expect)
    d = draw(s, n=256)
    close(d.importance, 1.0 / (T * expect[d.t.numpy()]), rtol=1e-6)
    close(d.loss_weight, np.sqrt(1 - F.abar("linear", T))[d.t.numpy()], rtol=1e-6)
    assert set(s.state_dict()) == {"loss_history", "loss_counts"}


@pytest.mark.parametrize("weighting,why", [
    ({"name": "speed"}, "non-uniform sampling density"),
    ({"name": "lognormal"}, "non-uniform sampling density"),
    ({"name": "loss_second_moment"}, "before_update hook"),
])
def test_compose_rejects_impure_weightings(weighting, why):
    with pytest.raises(ValueError, match=f"incompatible composition.*{why}"):
        build("compose", "linear", 50, weighting=weighting)


@pytest.mark.parametrize("params,match", [
    ({"weighting": {"gamma": 5}}, "weighting must be a strategy config"),
    ({"sampler": "speed"}, "sampler must be a strategy config"),
    ({"sampler": {"name": "nope"}}, "unknown strategy 'nope'; valid: .*speed"),
    ({"weighting": {"name": "min_snr", "gamma": -1}}, "min_snr: gamma must be"),
    ({"weighting": {"name": "p2", "kk": 1}}, "unknown parameter.*kk; valid: gamma, k"),
])
def test_compose_bad_configs(params, match):
    with pytest.raises(ValueError, match=match):
        build("compose", "linear", 50, **params)


# --------------------------------------------------------------------------- EDM2 uncertainty
@pytest.mark.parametrize("schedule,T", [("linear", 1000), ("cosine", 200), ("quad", 50)])
def test_edm2_features_and_first_adam_step(schedule, T):
    """φ_k(i) = √2·cos(2π(f_k·c_i + φ0_k)), c_i = −ln SNR_i / 8, f ~ N(0,1), φ0 ~ U[0,1) from the
    seed; u ≡ 0 at the start (weights 1); Adam's first step moves each head weight by
    −lr·g/(|g| + 1e-8) with g_k = mean_b((1 − mse_b·e^0)·φ_k(t_b))."""
    s = build("edm2_uncertainty", schedule, T, features=16, lr=0.05, seed=3)
    g = torch.Generator().manual_seed(3)
    f = torch.randn(16, generator=g, dtype=torch.float64).numpy()
    ph = torch.rand(16, generator=g, dtype=torch.float64).numpy()
    c = -np.log(F.snr(schedule, T)) / 8
    phi = math.sqrt(2) * np.cos(2 * math.pi * (c[:, None] * f[None, :] + ph[None, :]))
    close(s.features, phi, rtol=1e-5, atol=1e-6)
    close(s.loss_weights(), np.ones(T))
    close(s.probabilities(), np.full(T, 1 / T))
    t = torch.tensor([0, T // 2, T - 1, T // 2])
    mse = torch.tensor([0.5, 2.0, 1.0, 3.0])
    s.update(t, mse)
    grad = ((1 - mse.numpy())[:, None] * phi[t.numpy()]).mean(axis=0)
    head = -0.05 * grad / (np.abs(grad) + 1e-8)
    close(s.head.detach(), head, rtol=1e-4, atol=1e-6)
    close(s.loss_weights(), np.exp(-(phi @ head)), rtol=1e-4)


def test_edm2_converges_to_the_expected_loss():
    """At the optimum e^{u(i)} = E[ε-MSE_i]: the weight normalises each timestep's loss to ≈ 1."""
    T = 50
    s = build("edm2_uncertainty", "cosine", T, lr=0.05)
    target = 0.1 + np.arange(T) / T * 1.9
    t = torch.arange(T)
    for _ in range(300):
        s.update(t, torch.tensor(target, dtype=torch.float32))
    close(1.0 / s.loss_weights().numpy(), target, rtol=0.02)


def test_edm2_averages_the_gradient_over_ranks():
    """Two ranks with their halves of a batch take the same step as one process with all of it."""
    T = 50
    one = build("edm2_uncertainty", "linear", T)
    two = build("edm2_uncertainty", "linear", T)
    t, mse = torch.tensor([1, 7, 30, 49]), torch.tensor([0.3, 1.0, 2.0, 0.7])
    one.update(t, mse)
    g_rank1 = two.gradient(t[2:], mse[2:])
    ctx = strategies.StepContext(
        step=0, x0=torch.zeros(2, 2), draw=strategies.Draw(t[:2], torch.ones(2), torch.ones(2)),
        losses=mse[:2], model=None, process=diffusion("linear", T), generator=torch.Generator(),
        reduce=lambda x: x + g_rank1, rank=0, world_size=2)
    two.before_update(ctx)
    close(two.head.detach(), one.head.detach(), rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------------------- uniform_range
@pytest.mark.parametrize("T,low,high,lo,hi", [(1000, 0.0, 0.2, 0, 200), (50, 0.1, 0.5, 5, 25),
                                              (200, 0.0, 1.0, 0, 200)])
def test_uniform_range_before_and_after_its_start(T, low, high, lo, hi):
    s = build("uniform_range", "linear", T, low=low, high=high, start_step=2)
    close(s.probabilities(), np.full(T, 1.0 / T))                 # plain uniform first
    for _ in range(2):
        s.after_update(None)
    want = np.zeros(T)
    want[lo:hi] = 1.0 / (hi - lo)                                 # lo = round(low·T), by hand
    close(s.probabilities(), want)
    t = draw(s, n=4000).t
    assert int(t.min()) >= lo and int(t.max()) < hi
    assert torch.equal(draw(s).weight, torch.ones(256))


@pytest.mark.parametrize("params,match", [
    ({"low": 0.5, "high": 0.5}, "high must be > low"),
    ({"high": 1.5}, r"high must be a finite number in \(0, 1\]"),
    ({"start_step": -1}, r"start_step must be an integer in \[0, inf\)"),
])
def test_uniform_range_bad_params(params, match):
    with pytest.raises(ValueError, match=match):
        build("uniform_range", "linear", 100, **params)
