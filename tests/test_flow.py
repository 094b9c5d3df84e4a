"""The flow-matching process (bench.core.flow): its formulas and identities, its samplers (exact on
a straight-line field, passes counted), the config around it (refusals on the wrong process, DDPM
run ids unchanged), every registered strategy on it (trains or is refused with its reason), and a
flow run stopped and resumed bit for bit."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import StopAt, run_files

import strategies
from bench import config as C
from bench import experiment
from bench.core import processes
from bench.core.flow import Flow, hutchinson
from bench.train.trainer import Interrupted

BASE = {"name": "flow", "seed": 0, "process": {"name": "flow"},
        "dataset": {"name": "toy2d", "n_train": 256, "n_test": 64},
        "backbone": {"name": "mlp", "width": 16, "depth": 1}, "diffusion": {"timesteps": 50},
        "train": {"iterations": 4, "batch_size": 32, "log_every": 2, "ckpt_every": 4,
                  "device": "cpu"},
        "eval": {"sampler": "euler", "steps": 5}}


def test_the_path_target_and_noise_level_of_a_cell():
    f = Flow(10)
    i = torch.tensor([0, 3, 9])
    t = (i.double() + 0.5) / 10
    x0, eps = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    assert torch.allclose(f.noised(x0, i, eps), (1 - t[:, None]) * x0 + t[:, None] * eps)
    assert torch.equal(f.target(x0, eps), eps - x0)
    assert torch.allclose(f.model_time(i).double(), 1000 * t, atol=1e-4)
    assert torch.equal(f.model_cell(f.model_time(i)), i)
    assert torch.allclose(f.log_snr(i), 2 * torch.log((1 - t) / t))
    assert torch.allclose(f.snr[i], ((1 - t) / t) ** 2)
    assert torch.allclose(f.eps_to_loss[i], (1 - t) ** 2)


def test_a_drawn_cell_trains_at_a_continuous_time_within_it_or_at_its_centre():
    cells = torch.arange(10).repeat(200)
    f = Flow(10)
    t = f.train_times(cells, torch.Generator().manual_seed(0))
    assert t.dtype == torch.float64 and torch.equal(f.grid.cell(t), cells)
    offset = t * 10 - cells                       # u ~ U[0, 1) within every cell
    assert offset.min() >= 0 and offset.max() < 1 and abs(offset.mean() - 0.5) < 0.03
    assert torch.equal(t, f.train_times(cells, torch.Generator().manual_seed(0)))
    x0, eps = torch.randn(2000, 3, dtype=torch.float64), torch.randn(2000, 3, dtype=torch.float64)
    assert torch.allclose(f.noised(x0, t, eps), (1 - t[:, None]) * x0 + t[:, None] * eps)
    assert torch.allclose(f.model_time(t).double(), 1000 * t, atol=1e-4)
    centre = Flow(10, cell_time="centre")
    assert torch.equal(centre.train_times(cells, torch.Generator()), cells)
    with pytest.raises(ValueError, match="unknown process.cell_time 'mid'; valid: uniform, centre"):
        Flow(10, cell_time="mid")


def test_the_step_trains_at_the_cell_time_the_process_chose(tmp_path, monkeypatch):
    """uniform: every training input at a continuous t in its drawn cell, not a centre; centre:
    the centres; DDPM: the drawn index (its runs unchanged)."""
    seen = {}

    def run(process, name, sampler="euler"):
        cfg = C.resolve(C.deep_update(BASE, {"process": process, "train": {"iterations": 2},
                                             "eval": {"sampler": sampler}}))
        experiment.run(cfg, tmp_path / name, progress=False, log_lines=False)

    for kind in (Flow, processes.PROCESSES["ddpm"]):
        orig = kind.noised

        def noised(self, x0, t, noise, orig=orig):
            seen.setdefault(self.name + getattr(self, "cell_time", ""), []).append(t.clone())
            return orig(self, x0, t, noise)
        monkeypatch.setattr(kind, "noised", noised)
    run({"name": "flow"}, "uniform")
    run({"name": "flow", "cell_time": "centre"}, "centre")
    run({"name": "ddpm"}, "ddpm", sampler="ddim")
    t = torch.cat(seen["flowuniform"])
    assert t.is_floating_point() and not torch.isin(t * 50 - 0.5, torch.arange(50.0)).any()
    assert all(not x.is_floating_point() for k in ("flowcentre", "ddpm") for x in seen[k])


def test_eps_and_x0_errors_are_the_velocity_error_scaled():
    """ε-MSE = (1 − t)²·v-MSE and x0-MSE = t²·v-MSE for one prediction."""
    f = Flow(20)
    i = torch.arange(20)
    t = f.time(i)[:, None]
    x0, eps, v_hat = (torch.randn(20, 6, dtype=torch.float64) for _ in range(3))
    x_t = f.noised(x0, i, eps)
    v_mse = f.loss(v_hat, f.target(x0, eps))
    eps_hat, x0_hat = x_t + (1 - t) * v_hat, x_t - t * v_hat
    assert torch.allclose(((eps - eps_hat) ** 2).mean(1), (1 - t[:, 0]) ** 2 * v_mse)
    assert torch.allclose(((x0 - x0_hat) ** 2).mean(1), t[:, 0] ** 2 * v_mse)


def test_uniform_time_is_logistic_in_log_snr():
    f = Flow(1000)
    lam = f.log_snr(torch.arange(1000))
    for x in (-6.0, -2.0, 0.0, 1.0, 5.0):
        frac = (lam <= x).double().mean()
        assert abs(float(frac) - 1 / (1 + math.exp(-x / 2))) < 2e-3


def test_min_snr_and_p2_weight_the_velocity_loss_as_their_eps_form():
    """The weight on the velocity loss times that loss is the ε-form weight times the ε-loss of
    the same prediction: Min-SNR-γ becomes min((1 − t)², γ·t²)."""
    f = Flow(100)
    t = f.t_centres
    w = strategies.build("min_snr", f, {"gamma": 5.0}).loss_weights()
    assert torch.allclose(w, torch.minimum((1 - t) ** 2, 5.0 * t**2))
    eps_w = torch.minimum(f.snr, torch.tensor(5.0, dtype=torch.float64)) / f.snr
    v_mse = torch.rand(100, dtype=torch.float64)
    assert torch.allclose(w * v_mse, eps_w * (1 - t) ** 2 * v_mse)
    p2 = strategies.build("p2", f, {"k": 1.0, "gamma": 1.0}).loss_weights()
    assert torch.allclose(p2, (1 - t) ** 2 / (1 + f.snr))


class PointMassField(torch.nn.Module):
    """The exact velocity field of data that is one point m: v(x, t) = (x − m)/t."""

    def __init__(self, m: torch.Tensor):
        super().__init__()
        self.m, self.calls = m, 0

    def forward(self, x, model_t):
        self.calls += 1
        return (x - self.m) / (model_t[:, None] / 1000.0)


@pytest.mark.parametrize("sampler,steps,passes", [("euler", 1, 1), ("euler", 7, 7),
                                                  ("heun", 1, 1), ("heun", 7, 13)])
def test_euler_and_heun_are_exact_on_straight_paths_and_count_their_passes(sampler, steps,
                                                                           passes):
    f, m = Flow(100), torch.tensor([0.3, -0.7])
    model = PointMassField(m)
    x = f.sample(model, (5, 2), torch.Generator().manual_seed(0), sampler=sampler, steps=steps,
                 clip=False)
    assert torch.allclose(x, m.expand(5, 2), atol=1e-5)
    assert model.calls == passes == f.sample_passes(sampler, steps)


@pytest.mark.parametrize("overrides,message", [
    ({"eval": {"sampler": "ddim", "at": [4]}}, "eval.sampler='ddim' does not sample process "
                                               "flow; valid: euler, heun"),
    ({"process": {"name": "ddpm"}, "diffusion": {"timesteps": 50},
      "eval": {"sampler": "heun", "at": [4]}}, "valid: ddpm, ddim"),
    ({"diffusion": {"schedule": "cosine"}}, "diffusion.schedule='cosine' has no meaning for "
                                            "process flow"),
    ({"process": {"name": "sde"}}, "unknown process.name 'sde'; valid: ddpm, flow"),
    ({"process": {"name": "flow", "cell_time": "mid"}}, "process.cell_time"),
    ({"process": {"name": "ddpm", "cell_time": "centre"}, "eval": {"sampler": "ddim"}},
     "process.cell_time='centre' has no meaning for process ddpm"),
])
def test_wrong_choices_for_a_process_are_refused_before_work(overrides, message):
    with pytest.raises(ValueError) as e:
        experiment.validate(C.resolve(C.deep_update(BASE, overrides)))
    assert message in str(e.value)


def test_the_process_key_at_its_default_leaves_every_ddpm_run_id_as_it_was():
    plain = {k: v for k, v in BASE.items() if k not in ("process", "eval")}
    before = C.run_id(C.resolve(plain))
    assert C.run_id(C.resolve({**plain, "process": {"name": "ddpm"}})) == before
    assert C.run_id(C.resolve({**plain, "eval": {"steps": 50}})) == before
    assert C.run_id(C.resolve({**plain, "process": {"name": "flow"}})) != before
    # a config.yaml written before process.cell_time existed reads back to the same id
    assert C.run_id({**C.resolve(plain), "process": {"name": "ddpm"}}) == before
    flow = C.resolve({**plain, "process": {"name": "flow"}})
    assert C.run_id({**flow, "process": {"name": "flow"}}) == C.run_id(flow)
    assert C.run_id(C.resolve({**plain, "process": {"name": "flow", "cell_time": "centre"}})) \
        != C.run_id(flow)


@pytest.mark.parametrize("name", strategies.names())
def test_every_strategy_trains_on_flow_or_is_refused_with_its_reason(name, tmp_path):
    cfg = C.resolve(C.deep_update(BASE, {"strategy": {"name": name}}))
    try:
        experiment.validate(cfg)
    except ValueError as e:
        assert "does not run on process flow: " in str(e), e
        assert name == "speed", f"{name} is refused on flow: {e}"
        return
    row = experiment.run(cfg, tmp_path / name, progress=False, log_lines=False)
    assert row["step"] == 4 and math.isfinite(row["loss"])


def test_a_flow_run_stopped_and_resumed_matches_an_uninterrupted_one(tmp_path):
    cfg = C.resolve(C.deep_update(BASE, {
        "strategy": {"name": "grad_variance", "refresh_every": 5},
        "train": {"iterations": 20, "ckpt_every": 10},
        "eval": {"at": [10, 20], "metrics": ["swd"], "n_samples": 100}}))
    experiment.run(cfg, tmp_path / "ref", progress=False)
    with pytest.raises(Interrupted):
        experiment.run(cfg, tmp_path / "cut", progress=False, extra_callbacks=[StopAt(10)])
    experiment.run(cfg, tmp_path / "cut", progress=False)
    ref, cut = run_files(tmp_path / "ref"), run_files(tmp_path / "cut")
    assert sorted(cut) == sorted(ref) and [f for f in ref if cut[f] != ref[f]] == []
    a = torch.load(tmp_path / "ref" / "ckpt" / "last.pt", weights_only=False)
    b = torch.load(tmp_path / "cut" / "ckpt" / "last.pt", weights_only=False)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


class GaussianField(torch.nn.Module):
    """The exact velocity field when the data is N(μ, s²·I): linear in x (docs/processes.md)."""

    def __init__(self, mu: torch.Tensor, s: float):
        super().__init__()
        self.mu, self.s2, self.calls = mu, s * s, 0

    def forward(self, x, model_t):
        self.calls += 1
        t = (model_t / 1000.0)[:, None].to(x.dtype)
        var = (1 - t) ** 2 * self.s2 + t**2
        return (t - (1 - t) * self.s2) / var * (x - (1 - t) * self.mu) - self.mu


def test_the_ode_likelihood_matches_the_closed_form_density_of_gaussian_data():
    """Data N(μ, s²I): the ODE's log-density is the Gaussian's, and (the Jacobian being a·I)
    Hutchinson is exact, so only the Heun discretisation is left."""
    f, D, s = Flow(100), 6, 0.5
    mu = torch.linspace(-0.5, 0.5, D)
    x0 = mu + s * torch.randn(64, D, generator=torch.Generator().manual_seed(0))
    bpd = f.ode_bpd(GaussianField(mu, s), x0, torch.Generator().manual_seed(1), steps=40)
    exact = torch.distributions.Normal(mu.double(), s).log_prob(x0.double()).sum(1)
    assert torch.allclose(bpd, -exact / D / math.log(2), atol=2e-3)


def test_hutchinson_is_unbiased_for_the_trace_of_a_network_jacobian():
    """On a small MLP, ``hutchinson``'s estimate over many probes is within 4 standard errors of
    the exact trace of the Jacobian, and with one probe per example it varies."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))

    def model(x, model_t):
        return net(torch.cat([x, model_t[:, None] / 1000], 1))

    x, mt = torch.randn(1, 4), torch.full((1,), 300.0)
    J = torch.autograd.functional.jacobian(lambda y: model(y, mt), x)[0, :, 0, :]
    P = 4000
    z = (torch.randint(0, 2, (P, 1, 4), generator=torch.Generator().manual_seed(2)) * 2 - 1)
    _, one_each = hutchinson(model, x.repeat(P, 1), mt.repeat(P), z.float().transpose(0, 1))
    assert abs(float(one_each.mean()) - float(torch.trace(J))) < \
        4 * float(one_each.std()) / math.sqrt(P)
    v, pooled = hutchinson(model, x, mt, z.float())
    assert torch.allclose(pooled, one_each.mean().reshape(1), atol=1e-6)
    assert torch.allclose(v, model(x, mt))


@pytest.mark.parametrize("steps,probes", [(3, 1), (5, 2)])
def test_the_ode_likelihood_counts_its_forward_and_backward_passes(steps, probes, tmp_path):
    cfg = C.resolve(C.deep_update(BASE, {
        "eval": {"at": [4], "metrics": ["nll"], "nll": {"n_images": 10, "ode_steps": steps,
                                                        "probes": probes}}}))
    experiment.run(cfg, tmp_path / "r", progress=False, log_lines=False)
    import pandas as pd
    row = pd.read_csv(tmp_path / "r" / "evals.csv").iloc[0]
    assert row["metric"] == "nll_ode_bpd" and row["sampler"] == f"ode_heun{steps}_hutch{probes}"
    assert row["fwd_eval"] == 10 * 2 * steps == 10 * Flow(50).likelihood_passes(steps)
    assert row["bwd_eval"] == 10 * 2 * steps * probes


def test_processes_build_names_the_valid_processes():
    with pytest.raises(ValueError, match="valid: ddpm, flow"):
        processes.build({"schedule": "linear", "timesteps": 10}, "sde")


def test_the_flow_elbo_terms_are_its_integrand_and_adaptive_beta_adapts_on_them(tmp_path):
    """likelihood_terms = elbo_weights × the velocity MSE (bits/dim); the low-variance adaptive
    sampler runs on flow and updates its Beta policy from them."""
    f = Flow(50)
    i = torch.tensor([0, 10, 49])
    x0, eps, pred = (torch.randn(3, 4) for _ in range(3))
    x_t = f.noised(x0, i, eps)
    want = f.elbo_weights()[i].float() * f.loss(pred, eps - x0) / math.log(2)
    assert torch.allclose(f.likelihood_terms(pred, x0, x_t, i), want, rtol=1e-5)
    cfg = C.resolve(C.deep_update(BASE, {
        "strategy": {"name": "adaptive_beta", "variant": "low_variance", "update_every": 2,
                     "hidden_dim": 16},
        "train": {"iterations": 8, "ckpt_every": 8}}))
    experiment.run(cfg, tmp_path / "r", progress=False, log_lines=False)
    import pandas as pd
    rows = pd.read_csv(tmp_path / "r" / "timesteps" / "adaptation.csv")
    updates = rows[rows["event"] == "update"]
    assert len(updates) >= 3 and updates["reward_mean"].notna().all()


def test_adaptive_beta_can_reward_the_change_of_the_training_loss_instead(tmp_path):
    """reward_terms: loss — the velocity-loss change at S (the one public flow port's reward);
    a late parameter, so the default run id is unchanged."""
    spec = {"name": "adaptive_beta", "variant": "low_variance", "update_every": 2,
            "hidden_dim": 16}
    default = C.run_id(C.resolve(C.deep_update(BASE, {"strategy": spec})))
    assert C.run_id(C.resolve(C.deep_update(BASE, {"strategy": {
        **spec, "reward_terms": "likelihood"}}))) == default
    cfg = C.resolve(C.deep_update(BASE, {"strategy": {**spec, "reward_terms": "loss"},
                                         "train": {"iterations": 8, "ckpt_every": 8}}))
    experiment.run(cfg, tmp_path / "r", progress=False, log_lines=False)
    import pandas as pd
    rows = pd.read_csv(tmp_path / "r" / "timesteps" / "adaptation.csv")
    updates = rows[rows["event"] == "update"]
    assert len(updates) >= 3 and updates["reward_mean"].notna().all()
    with pytest.raises(ValueError, match="reward_terms"):
        experiment.validate(C.resolve(C.deep_update(BASE, {"strategy": {
            "name": "adaptive_beta", "reward_terms": "mse"}})))
