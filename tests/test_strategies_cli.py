"""``python -m bench.strategies``: the listing, the ``show`` CSV (checked against independent
formulas) and bad inputs (stderr names the problem and the valid choices; exit status 2)."""

from __future__ import annotations

import csv
import dataclasses
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import strategies
import strategy_formulas as F
from bench.tools.strategies import main
from strategies.base import Strategy, register, unregister

REPO = Path(__file__).resolve().parent.parent


def show(*argv: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    out = io.StringIO()
    assert main(["show", *argv], out=out) == 0
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    t = np.array([int(r[0]) for r in rows[1:]])
    assert t.tolist() == list(range(len(t)))
    prob = np.array([float(r[1]) for r in rows[1:]])
    return rows[0], prob, np.array([float(r[2]) for r in rows[1:]])


def fails(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as e:          # argparse errors
        raise SystemExit(main(list(argv), out=io.StringIO()))
    assert e.value.code == 2
    return capsys.readouterr().err


def test_listing_names_every_strategy_with_paper_and_defaults():
    r = subprocess.run([sys.executable, "-m", "bench.strategies"], cwd=REPO, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for name in strategies.names():
        cls = strategies.get(name)
        assert f"{name} " in r.stdout and cls.paper in r.stdout
        for f in dataclasses.fields(cls.Params):
            assert f"{f.name}=" in r.stdout
    assert "gamma=5.0" in r.stdout and "uniform_prob=0.001" in r.stdout


@pytest.mark.parametrize("schedule,T", [("cosine", 200), ("quad", 1000), ("linear", 50)])
def test_show_p2_and_min_snr(schedule, T):
    header, prob, w = show("p2", "--schedule", schedule, "--timesteps", str(T))
    assert header == ["t", "prob", "loss_weight"] and len(prob) == T
    np.testing.assert_allclose(prob, 1.0 / T, rtol=1e-15)
    np.testing.assert_allclose(w, 1.0 - F.abar(schedule, T), rtol=1e-12)
    _, _, w = show("p2", "--schedule", schedule, "--timesteps", str(T), "--set", "gamma=0.5")
    np.testing.assert_allclose(w, np.sqrt(1.0 - F.abar(schedule, T)), rtol=1e-12)
    snr = F.snr(schedule, T)
    _, _, w = show("min_snr", "--schedule", schedule, "--timesteps", str(T))
    np.testing.assert_allclose(w, np.minimum(snr, 5) / snr, rtol=1e-12)


@pytest.mark.parametrize("B", [128, 7])
def test_show_speed_includes_the_dual_half_for_the_batch_size(B):
    _, prob, w = show("speed", "--schedule", "linear", "--timesteps", "200", "--batch-size", str(B))
    np.testing.assert_allclose(prob, F.speed_marginal("linear", 200, B), atol=1e-15)
    np.testing.assert_allclose(w, 1.0 - F.abar("linear", 200), rtol=1e-12)
    _, prob, _ = show("speed", "--timesteps", "200", "--set", "dual=false")
    np.testing.assert_allclose(prob, F.speed_p("linear", 200), atol=1e-15)


def test_show_lognormal_laplace_and_compose():
    _, prob, w = show("lognormal", "--timesteps", "200", "--set", "discretise=floor")
    np.testing.assert_allclose(prob, F.logit_normal_floor(200), atol=1e-14)
    assert np.all(w == 1)
    _, prob, _ = show("laplace", "--schedule", "cosine", "--timesteps", "200")
    np.testing.assert_allclose(prob, F.laplace_masses("cosine", 200), atol=1e-14)
    _, prob, w = show("compose", "--schedule", "quad", "--timesteps", "200", "--batch-size", "64",
                      "--set", "sampler.name=speed", "--set", "weighting={name: min_snr, gamma: 2}")
    snr = F.snr("quad", 200)
    np.testing.assert_allclose(prob, F.speed_marginal("quad", 200, 64), atol=1e-15)
    np.testing.assert_allclose(w, np.minimum(snr, 2) / snr, rtol=1e-12)


def test_show_writes_a_plot(tmp_path):
    path = tmp_path / "p.png"
    show("laplace", "--timesteps", "100", "--plot", str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv,needle", [
    (["show", "p3"], "unknown strategy 'p3'; valid: "),
    (["show", "p2", "--set", "foo=1"], "unknown parameter(s) foo; valid: gamma, k"),
    (["show", "p2", "--set", "gamma=-1"], "p2: gamma must be a finite number in [0, inf)"),
    (["show", "p2", "--set", "k=-1"], "p2: k must be a finite number in [0, inf)"),
    (["show", "min_snr", "--set", "prediction=score"], "valid: eps, x0, v"),
    (["show", "compose", "--set", "weighting.name=speed"], "incompatible composition"),
    (["show", "compose", "--set", "weighting.name=nope"], "unknown strategy 'nope'; valid"),
    (["show", "p2", "--set", "gamma"], "--set expects key=value"),
    (["show", "p2", "--timesteps", "1"], "--timesteps must be >= 2"),
    (["show", "p2", "--timesteps", "5"], "linear schedule needs timesteps >= 21"),
    (["show", "speed", "--batch-size", "0"], "--batch-size must be >= 1"),
    (["show", "p2", "--schedule", "sigmoid"], "invalid choice: 'sigmoid'"),
])
def test_bad_input_exits_2_with_a_message(capsys, argv, needle):
    err = fails(capsys, *argv)
    assert needle in err
    if "unknown strategy 'p3'" in needle:
        assert all(n in err for n in strategies.names())


def test_untabulable_strategy_is_an_error(capsys):
    @register
    class NoTable(Strategy):
        name = "zz_cli_no_table"

        @dataclasses.dataclass(frozen=True)
        class Params:
            pass

        def sample(self, x0, generator):
            return self.draw(torch.zeros(x0.shape[0], dtype=torch.long))

    try:
        err = fails(capsys, "show", "zz_cli_no_table", "--timesteps", "50")
        assert "no tabulable p(t)" in err and "p2" in err
    finally:
        unregister("zz_cli_no_table")


def test_module_entry_point_exit_status():
    r = subprocess.run([sys.executable, "-m", "bench.strategies", "show", "p2", "--set", "k=-2"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "p2: k must be" in r.stderr and r.stdout == ""
