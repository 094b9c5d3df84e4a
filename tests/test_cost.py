"""Cost in network evaluations (bench.core.cost): every per-example pass through the diffusion
network is counted by purpose, and the counts follow the formulas of docs/cost.md."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from torch.func import functional_call, grad, vmap

import strategies

from bench import config as C
from bench import experiment
from bench.core import processes
from bench.rundir import runpaths
from bench.core.cost import forward_equivalents
from bench.core.counted import Counted, examples
from bench.core.ddpm import DDPM
from bench.evaluation.callbacks import Evaluator
from bench.train.trainer import Interrupted, Trainer

from helpers import StopAt

pytestmark = pytest.mark.usefixtures("one_thread")

T, B, N = 100, 32, 20


def _cfg(strategy: dict, iterations: int = N, **eval_cfg) -> dict:
    return C.resolve({
        "seed": 1, "dataset": {"name": "toy2d", "kind": "8gaussians"},
        "backbone": {"name": "mlp", "width": 32, "depth": 2},
        "strategy": strategy, "diffusion": {"timesteps": T},
        "train": {"iterations": iterations, "batch_size": B, "log_every": 5, "ckpt_every": 100,
                  "device": "cpu"},
        "eval": eval_cfg})


def _trained(cfg: dict, run_dir) -> Trainer:
    run_dir.mkdir(parents=True, exist_ok=True)
    tr = Trainer(cfg, run_dir, progress=False)
    tr.run()
    return tr


def _rows(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / runpaths.METRICS).read_text().splitlines()]


# ---------------------------------------------------------------------------- the wrapper
class _Net(torch.nn.Module):
    def __init__(self, d: int = 3):
        super().__init__()
        self.lin = torch.nn.Linear(d, d)

    def forward(self, x, t):
        return self.lin(x)


def test_counted_counts_forwards_and_every_backward_through_the_output():
    net = Counted(_Net())
    x, t = torch.randn(8, 3), torch.zeros(8, dtype=torch.long)
    with torch.no_grad():
        net(x, t)
    assert net.counts() == (8, 0)
    out = net(x, t).pow(2).mean(1)
    params = list(net.parameters())
    torch.autograd.grad(out[:4].mean(), params, retain_graph=True)
    torch.autograd.grad(out[4:].mean(), params)
    assert net.counts() == (16, 16)     # two backward passes through a batch of 8


def test_counted_sees_the_batch_that_vmap_hides():
    net = Counted(_Net())
    x, t = torch.randn(6, 3), torch.zeros(6, dtype=torch.long)
    params = {k: v.detach() for k, v in net.named_parameters()}

    def loss(p, xi, ti):
        return functional_call(net, p, (xi[None], ti[None])).pow(2).sum()

    vmap(grad(loss), in_dims=(None, 0, 0))(params, x, t)
    assert net.counts() == (6, 6)
    assert examples(x) == 6


def test_counted_follows_the_inner_models_mode():
    inner = _Net()
    net = Counted(inner)
    net.eval()
    assert not inner.training and not net.training
    inner.train()
    assert net.training


def test_forward_equivalents_formula():
    assert forward_equivalents(10, 3) == 16
    assert forward_equivalents(10, 3, bwd_factor=1.0) == 13


# ---------------------------------------------------------------------------- training counts
def test_uniform_counts_its_step_and_no_strategy_pass(tmp_path):
    experiment.run(_cfg({"name": "uniform"}), tmp_path / "r", progress=False)
    for row in _rows(tmp_path / "r"):
        assert row["fwd_train"] == row["bwd_train"] == row["step"] * B
        assert row["fwd_strategy"] == row["bwd_strategy"] == 0


@pytest.mark.parametrize("params", [{}, {"variant": "low_variance"}, {"num_selected": 2}])
def test_adaptive_beta_counts_two_times_S_B_plus_T_forwards_per_update(tmp_path, params):
    f = 4
    cfg = _cfg({"name": "adaptive_beta", "update_every": f, **params})
    tr = _trained(cfg, tmp_path / "r")
    S = tr.strategy.params.num_selected
    assert tr.strategy.n_updates == len(range(0, N, f))
    for row in _rows(tmp_path / "r"):
        updates = len(range(0, row["step"], f))               # steps 0, f, 2f, ... before it
        assert row["fwd_strategy"] == updates * 2 * (S * B + T)
        assert row["bwd_strategy"] == 0
        assert row["fwd_train"] == row["bwd_train"] == row["step"] * B


@pytest.mark.parametrize("estimator,bwd_per_example", [("two_half", 2), ("per_sample", 1)])
def test_grad_variance_refresh_counts_its_forwards_and_backwards(tmp_path, estimator,
                                                                 bwd_per_example):
    K, per_bin, r = 4, 6, 8
    cfg = _cfg({"name": "grad_variance", "bins": K, "per_bin": per_bin, "refresh_every": r,
                "estimator": estimator, "param_subset": 2})
    tr = _trained(cfg, tmp_path / "r")
    assert tr.strategy.n_refresh == len(range(0, N, r))
    for row in _rows(tmp_path / "r"):
        refreshes = len(range(0, row["step"], r))
        assert row["fwd_strategy"] == refreshes * K * per_bin
        assert row["bwd_strategy"] == refreshes * K * per_bin * bwd_per_example


def test_counts_survive_a_resume(tmp_path):
    cfg = _cfg({"name": "adaptive_beta", "update_every": 3}, iterations=12)
    cfg["train"]["ckpt_every"] = 6
    straight, split = tmp_path / "a", tmp_path / "b"
    _trained(cfg, straight)
    split.mkdir()
    with pytest.raises(Interrupted):            # stopped at step 7, as SIGTERM does
        Trainer(cfg, split, progress=False, callbacks=[StopAt(7)]).run()
    tr = _trained(cfg, split)

    def strip(rows):
        return [{k: v for k, v in r.items() if k != "wall_s_train"} for r in rows]

    assert strip(_rows(split)) == strip(_rows(straight))
    assert int(tr.t_counts.sum()) == 12 * B



# ---------------------------------------------------------------------------- evaluation counts
class _Data:
    shape, is_image, clip, decode, pixels = (2,), False, False, None, None


def test_ddim_k_evaluation_of_n_samples_records_n_times_k_forwards():
    n, k = 40, 7
    cfg = Evaluator(_cfg({"name": "uniform"}, metrics=["swd"], n_samples=n, sampler="ddim",
                         ddim_steps=k, batch_size=16))
    rows = cfg.evaluate(_Net(2), DDPM("linear", T), _Data(), 0, torch.device("cpu"))
    assert [r["fwd_eval"] for r in rows] == [n * k]


def test_ddpm_evaluation_records_n_times_T_forwards():
    n = 10
    ev = Evaluator(_cfg({"name": "uniform"}, metrics=["swd"], n_samples=n, sampler="ddpm"))
    rows = ev.evaluate(_Net(2), DDPM("linear", T), _Data(), 0, torch.device("cpu"))
    assert [r["fwd_eval"] for r in rows] == [n * T]


def test_evals_csv_rows_carry_the_eval_passes_and_the_training_cost(tmp_path):
    cfg = _cfg({"name": "uniform"}, iterations=10, at=[10], metrics=["swd", "nll"],
               n_samples=20, ddim_steps=5, nll={"n_images": 8, "timesteps": 4})
    experiment.run(cfg, tmp_path / "r", progress=False)
    ev = pd.read_csv(tmp_path / "r" / runpaths.EVALS).set_index("metric")
    assert ev.loc["swd", "fwd_eval"] == 20 * 5
    assert ev.loc["nll_bpd", "fwd_eval"] == 8 * (4 + 1)      # K strata + the t = 0 term
    assert (ev["fwd_train"] == 10 * B).all() and (ev["fwd_strategy"] == 0).all()


@pytest.mark.parametrize("process", ["ddpm", "flow"])
@pytest.mark.parametrize("strategy", [
    {"name": "adaptive_beta", "update_every": 7},
    {"name": "adaptive_beta", "variant": "low_variance", "update_every": 5},
    {"name": "adaptive_beta", "update_every": 3, "all_t_stride": 4, "all_t_every": 2},
    {"name": "adaptive_beta", "variant": "low_variance", "update_every": 2, "all_t_stride": 7,
     "all_t_every": 3, "chunk_size": "all"},
    {"name": "grad_variance", "refresh_every": 6, "bins": 5, "per_bin": 4},
    {"name": "grad_variance", "refresh_every": 6, "bins": 5, "per_bin": 4,
     "estimator": "per_sample"},
    {"name": "compose", "sampler": {"name": "adaptive_beta", "update_every": 4},
     "weighting": {"name": "min_snr"}},
    {"name": "loss_second_moment"},
], ids=["adaptive_beta", "adaptive_beta_low_variance", "adaptive_beta_cheap",
        "adaptive_beta_low_variance_cheap", "grad_variance", "grad_variance_per_sample",
        "compose", "loss_second_moment"])
def test_a_strategys_planned_passes_are_what_its_run_counts(strategy, process, tmp_path):
    """The plan's formula (Strategy.planned_passes, docs/cost.md) against the counters of a real
    20-step run: equal, forwards and backwards."""
    cfg = C.resolve({"seed": 0, "process": {"name": process},
                     "dataset": {"name": "toy2d", "n_train": 256, "n_test": 64},
                     "backbone": {"name": "mlp", "width": 16, "depth": 1},
                     "diffusion": {"timesteps": 30}, "strategy": strategy,
                     "train": {"iterations": 20, "batch_size": 32, "log_every": 20,
                               "ckpt_every": 20, "device": "cpu"},
                     **({"eval": {"sampler": "euler"}} if process == "flow" else {})})
    experiment.run(cfg, tmp_path / "r", progress=False, log_lines=False)
    last = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()][-1]
    s = strategies.build(strategy["name"], processes.build(cfg["diffusion"], cfg["process"]),
                         {k: v for k, v in strategy.items() if k != "name"})
    assert s.planned_passes(32, 20) == (last["fwd_strategy"], last["bwd_strategy"])
