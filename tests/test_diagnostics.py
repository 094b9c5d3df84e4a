"""Per-timestep diagnostics (bench.evaluation.diagnostics): the VLB weighting c_t, the gradient-scaling
wrapper, reuse of the grad_variance estimator, and a short run whose files load with one call."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from bench import config as C
from bench.rundir import runpaths, runtables
from bench.evaluation import diagnostics as D
from bench import experiment
from bench.core.ddpm import DDPM
from bench.core.rng import generator
from bench.core.grad_variance import bin_gradient_variance, timestep_bins


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_vlb_weights_are_eq7_with_fixed_large_variance():
    d = DDPM("linear", 1000, "fixed_large")
    c = d.elbo_weights().numpy()
    beta = np.linspace(1e-4, 0.02, 1000)
    abar = np.cumprod(1 - beta)
    np.testing.assert_allclose(c[1:], beta[1:] / (2 * (1 - beta[1:]) * (1 - abar[1:])), rtol=1e-10)
    # t = 0: σ_0² = β̃_1 under fixed-large, c_0 = β_0/(2α_0β̃_1) ≈ 0.917
    # (docs/official_code.md#adaptive-beta-reward)
    assert c[0] == pytest.approx(0.917, abs=1e-3)
    assert (D.weights(d, "ddpm") == 1).all()
    with pytest.raises(ValueError, match="weighting"):
        D.weights(d, "p2")


def _mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))


class TimeMLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = _mlp()

    def forward(self, x, t):
        return self.net(torch.cat([x, t[:, None].float() / 100], 1))


def test_weighted_grad_scales_each_examples_gradient_by_its_weight():
    model, d = TimeMLP(), DDPM("linear", 100)
    w = torch.rand(100, dtype=torch.float64) * 5
    x, t, eps = torch.randn(6, 2), torch.randint(0, 100, (6,)), torch.randn(6, 2)
    wrapped = D.WeightedGrad(model, w, d)
    for b in range(6):
        xt = d.q_sample(x[b:b + 1], t[b:b + 1], eps[b:b + 1])
        g1 = torch.autograd.grad(((eps[b:b + 1] - wrapped(xt, t[b:b + 1])) ** 2).mean(),
                                 list(model.parameters()))
        g0 = torch.autograd.grad(((eps[b:b + 1] - model(xt, t[b:b + 1])) ** 2).mean(),
                                 list(model.parameters()))
        for a, c in zip(g1, g0):
            torch.testing.assert_close(a, float(w[t[b]]) * c)
    torch.testing.assert_close(wrapped(x, t), model(x, t))           # forward unchanged


@pytest.mark.parametrize("estimator", ["two_half", "per_sample"])
def test_snapshot_reuses_the_grad_variance_estimator(estimator):
    """ddpm rows are exactly bin_gradient_variance; vlb rows match per-example c_t·ℓ_t by hand."""
    model, d = TimeMLP(), DDPM("linear", 100)
    x0 = torch.randn(40, 2, generator=torch.Generator().manual_seed(0))
    df = D.snapshot(model, d, x0, seed=3, step=7, bins=4, loss_per_bin=16, per_bin=8,
                    estimator=estimator)
    assert len(df) == 4 * 2 and set(df["weighting"]) == {"ddpm", "vlb"}
    edges = timestep_bins(100, 4)
    ref = bin_gradient_variance(model, d, x0, edges, per_bin=8, estimator=estimator,
                                generator=generator(3, "diag_grad", 7))
    np.testing.assert_allclose(df[df.weighting == "ddpm"]["grad_var"], ref.numpy(), rtol=1e-6)
    if estimator == "per_sample":                  # hand-rolled per-example gradients of c_t·ℓ_t
        c, gen, params = d.elbo_weights(), generator(3, "diag_grad", 7), list(model.parameters())
        want = []
        for k in range(4):
            idx = torch.randperm(40, generator=gen)[:8]
            t = torch.randint(int(edges[k]), int(edges[k + 1]), (8,), generator=gen)
            eps = torch.randn((8, 2), generator=gen)
            xt = d.q_sample(x0[idx], t, eps)
            gs = []
            for b in range(8):
                out = model(xt[b:b + 1], t[b:b + 1])
                loss = float(c[t[b]]) * ((eps[b:b + 1] - out) ** 2).mean()
                gs.append(torch.cat([g.flatten() for g in torch.autograd.grad(loss, params)]))
            G = torch.stack(gs).double()
            want.append(float(((G - G.mean(0)) ** 2).sum() / 7))
        np.testing.assert_allclose(df[df.weighting == "vlb"]["grad_var"], want, rtol=1e-5)
    # the vlb loss is c_t × ε-MSE on the same draws, per bin
    assert (df["loss"] > 0).all() and (df["n_loss"] == 16).all()


def _toy_cfg(**eval_overrides):
    ev = {"diagnostics": {"every": 20, "at": [0], "bins": 5, "loss_per_bin": 32, "per_bin": 8,
                          "pool": 64, "hist_bins": 10}}
    ev.update(eval_overrides)
    return C.resolve({
        "name": "toy_diag", "dataset": {"name": "toy2d", "n_train": 512, "n_test": 128},
        "backbone": {"name": "mlp", "width": 32, "depth": 2},
        "diffusion": {"timesteps": 100},
        "train": {"iterations": 40, "batch_size": 64, "log_every": 20, "ckpt_every": 20,
                  "device": "cpu"},
        "eval": ev})


def test_short_run_diagnostics_load_with_one_call_and_documented_shapes(tmp_path):
    cfg = _toy_cfg()
    experiment.run(cfg, tmp_path / "r", progress=False)
    tabs = runtables.read_timesteps(tmp_path / "r")
    assert set(tabs) == set(runpaths.TIMESTEP_FILES)
    # a non-learned strategy writes no adaptation files: their frames are empty
    assert tabs["adaptation"].empty and tabs["t_drawn"].empty
    for kind, df in tabs.items():
        assert isinstance(df, pd.DataFrame) and tuple(df.columns) == runtables.timestep_table(kind).columns
    snaps, bins, T, hb = [0, 20, 40], 5, 100, 10
    dg = tabs["diagnostics"]
    assert dg.shape == (len(snaps) * bins * 2, len(runtables.timestep_table("diagnostics").columns))
    assert sorted(dg["step"].unique()) == snaps
    assert (dg.groupby(["step", "weighting"]).size() == bins).all()
    assert np.isfinite(dg["grad_var"]).all() and (dg["grad_var"] > 0).all()
    assert (dg["nimg"] == dg["step"] * 64).all()
    pt = tabs["p_t"]
    assert pt.shape == (len(snaps) * T, 3)
    np.testing.assert_allclose(pt.groupby("step")["p"].sum(), 1.0, rtol=1e-9)
    th = tabs["t_hist"]
    assert th.shape == (2 * hb, 6)                            # intervals (0,20], (20,40]
    assert (th.groupby("step")["count"].sum() == 20 * 64).all()
    assert list(th.groupby("step")["step_from"].first()) == [0, 20]


def test_truncate_drops_rows_after_the_resume_step(tmp_path):
    for step in (0, 20, 40):
        runtables.append_timesteps(tmp_path, "p_t", D.p_t_frame(step, torch.full((4,), 0.25)))
    runtables.append_timesteps(tmp_path, "p_t", D.p_t_frame(20, torch.full((4,), 0.25)))    # re-written: replaced
    assert len(runtables.read_timesteps(tmp_path)["p_t"]) == 12
    runtables.truncate_timesteps(tmp_path, 20)
    assert sorted(runtables.read_timesteps(tmp_path)["p_t"]["step"].unique()) == [0, 20]
    empty = runtables.read_timesteps(tmp_path / "nothing")
    assert all(len(df) == 0 for df in empty.values())


def test_grad_variance_off_gives_empty_column():
    model, d = TimeMLP(), DDPM("linear", 100)
    df = D.snapshot(model, d, torch.randn(20, 2), seed=0, step=0, bins=3, loss_per_bin=4,
                    per_bin=0)
    assert df["grad_var"].isna().all() and math.isfinite(df["loss"].sum())
