"""adaptive_beta (Kim et al. 2025, Alg. 1-2): golden values computed here from the formulas
(never from program output), the feature selection against scikit-learn, trainer runs in one CPU
process past the official code's 3rd-update crash, parameter validation, state round trips."""

from __future__ import annotations

import io
import math
import threading

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

import strategies
from bench import config as C
from bench.core.ddpm import DDPM
from bench.experiment import run
from bench.train.trainer import Interrupted, Trainer
from strategies.adaptive_beta import AdaptiveBeta, beta_index_pmf, select_timesteps
from strategies.base import StepContext

from helpers import StopAt, thread_rank_reduce

A0 = 0.9740869841801066          # ln(1 + e^0.5) + 1e-5, computed by hand from the formula


def build(T=100, schedule="linear", **params):
    return strategies.build("adaptive_beta", DDPM(schedule, T), params)


def golden_pmf(a, b, T):
    """P(round(u(T−1)) = i) for u ~ Beta(a, b): CDF differences, edges clipped to [0, 1]."""
    lo = np.clip((np.arange(T) - 0.5) / (T - 1), 0, 1)
    hi = np.clip((np.arange(T) + 0.5) / (T - 1), 0, 1)
    return stats.beta.cdf(hi, a, b) - stats.beta.cdf(lo, a, b)


# ---------------------------------------------------------------- initial policy and its pmf
@pytest.mark.parametrize("shape", [(2,), (1, 8, 8), (3, 32, 32), (4, 13, 21)])
def test_initial_alpha_beta_is_softplus_half(shape):
    s = build()
    alpha, beta = s.policy_params(torch.randn(5, *shape))
    assert torch.allclose(alpha, torch.full((5,), A0), atol=1e-6, rtol=0)
    assert torch.allclose(beta, torch.full((5,), A0), atol=1e-6, rtol=0)
    assert s.alpha0 == pytest.approx(A0, abs=1e-12) and s.beta0 == pytest.approx(A0, abs=1e-12)


def test_official_cnn_shape_at_32x32():
    s = build()
    s.policy_params(torch.zeros(1, 3, 32, 32))
    # conv 32/64/128, each followed by a 2x2 max-pool: 128·4·4 = 2048 features into the 256-MLP
    assert s.policy.mlp[0].in_features == 2048 and s.policy.mlp[0].out_features == 256
    assert [m.out_channels for m in s.policy.features if isinstance(m, nn.Conv2d)] == [32, 64, 128]
    assert sum(isinstance(m, nn.MaxPool2d) for m in s.policy.features) == 3
    assert s.policy.head.weight.abs().sum() == 0
    assert torch.allclose(s.policy.head.bias, torch.tensor([0.5, 0.5]))


def test_policy_init_is_seeded_and_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    a, b, c = build(), build(), build(seed=1)
    for s in (a, b, c):
        s.policy_params(torch.zeros(1, 1, 8, 8))
    assert torch.equal(torch.get_rng_state(), state)
    pa, pb, pc = (list(s.policy.state_dict().values()) for s in (a, b, c))
    assert all(torch.equal(x, y) for x, y in zip(pa, pb))
    assert not torch.equal(pa[0], pc[0])
    w = a.policy.mlp[0].weight.detach()            # default init: U(±1/√fan_in)
    assert float(w.abs().max()) <= 1 / math.sqrt(w.shape[1]) and float(w.std()) > 0


@pytest.mark.parametrize("schedule", ["linear", "cosine", "quad"])
@pytest.mark.parametrize("T", [1000, 100, 37])
def test_initial_pmf_against_beta_cdf(schedule, T):
    s = build(T=T, schedule=schedule)
    gold = golden_pmf(A0, A0, T)
    p = s.probabilities()
    assert p.dtype == torch.float64 and p.shape == (T,)
    np.testing.assert_allclose(p.numpy(), gold, rtol=1e-9, atol=1e-15)
    assert float(p.sum()) == pytest.approx(1.0, abs=1e-12)
    # the end bins are half-width: about half the mass of their neighbours
    assert 0.4 < float(p[0] / p[1]) < 0.6 and 0.4 < float(p[-1] / p[-2]) < 0.6
    # after sample() (reference batch stored) the initial policy gives the same pmf, up to the
    # float32 policy output (α = β = softplus(0.5) + 1e-5 rounded to float32)
    s.sample(torch.randn(16, 2), torch.Generator().manual_seed(0))
    np.testing.assert_allclose(s.probabilities().numpy(), gold, rtol=1e-6, atol=1e-15)


def test_pmf_helper_other_parameters():
    for a, b, T in [(2.0, 5.0, 50), (0.3, 0.7, 11), (1.0, 1.0, 2)]:
        a64, b64 = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
        np.testing.assert_allclose(beta_index_pmf(a64, b64, T).numpy(),
                                   golden_pmf(a, b, T), rtol=1e-9, atol=1e-15)
    # uniform u: interior bins 1/(T−1), end bins 1/(2(T−1))
    p = beta_index_pmf(torch.tensor(1.0), torch.tensor(1.0), 11)
    assert float(p[0]) == pytest.approx(0.05) and float(p[5]) == pytest.approx(0.1)


def test_init_alpha_beta_parameters():
    s = build(T=50, init_alpha=2.0, init_beta=5.0)
    alpha, beta = s.policy_params(torch.zeros(3, 2))
    assert torch.allclose(alpha, torch.full((3,), 2.0))
    assert torch.allclose(beta, torch.full((3,), 5.0))
    np.testing.assert_allclose(s.probabilities().numpy(), golden_pmf(2.0, 5.0, 50), rtol=1e-6)


def test_draws_chi_square_against_probabilities():
    T = 100
    s = build(T=T)
    d = s.sample(torch.randn(100_000, 2), torch.Generator().manual_seed(3))
    counts = torch.bincount(d.t, minlength=T).double()
    expected = s.probabilities() * 100_000
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert stats.chi2.sf(chi2, T - 1) > 1e-3
    u = d.aux["u"]
    assert u.dtype == torch.float64 and float(u.min()) >= 1e-6 and float(u.max()) <= 1 - 1e-6
    assert torch.equal(d.t, torch.round(u * (T - 1)).long())
    assert torch.all(d.importance == 1) and torch.all(d.loss_weight == 1)


def test_sample_is_deterministic_under_a_seed():
    x0 = torch.randn(64, 1, 8, 8)
    a = build().sample(x0, torch.Generator().manual_seed(7))
    b = build().sample(x0, torch.Generator().manual_seed(7))
    assert torch.equal(a.t, b.t) and torch.equal(a.aux["u"], b.aux["u"])


# ---------------------------------------------------------------- feature selection
def test_feature_selection_reproduces_select_k_best():
    from sklearn.feature_selection import SelectKBest, f_regression

    rng = np.random.default_rng(0)
    X = 0.01 * rng.standard_normal((8, 12))
    X[:, 4] += np.linspace(-1, 1, 8)               # column 4 obviously explains the row sum
    X[:, 9] += 0.3 * np.linspace(-1, 1, 8) ** 2    # unrelated to the sum's trend
    ref = SelectKBest(f_regression, k=3).fit(X, X.sum(1)).get_support(indices=True).tolist()
    assert select_timesteps(X, 3) == ref
    assert 4 in ref and select_timesteps(X, 1) == [4]
    # the 2-row degeneracy (docs/official_code.md#adaptive-beta-selecting-s): every F = 0, ties go to the last k columns
    assert select_timesteps(X[:2], 3) == [9, 10, 11]


# ---------------------------------------------------------------- reward golden test
class ZeroEps(nn.Module):
    def forward(self, x, t):
        return torch.zeros_like(x)


class OracleEps(nn.Module):
    """ε exactly, for x0 = 0: x_t = √(1 − abar_t)·ε."""

    def __init__(self, diffusion):
        super().__init__()
        self.abar = diffusion.alphas_cumprod.float()

    def forward(self, x, t):
        return x / (1 - self.abar[t]).sqrt().view(-1, *([1] * (x.dim() - 1)))


def golden_c(schedule: str, T: int) -> np.ndarray:
    """c_t = β_t² / (2σ_t² α_t (1 − abar_t)) (Kim et al. eq. 7), fixed-large σ² (β_t; β̃_1 at 0)."""
    if schedule == "linear":
        b = np.linspace(1e-4 * 1000 / T, 0.02 * 1000 / T, T)
    elif schedule == "quad":
        b = np.linspace(1e-2, 0.02 ** 0.5, T) ** 2
    else:
        f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
        b = np.array([min(1 - f((i + 1) / T) / f(i / T), 0.999) for i in range(T)])
    a = 1 - b
    abar = np.cumprod(a)
    sigma2 = b.copy()
    sigma2[0] = b[1] * (1 - abar[0]) / (1 - abar[1])
    return b ** 2 / (2 * sigma2 * a * (1 - abar))


@pytest.mark.parametrize("schedule", ["linear", "cosine", "quad"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_reward_golden(schedule, reduction):
    """θ_k predicts ε̂ = 0, θ_{k+1} predicts ε exactly (x0 = 0): KL_s(θ_k) − KL_s(θ_{k+1}) =
    c_s·mean(ε²)/ln 2 ≈ c_s/ln 2 (9216 dims: ±1.5 %), + 0.01·H(Beta(α0, α0))."""
    T = 100
    diffusion = DDPM(schedule, T)
    s = strategies.build("adaptive_beta", diffusion, {"reward_reduction": reduction})
    x0 = torch.zeros(2, 1, 96, 96)
    draw = s.sample(x0, torch.Generator().manual_seed(0))
    ctx = StepContext(step=0, x0=x0, draw=draw, losses=torch.zeros(2), model=ZeroEps(),
                      process=diffusion, generator=torch.Generator().manual_seed(1))
    s.before_update(ctx)
    ctx.model = OracleEps(diffusion)
    s.after_update(ctx)
    c_bits = golden_c(schedule, T) / math.log(2)
    kl = c_bits[[0, 1, 2]].sum() / (3 if reduction == "mean" else 1)
    H = stats.beta(A0, A0).entropy()
    assert H == pytest.approx(-2.5e-4, abs=2e-5)
    np.testing.assert_allclose(s.last_reward.numpy(), kl + 0.01 * H, rtol=0.06)
    row = s.queue[0].numpy()                               # ΔKL at every t for one image
    np.testing.assert_allclose(row, c_bits, rtol=0.1)
    h = s.diagnostics()[0]
    assert h["S_used"] == [0, 1, 2] and h["mean_alpha"] == pytest.approx(A0, abs=1e-6)
    assert h["row_sum"] == pytest.approx(c_bits.sum(), rel=0.02)


def test_common_noise_gives_exact_zero_for_an_unchanged_model():
    T = 50
    diffusion = DDPM("linear", T)
    x0 = torch.randn(4, 3)
    model = nn.Sequential(nn.Linear(3, 3))
    wrapped = lambda x, t: model(x)  # noqa: E731

    class M(nn.Module):
        def forward(self, x, t):
            return wrapped(x, t)

    for common, exact in [(True, True), (False, False)]:
        s = strategies.build("adaptive_beta", diffusion, {"common_noise": common})
        d = s.sample(x0, torch.Generator().manual_seed(0))
        ctx = StepContext(step=0, x0=x0, draw=d, losses=torch.zeros(4), model=M(),
                          process=diffusion, generator=torch.Generator().manual_seed(1))
        s.before_update(ctx)
        s.after_update(ctx)
        assert (float(s.queue[0].abs().max()) == 0.0) == exact


# ---------------------------------------------------------------- runs through the trainer
def _cfg(dataset, backbone, iterations, T, update_every, batch_size, **train):
    return C.resolve({
        "name": "ab-test", "seed": 1, "dataset": dataset, "backbone": backbone,
        "strategy": {"name": "adaptive_beta", "update_every": update_every},
        "diffusion": {"schedule": "linear", "timesteps": T},
        "train": {"iterations": iterations, "batch_size": batch_size, "lr": 1e-3, "warmup": 0,
                  "log_every": 5, "ckpt_every": iterations, "device": "cpu", **train}})


TOY = ({"name": "toy2d", "n_train": 2048, "n_test": 64}, {"name": "mlp", "width": 32, "depth": 2})
DIGITS = ({"name": "digits"}, {"name": "unet", "ch": 16, "ch_mult": [1, 2], "num_res_blocks": 1,
                               "attn_resolutions": [], "dropout": 0.1})


def _check_run(tr, n_updates, T, shape):
    s = tr.strategy
    hist = s.diagnostics()
    assert [h["step"] for h in hist] == list(range(0, tr.step, s.params.update_every))
    assert len(hist) == n_updates >= 4                     # well past the official 3rd-update crash
    for h in hist:
        assert isinstance(h["S"], list) and len(h["S"]) == 3
        assert all(isinstance(i, int) and 0 <= i < T for i in h["S"])
    assert any(h["S"] != [0, 1, 2] for h in hist)          # S changes
    assert len({tuple(h["S"]) for h in hist[2:]}) >= 2     # and keeps changing
    fresh = build(T=T)
    fresh.policy_params(torch.zeros(1, *shape))
    changed = [not torch.equal(a, b) for a, b in zip(fresh.policy.state_dict().values(),
                                                     s.policy.state_dict().values())]
    assert all(changed)                                    # every policy tensor was updated
    p = s.probabilities()
    assert float(p.sum()) == pytest.approx(1.0, abs=1e-9)
    assert not torch.allclose(p, fresh.probabilities(), atol=1e-6)


def test_trainer_toy_mlp_one_cpu_process(tmp_path):
    cfg = _cfg(*TOY, iterations=30, T=100, update_every=5, batch_size=64)
    holder = []
    run(cfg, tmp_path / "toy", progress=False, trainer_hook=holder.append)
    assert (tmp_path / "toy" / "DONE").exists()
    _check_run(holder[0], 6, 100, (2,))


def test_trainer_digits_unet_one_cpu_process(tmp_path):
    cfg = _cfg(*DIGITS, iterations=16, T=50, update_every=3, batch_size=16)
    holder = []
    run(cfg, tmp_path / "digits", progress=False, trainer_hook=holder.append)
    _check_run(holder[0], 6, 50, (1, 8, 8))



def test_resume_continues_identically(tmp_path):
    cfg = _cfg(*TOY, iterations=14, T=50, update_every=3, batch_size=32)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    full = Trainer(cfg, tmp_path / "a", progress=False)
    full.run()
    part = Trainer(cfg, tmp_path / "b", progress=False, callbacks=[StopAt(7)])
    with pytest.raises(Interrupted):
        part.run()
    resumed = Trainer(cfg, tmp_path / "b", progress=False)
    resumed.run()
    a, b = full.strategy.state_dict(), resumed.strategy.state_dict()
    assert a["S"].tolist() == b["S"].tolist() and a["n_updates"] == b["n_updates"] == 5
    assert torch.equal(a["queue"], b["queue"])
    for k in a["policy"]:
        assert torch.equal(a["policy"][k], b["policy"][k])
    assert a["history"] == b["history"]
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k])


def test_state_dict_round_trip_reproduces_next_draws(tmp_path):
    cfg = _cfg(*TOY, iterations=10, T=50, update_every=3, batch_size=32)
    (tmp_path / "r").mkdir()
    tr = Trainer(cfg, tmp_path / "r", progress=False)
    for _ in range(8):
        tr.train_step()
    buf = io.BytesIO()
    torch.save(tr.strategy.state_dict(), buf)
    buf.seek(0)
    other = strategies.build("adaptive_beta", tr.process, {"update_every": 3})
    other.load_state_dict(torch.load(buf, weights_only=False))
    x0 = tr.batch(8)
    d1 = tr.strategy.sample(x0, torch.Generator().manual_seed(5))
    d2 = other.sample(x0, torch.Generator().manual_seed(5))
    assert torch.equal(d1.t, d2.t) and torch.equal(d1.aux["u"], d2.aux["u"])
    assert torch.equal(tr.strategy.probabilities(), other.probabilities())
    assert other.S == tr.strategy.S and other.diagnostics() == tr.strategy.diagnostics()
    sa, sb = tr.strategy.optimizer.state_dict(), other.optimizer.state_dict()
    for k in sa["state"]:
        for name, v in sa["state"][k].items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(sb["state"][k][name]))
    fresh = strategies.build("adaptive_beta", tr.process, {})
    fresh.load_state_dict(strategies.build("adaptive_beta", tr.process, {}).state_dict())
    assert torch.equal(fresh.probabilities(), golden_pmf_t(A0, 50))


def golden_pmf_t(a, T):
    return torch.from_numpy(golden_pmf(a, a, T))


# ---------------------------------------------------------------- two ranks in one process
def test_two_ranks_split_the_row_and_agree():
    """Two ranks (threads, a summing reduce): each evaluates half the timesteps; the reduced row
    is complete, and S, the queue and the policy stay identical on both ranks."""
    T, W = 30, 2
    diffusion = DDPM("linear", T)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 2))

    class M(nn.Module):
        def forward(self, x, t):
            return model(x) * (1 + t.float()[:, None] / T)

    m = M()
    x_global = torch.randn(16, 2)
    slots, barrier = [None] * W, threading.Barrier(W)
    strats = [strategies.build("adaptive_beta", diffusion, {"update_every": 1}) for _ in range(W)]
    errors = []

    def rank_main(r):
        reduce = thread_rank_reduce(slots, barrier, r)
        try:
            s = strats[r]
            for step in range(4):
                draw = s.sample(x_global, torch.Generator().manual_seed(step))
                sl = slice(r * 8, (r + 1) * 8)
                ctx = StepContext(step=step, x0=x_global[sl], draw=draw.select(sl),
                                  losses=torch.zeros(8), model=m, process=diffusion,
                                  generator=torch.Generator().manual_seed(100 * r + step),
                                  reduce=reduce, rank=r, world_size=W)
                s.before_update(ctx)
                barrier.wait()
                if r == 0:
                    with torch.no_grad():
                        for prm in model.parameters():
                            prm.add_(0.05 * (step + 1))
                barrier.wait()
                s.after_update(ctx)
        except Exception as e:  # noqa: BLE001  (re-raised in the main thread)
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=rank_main, args=(r,)) for r in range(W)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    a, b = strats
    assert a.S == b.S and len(a.queue) == 4
    for ra, rb in zip(a.queue, b.queue):
        assert torch.equal(ra, rb) and bool((ra != 0).all())
    for pa, pb in zip(a.policy.parameters(), b.policy.parameters()):
        assert torch.equal(pa, pb)
    assert a.diagnostics() == b.diagnostics()


# ---------------------------------------------------------------- bad parameters
@pytest.mark.parametrize("params,name", [
    ({"update_every": 0}, "update_every"), ({"num_selected": 0}, "num_selected"),
    ({"num_selected": 101}, "num_selected"), ({"queue_size": 0}, "queue_size"),
    ({"lr": 0.0}, "lr"), ({"lr": -1e-3}, "lr"), ({"ent_coef": -0.01}, "ent_coef"),
    ({"grad_clip": -1.0}, "grad_clip"), ({"entropy_mode": "bogus"}, "entropy_mode"),
    ({"reward_reduction": "max"}, "reward_reduction"), ({"init_alpha": 0.0}, "init_alpha"),
    ({"init_beta": -1.0}, "init_beta"), ({"min_rows_for_selection": 1}, "min_rows_for_selection"),
    ({"conv_channels": []}, "conv_channels"), ({"update_every": 2.5}, "update_every"),
    ({"common_noise": "yes"}, "common_noise"), ({"chunk_size": 0}, "chunk_size"),
])
def test_bad_params_raise_value_error_naming_the_param(params, name):
    with pytest.raises(ValueError, match=name):
        build(T=100, **params)


def test_unknown_param_lists_valid_ones():
    with pytest.raises(ValueError, match="update_every"):
        build(f_s=3)


def test_num_selected_may_equal_T():
    s = build(T=5, schedule="quad", num_selected=5)
    assert s.S == [0, 1, 2, 3, 4]
    assert isinstance(s, AdaptiveBeta)
