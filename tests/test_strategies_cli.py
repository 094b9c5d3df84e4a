"""``python -m bench.strategies``: the listing, the ``show`` CSV (checked against independent
formulas; several names), its figure, a closed stdout, and bad inputs (stderr names the problem
and the valid choices; exit status 2; nothing written)."""

from __future__ import annotations

import csv
import dataclasses
import io
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import strategies
import strategy_formulas as F
from bench.analysis.style import style
from bench.core.ddpm import DDPM
from bench.tools.strategies import Table, figure, main, specs, table
from strategies.base import Strategy
from strategies.registry import register, unregister

REPO = Path(__file__).resolve().parent.parent
PNG = b"\x89PNG\r\n\x1a\n"


def show(*argv: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    out = io.StringIO()
    assert main(["show", *argv], out=out) == 0
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    t = np.array([int(r[0]) for r in rows[1:]])
    assert t.tolist() == list(range(len(t)))
    prob = np.array([float(r[1]) for r in rows[1:]])
    return rows[0], prob, np.array([float(r[2]) for r in rows[1:]])


def fails(capsys, *argv: str) -> str:
    out = io.StringIO()
    with pytest.raises(SystemExit) as e:          # argparse errors
        raise SystemExit(main(list(argv), out=out))
    assert e.value.code == 2 and out.getvalue() == ""
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
    out = io.StringIO()
    assert main(["show", "laplace", "--timesteps", "100", "--plot", str(path)], out=out) == 0
    assert path.read_bytes()[:8] == PNG            # the figure, and one line instead of the CSV
    assert out.getvalue() == (f"wrote {path}; laplace on ddpm: mean loss weight under its own "
                              "p(t) = 1\n")
    show("laplace", "--timesteps", "100", "--plot", str(path), "--csv")   # the CSV when asked


def test_flow_forms_print_cell_centres_and_overlay_ddpm_on_one_log_snr_axis(tmp_path, capsys):
    out = io.StringIO()
    assert main(["show", "min_snr", "--process", "flow", "--grid", "10"], out=out) == 0
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    t = np.array([float(r[0]) for r in rows[1:]])
    assert rows[0] == ["t", "prob", "loss_weight"] and np.allclose(t, (np.arange(10) + 0.5) / 10)
    assert np.allclose([float(r[2]) for r in rows[1:]], np.minimum((1 - t) ** 2, 5 * t**2))
    out, path = io.StringIO(), tmp_path / "both.png"
    assert main(["show", "uniform", "min_snr", "--process", "both", "--x", "logsnr",
                 "--timesteps", "50", "--plot", str(path), "--csv"], out=out) == 0
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows[0] == ["process", "strategy", "t", "prob", "loss_weight"]
    assert [r[0] for r in rows[1::100]] == ["ddpm", "flow"] and len(rows) == 1 + 2 * 2 * 50
    assert path.read_bytes()[:8] == PNG
    assert main(["show", "uniform", "--process", "both"], out=io.StringIO()) == 2
    assert "--process both overlays DDPM and flow" in capsys.readouterr().err
    assert main(["show", "speed", "--process", "flow"], out=io.StringIO()) == 2
    assert "speed does not run on process flow" in capsys.readouterr().err


def test_several_names_give_one_block_per_strategy_equal_to_its_own_output():
    out = io.StringIO()
    argv = ["--schedule", "cosine", "--timesteps", "200", "--batch-size", "64"]
    assert main(["show", "p2", "uniform", "speed", *argv, "--set", "gamma=0.5"], out=out) == 0
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows[0] == ["strategy", "t", "prob", "loss_weight"] and len(rows) == 1 + 3 * 200
    assert [r[0] for r in rows[1::200]] == ["p2", "uniform", "speed"]
    for name, sets in (("p2", ["--set", "gamma=0.5"]), ("uniform", []),   # uniform has no gamma
                       ("speed", ["--set", "gamma=0.5"])):
        single = io.StringIO()
        assert main(["show", name, *argv, *sets], out=single) == 0
        assert [r[1:] for r in rows[1:] if r[0] == name] == \
            list(csv.reader(io.StringIO(single.getvalue())))[1:]


def test_a_closed_stdout_exits_0_quietly_after_writing_the_plot(tmp_path):
    png = tmp_path / "f.png"
    cmd = (f"{shlex.quote(sys.executable)} -m bench.strategies show uniform min_snr p2 "
           f"--plot {shlex.quote(str(png))} --csv | head -1")         # 3000 rows: more than a pipe holds
    r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=REPO, capture_output=True,
                       text=True, timeout=120, check=False)
    assert (r.returncode, r.stdout) == (0, "strategy,t,prob,loss_weight\n")
    assert [line.split(":")[0] for line in r.stderr.splitlines()] == [
        "# uniform on ddpm", "# min_snr on ddpm", "# p2 on ddpm"]       # the mean weights
    assert png.read_bytes()[:8] == PNG


def tables(names: list[str], sets: list[str] = (), T: int = 200):
    d = DDPM("linear", T)
    return [table(s, d) for s in specs(names, list(sets), 128)], d


def test_figure_panels_scales_limits_and_styles():
    tbs, d = tables(["uniform", "min_snr", "p2"], ["gamma=1"])
    assert [tb.label for tb in tbs] == ["uniform", "min_snr(gamma=1)", "p2"]
    fig = figure(tbs, d)
    axes = fig.axes
    assert [a.get_yscale() for a in axes] == ["linear", "log", "log"]
    assert all(axes[0].get_shared_x_axes().joined(axes[0], a) for a in axes)
    assert axes[0].get_ylim()[0] == 0
    ref = [ln for ln in axes[0].get_lines() if ln.get_linestyle() == ":"]
    assert len(ref) == 1 and set(ref[0].get_ydata()) == {1.0}
    for ax, panel in zip(axes, ("p", "w", "eff")):
        lines = {ln.get_label(): ln for ln in ax.get_lines()}
        for tb in tbs:
            ln = lines[tb.label]
            assert ln.get_color() == style(tb.label).color
            want = {"p": 200 * tb.prob, "w": tb.loss_weight,
                    "eff": 200 * tb.prob * tb.loss_weight * tb.importance}[panel]
            np.testing.assert_allclose(ln.get_ydata(), want.numpy(), rtol=1e-12)
            np.testing.assert_array_equal(ln.get_xdata(), np.arange(200))
    for ax in axes[1:]:
        lo, hi = ax.get_ylim()
        assert np.log10(hi / lo) >= 1
        assert type(ax.yaxis.get_minor_formatter()).__name__ == "SparseMinor"   # plain_log_axis
    assert "linear schedule, T = 200" in fig.get_suptitle()
    assert "min_snr(gamma=1)" in fig.get_suptitle()


def test_a_constant_is_a_flat_line_not_magnified():
    tbs, d = tables(["uniform"])                   # p = 1/T, λ = 1, importance = 1
    axes = figure(tbs, d).axes
    assert axes[0].get_ylim()[0] == 0 and axes[0].get_ylim()[1] <= 1.5
    for ax in axes[1:]:
        lo, hi = ax.get_ylim()
        assert lo < 1 < hi and np.log10(hi / lo) >= 1


def test_x_logsnr_puts_log_snr_on_the_x_axis():
    tbs, d = tables(["min_snr", "speed"])
    for ax in figure(tbs, d, "logsnr").axes:
        for tb in tbs:
            ln = next(ln for ln in ax.get_lines() if ln.get_label() == tb.label)
            np.testing.assert_allclose(ln.get_xdata(), torch.log(d.snr).numpy(), rtol=0)
    assert "log SNR" in figure(tbs, d, "logsnr").axes[-1].get_xlabel()


def test_importance_weights_hook_matches_the_draws_and_the_effective_weight():
    """A warmed-up loss_second_moment: non-uniform p, importance 1/(T·p) = Draw.importance, so
    the effective weight T·p·λ·importance is 1 (an unbiased sampler)."""
    d = DDPM("linear", 50)
    s = strategies.build("loss_second_moment", d)
    t = torch.arange(50).repeat(10)
    s.update(t, 1.0 + t.double())
    p = s.probabilities()
    assert not torch.allclose(p, torch.full_like(p, 1 / 50))
    draw = s.sample(torch.zeros(64, 2), torch.Generator().manual_seed(0))
    torch.testing.assert_close(draw.importance.double(), s.importance_weights()[draw.t],
                               rtol=1e-6, atol=0)
    tb = Table("loss_second_moment", "loss_second_moment", p, s.loss_weights(),
               s.importance_weights())
    np.testing.assert_allclose(figure([tb], d).axes[2].get_lines()[0].get_ydata(), 1.0,
                               rtol=1e-12)
    c = strategies.build("compose", d, {"sampler": {"name": "grad_variance", "reweight": True}})
    c.sampler.var_ema = torch.linspace(1, 2, c.sampler.params.bins, dtype=torch.float64)
    c.sampler._p = c.sampler._probs()
    torch.testing.assert_close(c.importance_weights(), 1 / (50 * c.probabilities()))
    draw = c.sample(torch.zeros(64, 2), torch.Generator().manual_seed(0))
    torch.testing.assert_close(draw.importance.double(), c.importance_weights()[draw.t],
                               rtol=1e-6, atol=0)


PLOT = ["--plot", "{tmp}/f.png"]


@pytest.mark.parametrize("argv,needles", [
    (["show", "p2", "p3", *PLOT], ["unknown strategy 'p3'; valid: ", "min_snr", "uniform"]),
    (["show", "p2", "--x", "sigma", *PLOT], ["invalid choice: 'sigma'", "'t'", "'logsnr'"]),
    (["show", "p2", "--plot", "{tmp}/no/such/dir/f.png"], ["directory", "does not exist"]),
    (["show", "p2", "--plot", "{tmp}"], ["is a directory"]),
    (["show", "p2", "--plot", "{tmp}/f.xyz"], ["unknown file type '.xyz'; valid: ", ".png"]),
    (["show", "p2", "min_snr", "--set", "foo=1", *PLOT],
     ["strategies 'p2', 'min_snr': unknown parameter(s) foo; valid: gamma, k, prediction"]),
    (["show", "p2", "min_snr", "p2", *PLOT], ["strategy 'p2' is named twice"]),
])
def test_bad_show_input_writes_nothing(capsys, tmp_path, argv, needles):
    err = fails(capsys, *(a.format(tmp=tmp_path) for a in argv))
    assert all(n in err for n in needles), err
    assert not any(tmp_path.iterdir())


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


def test_show_and_listing_give_each_strategys_mean_loss_weight(capsys):
    """debiased's 1/√SNR averages 17.8 on the linear schedule (an effective learning rate ×17.8);
    on flow its derived t(1 − t) averages 1/6."""
    assert main(["show", "debiased", "--timesteps", "1000", "--process", "both", "--x",
                 "logsnr"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == ["# debiased on ddpm: mean loss weight under its own p(t) = 17.8171",
                   "# debiased on flow: mean loss weight under its own p(t) = 0.166667"]
    assert main([]) == 0
    lines = capsys.readouterr().out.splitlines()
    at = lines.index(next(x for x in lines if x.startswith("debiased ")))
    assert lines[at + 2].endswith("T = 1000: ddpm 17.82, flow 0.1667")
    speed = lines.index(next(x for x in lines if x.startswith("speed ")))
    assert lines[speed + 2].endswith("flow —")                  # refused on flow
