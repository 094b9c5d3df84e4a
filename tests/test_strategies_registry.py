"""Registry-wide checks: every registered strategy (with default parameters, plus a few extra
configurations) is parametrised from ``strategy_cases()``, so a new strategy file is picked up
automatically — ``test_a_new_strategy_is_picked_up_and_checked`` proves it with a dummy.

Per case, on both processes (DDPM and flow; a strategy a process refuses is listed in REFUSED and
checked to be refused): Draw shapes/dtypes/ranges and loss_weight = loss_weights()[t];
probabilities() is a distribution; a χ² test of 10⁵ draws against probabilities(); determinism
under a seeded generator; a state_dict round-trip after real trainer steps; a trainer smoke run.
Plus bad inputs.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import scipy.stats
import torch

import strategies
from bench import config as C
from bench.data.datasets import toy_points
from bench.core.ddpm import DDPM
from bench.core.flow import Flow
from bench.experiment import run
from bench.train.trainer import Trainer
from strategies.base import Draw, Strategy
from strategies.registry import register, unregister

T = 50
SCHEDULE = "linear"
EXTRA_CASES: list[tuple[str, dict]] = [
    ("compose", {"sampler": {"name": "speed"}, "weighting": {"name": "min_snr", "gamma": 5}}),
    ("compose", {"sampler": {"name": "loss_second_moment"}, "weighting": {"name": "p2"}}),
    # Kim et al. Table 3, "Min-SNR + Ours"
    ("compose", {"sampler": {"name": "adaptive_beta"},
                 "weighting": {"name": "min_snr", "gamma": 5}}),
    ("lognormal", {"variant": "edm"}),
    ("lognormal", {"discretise": "floor"}),
    ("speed", {"dual": False}),
    ("compose", {"sampler": {"name": "adaptive_beta"}, "stratified": True}),
    ("compose", {"sampler": {"name": "mode"}, "weighting": {"name": "debiased"},
                 "stratified": True}),
    ("compose", {"sampler": {"name": "uniform"}, "stratified": True}),
    ("compose", {"sampler": {"name": "lognormal"}, "shift": 3.0}),
    ("compose", {"sampler": {"name": "adaptive_beta"}, "shift": "auto", "seq_len": 4096,
                 "stratified": True}),
    ("compose", {"sampler": {"name": "u_shaped"}, "weighting": {"name": "sigma_sqrt"}}),
    ("cosmap", {"use": "weight"}),
    ("debiased", {"max_snr": 1000}),
    ("fm_curriculum", {"switch_step": 10}),
]
# (process, strategy, params) a process refuses, before any work (the reason is the strategy's)
REFUSED = [("flow", "speed", {}), ("flow", "speed", {"dual": False}),
           ("flow", "compose", {"sampler": {"name": "speed"},
                                "weighting": {"name": "min_snr", "gamma": 5}}),
           ("ddpm", "sigma_sqrt", {}), ("ddpm", "cosmap", {"use": "weight"}),
           ("ddpm", "compose", {"sampler": {"name": "lognormal"}, "shift": 3.0}),
           ("ddpm", "compose", {"sampler": {"name": "adaptive_beta"}, "shift": "auto",
                                "seq_len": 4096, "stratified": True}),
           ("ddpm", "compose", {"sampler": {"name": "u_shaped"},
                                "weighting": {"name": "sigma_sqrt"}})]


def strategy_cases() -> list[tuple[str, dict]]:
    """Every registered strategy with its default parameters, then the extra configurations."""
    def names_in(name: str, params: dict) -> set[str]:
        out = {name}
        for v in params.values():
            if isinstance(v, dict) and "name" in v:
                out |= names_in(v["name"], v)
        return out

    cases = [(name, {}) for name in strategies.names()]
    return cases + [(n, p) for n, p in EXTRA_CASES if names_in(n, p) <= set(strategies.names())]


def process_cases() -> list[tuple[str, str, dict]]:
    """Every case on each process, but those the process refuses (REFUSED)."""
    return [(proc, n, p) for proc in PROCESSES for n, p in strategy_cases()
            if (proc, n, p) not in REFUSED]


def case_id(case) -> str:
    """A stable, readable test id: ``flow:compose[sampler.name=speed,...]``."""
    def flat(d: dict, prefix: str = "") -> list[str]:
        out = []
        for k, v in d.items():
            out += flat(v, f"{prefix}{k}.") if isinstance(v, dict) else [f"{prefix}{k}={v}"]
        return out
    proc, name, params = case
    return f"{proc}:{name}" + (f"[{','.join(flat(params))}]" if params else "")


PROCESSES = {"ddpm": DDPM(SCHEDULE, T), "flow": Flow(T)}
CASES = process_cases()
IDS = [case_id(c) for c in CASES]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# --------------------------------------------------------------------------- helpers
def toy_x0(n: int, seed: int = 0) -> torch.Tensor:
    """A realistic 2-D toy batch [n, 2] (strategies whose policy reads x0 need content)."""
    return toy_points("8gaussians", n, torch.Generator().manual_seed(seed))


def build(name: str, params: dict, process: str = "ddpm") -> Strategy:
    return strategies.build(name, PROCESSES[process], params)


def tiny_config(name: str, params: dict, iterations: int = 20, process: str = "ddpm") -> dict:
    return C.resolve({
        "seed": 0, "process": {"name": process},
        **({"eval": {"sampler": "euler"}} if process == "flow" else {}),
        "dataset": {"name": "toy2d", "n_train": 2048, "n_test": 256},
        "backbone": {"name": "mlp", "width": 32, "depth": 1, "time_dim": 16},
        "strategy": {"name": name, **params},
        "diffusion": {"schedule": SCHEDULE, "timesteps": T},
        "train": {"iterations": iterations, "batch_size": 64, "log_every": 10,
                  "ckpt_every": iterations, "device": "cpu", "lr": 1e-3},
    })


def assert_same_draw(a: Draw, b: Draw) -> None:
    assert torch.equal(a.t, b.t)
    assert torch.equal(a.importance, b.importance)
    assert torch.equal(a.loss_weight, b.loss_weight)
    assert a.aux.keys() == b.aux.keys()
    for k in a.aux:
        assert torch.equal(a.aux[k], b.aux[k]), k


def assert_same_state(a: Any, b: Any, where: str = "state") -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a.cpu(), b.cpu()), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            assert_same_state(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), where
    else:
        assert a == b, where


# --------------------------------------------------------------------------- the checks
def check_draw(name: str, params: dict, process: str = "ddpm", n: int = 96) -> None:
    s = build(name, params, process)
    d = s.sample(toy_x0(n), torch.Generator().manual_seed(0))
    assert d.t.dtype == torch.int64 and d.t.shape == (n,)
    assert int(d.t.min()) >= 0 and int(d.t.max()) < T
    for field in ("importance", "loss_weight"):
        v = getattr(d, field)
        assert v.is_floating_point() and v.shape == (n,), field
        assert bool(torch.isfinite(v).all()) and bool((v >= 0).all()), field
    assert bool((d.importance > 0).all())
    for k, v in d.aux.items():
        assert isinstance(v, torch.Tensor) and v.shape[0] == n, k
    lw = s.loss_weights()
    assert lw.shape == (T,) and lw.dtype == torch.float64 and bool((lw >= 0).all())
    torch.testing.assert_close(d.loss_weight.double(), lw[d.t].double(), rtol=1e-6, atol=0)
    # The selection used by the trainer keeps every field consistent.
    half = d.select(slice(0, n // 2))
    assert half.t.shape == (n // 2,) and all(v.shape[0] == n // 2 for v in half.aux.values())


def check_probabilities(name: str, params: dict, process: str = "ddpm") -> torch.Tensor:
    s = build(name, params, process)
    s.sample(toy_x0(64), torch.Generator().manual_seed(0))      # a strategy may need one draw
    p = s.probabilities()
    assert p is not None, f"{name}: probabilities() is None; the χ² test needs p(t)"
    assert p.shape == (T,) and bool(torch.isfinite(p).all()) and bool((p >= 0).all())
    assert float(p.double().sum()) == pytest.approx(1.0, abs=1e-9)
    return p


def chi2_pvalue(s: Strategy, n_total: int = 100_000, batch: int = 1000, seed: int = 0) -> float:
    """p-value of the χ² test of ``n_total`` draws against probabilities(), adjacent bins merged
    until each expects >= 5 draws. Draws at an index of probability 0 fail outright."""
    counts = torch.zeros(T, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    x0 = toy_x0(batch, seed=1)
    for _ in range(n_total // batch):
        counts += torch.bincount(s.sample(x0, g).t, minlength=T).double()
    p = s.probabilities().double()
    assert not bool(((p == 0) & (counts > 0)).any()), "draws at indices of probability 0"
    expected = (p * counts.sum()).numpy()
    obs, exp, acc_o, acc_e = [], [], 0.0, 0.0
    for o, e in zip(counts.numpy(), expected):
        acc_o, acc_e = acc_o + o, acc_e + e
        if acc_e >= 5:
            obs.append(acc_o), exp.append(acc_e)
            acc_o, acc_e = 0.0, 0.0
    if acc_e > 0 or acc_o > 0:
        obs[-1] += acc_o
        exp[-1] += acc_e
    if len(obs) < 2:
        return 1.0
    exp = np.array(exp) * (sum(obs) / sum(exp))
    return float(scipy.stats.chisquare(obs, exp).pvalue)


def check_chi2(name: str, params: dict, process: str = "ddpm") -> None:
    pval = chi2_pvalue(build(name, params, process))
    assert pval > 1e-3, f"{name}: 10⁵ draws disagree with probabilities() (χ² p = {pval:.2e})"


def check_determinism(name: str, params: dict, process: str = "ddpm") -> None:
    a, b = build(name, params, process), build(name, params, process)
    x0 = toy_x0(64)
    da = a.sample(x0, torch.Generator().manual_seed(123))
    db = b.sample(x0, torch.Generator().manual_seed(123))
    assert_same_draw(da, db)
    dc = a.sample(x0, torch.Generator().manual_seed(124))
    assert not torch.equal(da.t, dc.t), "a different seed gave the same timesteps"


def check_state_roundtrip(name: str, params: dict, tmp_path, process: str = "ddpm",
                          steps: int = 20) -> None:
    """Train a few real steps (hooks run), save/load into a fresh instance, compare everything."""
    tr = Trainer(tiny_config(name, params, iterations=steps, process=process), tmp_path / "rt",
                 progress=False)
    for _ in range(steps):
        tr.train_step()
    buf = io.BytesIO()
    torch.save(tr.strategy.state_dict(), buf)
    buf.seek(0)
    fresh = build(name, params, process)
    fresh.load_state_dict(torch.load(buf, weights_only=False))
    assert_same_state(tr.strategy.state_dict(), fresh.state_dict())
    x0 = toy_x0(64, seed=5)
    assert_same_draw(tr.strategy.sample(x0, torch.Generator().manual_seed(9)),
                     fresh.sample(x0, torch.Generator().manual_seed(9)))
    pa, pb = tr.strategy.probabilities(), fresh.probabilities()
    assert (pa is None) == (pb is None)
    if pa is not None:
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)
    torch.testing.assert_close(tr.strategy.loss_weights(), fresh.loss_weights(), rtol=0, atol=0)


def check_trainer_smoke(name: str, params: dict, tmp_path, process: str = "ddpm") -> None:
    run_dir = tmp_path / "smoke"
    final = run(tiny_config(name, params, process=process), run_dir, progress=False)
    assert (run_dir / "DONE").exists() and (run_dir / "ckpt" / "last.pt").exists()
    assert final["step"] == 20 and math.isfinite(final["loss"])
    st = torch.load(run_dir / "ckpt" / "last.pt", weights_only=False)
    build(name, params, process).load_state_dict(st["strategy"])


# --------------------------------------------------------------------------- parametrised
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_draw(case):
    proc, name, params = case
    check_draw(name, params, proc)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_probabilities(case):
    proc, name, params = case
    check_probabilities(name, params, proc)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_chi2_draws_match_probabilities(case):
    proc, name, params = case
    check_chi2(name, params, proc)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_determinism(case):
    proc, name, params = case
    check_determinism(name, params, proc)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_state_dict_roundtrip(case, tmp_path):
    proc, name, params = case
    check_state_roundtrip(name, params, tmp_path, proc)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_trainer_smoke(case, tmp_path):
    proc, name, params = case
    check_trainer_smoke(name, params, tmp_path, proc)


def test_every_registered_strategy_is_a_case():
    assert {n for _, n, _ in CASES} == set(strategies.names())


@pytest.mark.parametrize("case", REFUSED, ids=[case_id(c) for c in REFUSED])
def test_a_process_refuses_what_it_cannot_run_with_the_reason(case):
    proc, name, params = case
    with pytest.raises(ValueError, match=f"process {proc}"):
        build(name, params, proc)


# --------------------------------------------------------------------------- automatic pick-up
class _Probe(Strategy):
    """A non-uniform, stateful dummy (p ∝ i + 1, counts its updates)."""

    name = "zz_registry_probe"
    paper = "test dummy"

    @dataclass(frozen=True)
    class Params:
        pass

    def __init__(self, diffusion, params=None):
        super().__init__(diffusion, params)
        self.updates = 0

    def probabilities(self):
        p = torch.arange(1, self.T + 1, dtype=torch.float64)
        return p / p.sum()

    def sample(self, x0, generator):
        p = torch.arange(1, self.T + 1, dtype=torch.float64)
        return self.draw(torch.multinomial(p / p.sum(), x0.shape[0], replacement=True,
                                           generator=generator))

    def after_update(self, ctx):
        self.updates += 1

    def state_dict(self):
        return {"updates": self.updates}

    def load_state_dict(self, state):
        self.updates = state["updates"]


def test_a_new_strategy_is_picked_up_and_checked(tmp_path):
    register(_Probe)
    try:
        assert ("zz_registry_probe", {}) in strategy_cases()
        for proc in PROCESSES:               # a plug-in runs on both processes
            check_draw("zz_registry_probe", {}, proc)
            check_probabilities("zz_registry_probe", {}, proc)
            check_chi2("zz_registry_probe", {}, proc)
            check_determinism("zz_registry_probe", {}, proc)
        check_state_roundtrip("zz_registry_probe", {}, tmp_path)
        check_trainer_smoke("zz_registry_probe", {}, tmp_path)
    finally:
        unregister("zz_registry_probe")
    assert ("zz_registry_probe", {}) not in strategy_cases()


def test_the_chi2_check_bites():
    """A strategy whose draws do not follow its probabilities() fails the χ² check."""

    class Liar(_Probe):
        name = "zz_registry_liar"

        def probabilities(self):
            return torch.full((self.T,), 1.0 / self.T, dtype=torch.float64)

    register(Liar)
    try:
        with pytest.raises(AssertionError, match="disagree"):
            check_chi2("zz_registry_liar", {})
    finally:
        unregister("zz_registry_liar")


# --------------------------------------------------------------------------- bad inputs
def test_unknown_strategy_lists_the_valid_names():
    with pytest.raises(ValueError, match=r"unknown strategy 'nope'; valid: .*min_snr.*p2"):
        build("nope", {})


@pytest.mark.parametrize("name", strategies.names())
def test_unknown_parameter_lists_the_valid_ones(name):
    match = rf"strategy '{name}': unknown parameter\(s\) bogus; valid"
    with pytest.raises(ValueError, match=match):
        build(name, {"bogus": 1})


@pytest.mark.parametrize("name,params,match", [
    ("p2", {"gamma": -1}, r"p2: gamma must be a finite number in \[0, inf\)"),
    ("p2", {"k": -0.1}, r"p2: k must be a finite number in \[0, inf\)"),
    ("p2", {"gamma": "abc"}, r"p2: gamma must be"),
    ("p2", {"k": float("nan")}, r"p2: k must be"),
    ("min_snr", {"gamma": -1}, r"min_snr: gamma must be a finite number in \(0, inf\)"),
    ("min_snr", {"gamma": 0}, r"min_snr: gamma must be"),
    ("min_snr", {"prediction": "score"}, r"unknown prediction 'score'; valid: eps, x0, v"),
    ("speed", {"k": -1}, r"speed: k must be"),
    ("speed", {"gamma": -1}, r"speed: gamma must be"),
    ("speed", {"threshold": 0}, r"speed: threshold must be"),
    ("speed", {"batch_size": 0}, r"speed: batch_size must be an integer in \[1, inf\)"),
    ("speed", {"dual": "yes"}, r"speed: dual must be true or false"),
    ("lognormal", {"s": 0}, r"lognormal: s must be"),
    ("lognormal", {"p_std": -1}, r"lognormal: p_std must be"),
    ("lognormal", {"variant": "karras"}, r"unknown variant 'karras'; valid: logit_normal, edm"),
    ("lognormal", {"discretise": "ceil"}, r"unknown discretise 'ceil'; valid: round, floor"),
    ("loss_second_moment", {"history": 0}, r"history must be an integer in \[1, inf\)"),
    ("loss_second_moment", {"uniform_prob": 1.5},
     r"uniform_prob must be a finite number in \[0, 1\]"),
    ("laplace", {"b": 0}, r"laplace: b must be"),
    ("laplace", {"mu": float("inf")}, r"laplace: mu must be"),
    ("edm2_uncertainty", {"features": 0}, r"features must be an integer in \[1, inf\)"),
    ("edm2_uncertainty", {"lr": 0}, r"lr must be a finite number in \(0, inf\)"),
    ("compose", {"weighting": {"name": "speed"}}, r"incompatible composition"),
    ("compose", {"weighting": {"name": "edm2_uncertainty"}}, r"incompatible composition.*hook"),
])
def test_out_of_range_parameters(name, params, match):
    if name not in strategies.names():
        pytest.skip(f"{name} not registered")
    with pytest.raises(ValueError, match=match):
        build(name, params)
