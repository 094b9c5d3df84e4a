"""Adaptation made visible: timesteps/adaptation.csv for learned strategies, the report's "did not
adapt" verdict (a transient jump is not adaptation), and the trace command."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pandas as pd
import pytest
import torch

import strategies
from bench.analysis.adaptation import MARK, THRESHOLD, summary
from bench.analysis.load import load
from bench import config as C
from bench import experiment
from bench.rundir import runpaths, runtables
from bench.evaluation import adaptation as ev_adapt
from bench.report.build import build
from bench.tools import strategies as strategies_cli
from bench.train.trainer import Interrupted
from strategies.base import Draw, Strategy

from helpers import StopAt

pytestmark = pytest.mark.usefixtures("one_thread")

T, B = 100, 32


class _Scripted(Strategy):
    """A learned sampler whose p(t) follows a script: uniform, except on [jump_from, jump_to)
    where almost all mass sits on the last ``width`` timesteps."""

    learned = True

    @dataclass(frozen=True)
    class Params:
        jump_from: int = 10
        jump_to: int = 14
        width: int = 5

    def __init__(self, diffusion, params=None):
        super().__init__(diffusion, params)
        self.jumped = False

    def probabilities(self) -> torch.Tensor:
        p = torch.full((self.T,), 1.0 / self.T, dtype=torch.float64)
        if self.jumped:
            p = torch.full((self.T,), 1e-6, dtype=torch.float64)
            p[-self.params.width:] = 1.0
        return p / p.sum()

    def sample(self, x0, generator) -> Draw:
        t = torch.multinomial(self.probabilities(), x0.shape[0], replacement=True,
                              generator=generator)
        return self.draw(t).select(slice(None), x0.device)

    def after_update(self, ctx) -> None:
        step = ctx.step + 1
        was = self.jumped
        self.jumped = self.params.jump_from <= step < self.params.jump_to
        if step % 2 == 0 or was != self.jumped:
            ctx.adapted = {}

    def state_dict(self):
        return {"jumped": self.jumped}

    def load_state_dict(self, state):
        self.jumped = state["jumped"]


@pytest.fixture
def scripted():
    cls = type("Scripted", (_Scripted,), {"name": "test_scripted"})
    strategies.register(cls)
    yield cls
    strategies.registry.unregister("test_scripted")


def _cfg(strategy: dict, iterations: int = 100, seed: int = 0) -> dict:
    return C.resolve({
        "seed": seed, "dataset": {"name": "toy2d", "kind": "8gaussians"},
        "backbone": {"name": "mlp", "width": 32, "depth": 2},
        "strategy": strategy, "diffusion": {"timesteps": T},
        "train": {"iterations": iterations, "batch_size": B, "log_every": 10, "ckpt_every": 50,
                  "device": "cpu"},
        "eval": {"at": [iterations], "metrics": ["swd"], "n_samples": 64, "ddim_steps": 5}})



def _run(tmp_path, name, cfg):
    d = tmp_path / "res" / "sweep" / name
    experiment.run(cfg, d, progress=False)
    return d


# ---------------------------------------------------------------------------- pure functions
def test_total_variation_entropy_and_quarters():
    u = torch.full((8,), 1 / 8, dtype=torch.float64)
    point = torch.zeros(8, dtype=torch.float64)
    point[-1] = 1
    assert ev_adapt.tv(u, u) == 0 and ev_adapt.tv(point, u) == pytest.approx(7 / 8)
    assert ev_adapt.entropy(u) == pytest.approx(torch.log(torch.tensor(8.0)).item())
    assert ev_adapt.quarters(point) == [0, 0, 0, 1]
    assert ev_adapt.drawn_tv(torch.ones(100, dtype=torch.long), k=20) == pytest.approx(0)
    assert ev_adapt.drawn_tv(torch.zeros(100, dtype=torch.long)) != ev_adapt.drawn_tv(
        torch.zeros(100, dtype=torch.long))                    # NaN before any draw


# ---------------------------------------------------------------------------- the verdict
def test_a_short_jump_of_p_t_is_labelled_did_not_adapt(tmp_path, scripted):
    jump = _run(tmp_path, "jump", _cfg({"name": "test_scripted"}))
    rows = runtables.read_timesteps(jump)["adaptation"]
    assert rows["tv_uniform"].max() > 0.9                        # the jump is in the file...
    s = summary(rows)
    assert s["drawn_tv"] < THRESHOLD and not s["adapted"]       # ...but is not adaptation
    stay = _run(tmp_path, "stay", _cfg({"name": "test_scripted", "jump_from": 10,
                                        "jump_to": 10**6}))
    assert summary(runtables.read_timesteps(stay)["adaptation"])["adapted"]
    rep = build(load(tmp_path / "res"), baseline="test_scripted")
    text = "\n".join(t.md for t in rep.tables)
    assert f"test_scripted [{MARK}]" in text                   # in the table rows
    adapt = next(t for t in rep.tables if t.slug.startswith("adaptation"))
    assert list(adapt.table["adapted"]) == [False, True]
    legend = [t.get_text() for f in rep.figures if f.figure.legends
              for t in f.figure.legends[0].get_texts()]
    assert any(x.endswith("†") for x in legend)                  # and in the legends (†) with
    assert any(f"test_scripted † = test_scripted [{MARK}" in f.caption for f in rep.figures)


def test_adaptation_rows_of_adaptive_beta_and_resume_identity(tmp_path):
    cfg = _cfg({"name": "adaptive_beta", "update_every": 5}, iterations=40)
    straight = _run(tmp_path, "a", cfg)
    rows = runtables.read_timesteps(straight)["adaptation"]
    upd = rows[rows["event"] == "update"]
    assert list(upd["step"]) == list(range(1, 40, 5))           # after steps 0, 5, 10, ...
    assert list(rows["event"])[-1] == "end" and rows["step"].max() == 40
    q = upd[["q1", "q2", "q3", "q4"]].sum(axis=1)
    assert ((q - 1).abs() < 1e-9).all()
    assert upd["tv_uniform"].between(0, 1).all() and upd["reward_std"].gt(0).all()
    assert upd["s_set"].astype(str).str.split().map(len).eq(3).all()
    assert (upd["alpha_min"] <= upd["alpha_mean"]).all()
    drawn = runtables.read_timesteps(straight)["t_drawn"]
    assert int(drawn["count"].sum()) == 40 * B
    # a run stopped at a checkpoint (as SIGTERM does) and resumed writes the same rows
    split = tmp_path / "res" / "sweep" / "b"
    with pytest.raises(Interrupted):
        experiment.run(cfg, split, progress=False, extra_callbacks=[StopAt(23)])
    experiment.run(cfg, split, progress=False)
    pd.testing.assert_frame_equal(runtables.read_timesteps(split)["adaptation"], rows)


def test_a_sampler_that_starts_away_from_uniform_and_stays_did_not_adapt(tmp_path):
    frozen = {"name": "adaptive_beta", "update_every": 5, "init_alpha": 2.0, "init_beta": 5.0,
              "lr": 1e-12}
    d = _run(tmp_path, "frozen", _cfg(frozen, iterations=40))
    rows = runtables.read_timesteps(d)["adaptation"]
    s = summary(rows)
    assert s["drawn_tv"] > 0.3                       # far from uniform, as it started
    assert s["drawn_tv_initial"] < THRESHOLD and not s["adapted"]
    assert rows["s_set"].dropna().map(type).eq(str).all()     # read back as text


def test_every_step_updaters_get_a_row_per_log_tick(tmp_path):
    d = _run(tmp_path, "lsm", _cfg({"name": "loss_second_moment"}, iterations=30))
    rows = runtables.read_timesteps(d)["adaptation"]
    assert list(rows["step"]) == [1, 10, 20, 30]


def test_fixed_strategies_write_no_adaptation_file(tmp_path):
    d = _run(tmp_path, "u", _cfg({"name": "uniform"}, iterations=10))
    assert not runpaths.timesteps_path(d, "adaptation").exists()


# ---------------------------------------------------------------------------- trace
def test_trace_prints_the_rows_and_the_verdict(tmp_path, scripted):
    d = _run(tmp_path, "jump", _cfg({"name": "test_scripted"}, iterations=40))
    out = io.StringIO()
    assert strategies_cli.main(["trace", str(d)], out=out) == 0
    text = out.getvalue()
    assert "tv_uniform" in text and text.strip().endswith(f"{MARK} (threshold 0.1)")
    every = io.StringIO()
    assert strategies_cli.main(["trace", str(d), "--rows"], out=every) == 0
    n = len(runtables.read_timesteps(d)["adaptation"])
    assert n > 2 and len(text.splitlines()) == 1 + 2 + 1          # header, first, last, verdict
    assert len(every.getvalue().splitlines()) == 1 + n + 1


def test_trace_rejects_a_fixed_strategy_run_and_a_missing_folder(tmp_path, capsys):
    d = _run(tmp_path, "u", _cfg({"name": "uniform"}, iterations=10))
    assert strategies_cli.main(["trace", str(d)]) == 2
    assert "not learned" in capsys.readouterr().err
    assert strategies_cli.main(["trace", str(tmp_path / "nope")]) == 2
    assert "not a run directory" in capsys.readouterr().err
