"""bench.analysis / bench.report on the committed fixture tree tests/fixtures/results (no training).

The fixture (hand-written, values chosen for hand computation):

    fx/   digits · unet(ch=8), iterations 40, evaluations at steps 20 and 40
      u-lin-s{0,1}  uniform, linear             fd_cnn 30→20 / 28→22; nll_bpd 5.0→4.0 / 5.2→4.4
      m-lin-s{0,1}  min_snr(gamma=1), linear    fd_cnn 24→18 / 20→24 (not monotone)
      c-lin-s0      compose(adaptive_beta+min_snr), linear: fd_cnn 26→16, + fid_inception 50→40
      c-lin-s1      same, seed 1, PARTIAL (no DONE; evaluated at step 20 only: fd_cnn 25)
      u-cos-s0, m-cos-s0   cosine: fd_cnn 35→25 and 30→27
      timesteps/: diagnostics.csv (u-lin-s0), p_t.csv (c-lin-s0), t_hist.csv (m-lin-s0)
    fx2/  toy2d · mlp: sweep.yaml expects uniform and p2; only uniform is on disk (swd 0.5→0.3)
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from bench import config as C
from bench import experiment
from bench.rundir import runfiles, runpaths, runtables
from bench.core.ddpm import DDPM
from bench.analysis import ranking
from bench.analysis.load import Results, fixed_loss_weights, load, load_results
from bench.analysis.metric_figures import fig_metric_vs_iteration
from bench.analysis.plotting import band, curve
from bench.analysis.stats import diff_ci, known_direction, lower_is_better, mean_ci, valid_range
from bench.analysis.style import metric_label, protocol_text, step_text, tick_steps
from bench.analysis.tables import (Unit, pair_table, table1, time_to_target, units, verdict,
                                   vs_baseline)
from bench.analysis.timestep_figures import effective_p_t, t_hist_density
from bench.rundir.runpaths import TIMESTEP_FILES
from bench.rundir.runtables import EVAL_COLUMNS, TIMESTEP_REQUIRED
from bench.report import __main__ as report
from bench.report import build as report_build
from bench.report import renderers



def _fixture_tree() -> Path:
    """A copy of the committed fixture in which fx2's one run sits under the run id that the
    current ``bench.config.DEFAULTS`` give it (run ids hash the resolved config, so adding a config
    key with a default renames every run; the committed name would then look like a stray run)."""
    import shutil
    import tempfile

    import yaml

    from bench.sweep import spec as S


    src = Path(__file__).parent / "fixtures" / "results"
    dst = Path(tempfile.mkdtemp(prefix="report_fixture_")) / "results"
    shutil.copytree(src, dst)
    spec = yaml.safe_load((dst / "fx2" / "sweep.yaml").read_text())
    (uniform,) = [r for r in S.expand(spec) if r.config["strategy"]["name"] == "uniform"]
    (old,) = [d for d in (dst / "fx2").iterdir() if d.is_dir()]
    old.rename(dst / "fx2" / uniform.run_id)
    (dst / "fx2" / uniform.run_id / "config.yaml").write_text(yaml.safe_dump(uniform.config))
    return dst


FIX = _fixture_tree()
LIN, COS = "linear", "cosine"
U, M, CO = "uniform", "min_snr(gamma=1)", "compose(adaptive_beta+min_snr)"


def t95(n: int) -> float:
    return stats.t.ppf(0.975, n - 1)


def half(values) -> float:
    """95 % t half-width by hand: t_{0.975,n-1} · s / √n."""
    x = np.asarray(values, float)
    return t95(len(x)) * x.std(ddof=1) / math.sqrt(len(x))


@pytest.fixture(scope="module")
def R() -> Results:
    return load(FIX)


@pytest.fixture(scope="module")
def fd(R) -> Unit:
    (u,) = [u for u in units(R.evals) if u.metric == "fd_cnn"]
    return u


def cell(t: pd.DataFrame, schedule: str, cond: str, budget: int) -> pd.Series:
    (i,) = t.index[(t["schedule"] == schedule) & (t["condition"] == cond)
                   & (t["budget"] == budget)]
    return t.loc[i]


# ---------------------------------------------------------------------------- loading
def test_runs_status_labels_and_missing(R):
    runs = R.runs.set_index("run")
    assert len(runs) == 10
    assert runs.loc["fx/c-lin-s1", "status"] == "partial"
    assert "at step 20 of 40" in runs.loc["fx/c-lin-s1", "note"]
    (missing,) = runs.index[runs["status"] == "missing"]
    assert missing.startswith("fx2/") and runs.loc[missing, "strategy"] == "p2"
    assert "sweep.yaml" in runs.loc[missing, "note"]
    assert (runs.drop(["fx/c-lin-s1", missing])["status"] == "done").all()
    # labels: non-default parameters only (prediction=eps is min_snr's default), compositions
    assert runs.loc["fx/m-lin-s0", "strategy"] == M
    assert runs.loc["fx/c-lin-s0", "strategy"] == CO
    assert runs.loc["fx/u-cos-s0", "schedule"] == COS
    assert runs.loc["fx/u-lin-s1", "seed"] == 1 and runs.loc["fx/u-lin-s1", "iterations"] == 40
    assert set(runs["setting"]) == {"digits · unet(ch=8)",
                                    "toy2d(kind=8gaussians) · mlp(depth=1,width=16)"}
    assert (runs["variant"] == "").all()


def test_tidy_frame_one_row_per_run_eval_metric(R):
    ev = R.evals
    for col in ("sweep", "run_id", "strategy", "schedule", "seed", "dataset", "backbone",
                "status", "iterations", "step", "nimg", "metric", "value", "n_samples",
                "sampler", "wall_s_train", "wall_s_eval", "lower_is_better"):
        assert col in ev.columns, col
    n_rows = sum(len(pd.read_csv(p)) for p in FIX.rglob("evals.csv"))
    assert len(ev) == n_rows == 30
    assert not ev.duplicated(["run", "step", "metric", "sampler"]).any()
    r = ev[(ev["run"] == "fx/m-lin-s1") & (ev["step"] == 40) & (ev["metric"] == "fd_cnn")]
    assert r["value"].tolist() == [24.0] and r["wall_s_train"].tolist() == [21.0]
    assert ev["lower_is_better"].all()
    assert load_results(FIX).shape == ev.shape


def test_training_log_and_timestep_loaders(R):
    m = R.metrics[R.metrics["run"] == "fx/c-lin-s1"]
    assert m["step"].tolist() == [10, 20] and m["loss"].tolist() == [1.03, 0.53]
    d = R.timesteps["diagnostics"]
    assert set(d["run"]) == {"fx/u-lin-s0"} and len(d) == 8
    assert set(d["weighting"]) == {"ddpm", "vlb"}
    assert len(R.timesteps["p_t"]) == 60 and set(R.timesteps["t_hist"]["run"]) == {"fx/m-lin-s0"}
    dens = t_hist_density(R.timesteps["t_hist"])
    assert dens.loc[0, "p"] == pytest.approx(150 / (320 * 15))   # count / (total × width)


def test_column_lists_match_the_writers():

    assert EVAL_COLUMNS == runtables.EVAL_COLUMNS
    assert TIMESTEP_FILES == runpaths.TIMESTEP_FILES
    for kind, cols in TIMESTEP_REQUIRED.items():
        assert set(cols) <= set(runtables.timestep_table(kind).columns)


# ---------------------------------------------------------------------------- Table 1
def test_table1_equals_hand_computed_values(R, fd):
    t = table1(R.evals, fd)
    assert sorted(t["budget"].unique()) == [20, 40]
    c = cell(t, LIN, U, 20)
    assert (c["mean"], c["n"]) == (29.0, 2)
    assert c["ci95"] == pytest.approx(half([30, 28]))
    assert c["ci95"] == pytest.approx(12.7062047, rel=1e-6)      # t_{.975,1}·√2/√2
    assert c["values"] == (30.0, 28.0) and c["seeds"] == (0, 1)
    c = cell(t, LIN, U, 40)                                      # min(30,20), min(28,22)
    assert c["mean"] == 21.0 and c["ci95"] == pytest.approx(half([20, 22]))
    c = cell(t, LIN, M, 40)                                      # seed 1: 20 at step 20 < 24
    assert c["values"] == (18.0, 20.0) and c["mean"] == 19.0
    c = cell(t, LIN, M, 20)
    assert c["mean"] == 22.0 and c["ci95"] == pytest.approx(half([24, 20]))
    c = cell(t, LIN, CO, 20)                                     # the partial run counts here
    assert (c["mean"], c["n"], c["n_runs"]) == (25.5, 2, 2)
    c = cell(t, LIN, CO, 40)                                     # ... but not here
    assert (c["mean"], c["n"], c["n_runs"]) == (16.0, 1, 2) and math.isnan(c["ci95"])
    assert cell(t, COS, M, 40)["mean"] == 27.0 and math.isnan(cell(t, COS, M, 40)["ci95"])
    best = {(r.schedule, r.budget): r.condition for r in t[t["best"]].itertuples()}
    tied = {(r.schedule, r.budget, r.condition) for r in t[t["tied"]].itertuples()}
    # linear ≤40: compose's 16 has 1 of 2 seeds, so the best complete mean is min_snr's 19; it
    # is bold: its paired differences from uniform are 2 and 2 (CI half-width 0)
    assert best == {(LIN, 40): M}
    # linear ≤20: min_snr's 22 vs uniform (differences 6, 8: half-width 12.7 > 7) and compose
    # (2, 5) are not separated; cosine has one seed each: no interval, so nothing is marked
    assert tied == {(LIN, 20, M), (LIN, 20, U), (LIN, 20, CO)}
    # order: schedules as in the paper, the baseline first
    assert list(dict.fromkeys(t["schedule"])) == [LIN, COS]
    assert t[t["schedule"] == LIN]["condition"].iloc[0] == U


def test_table1_given_budgets(R, fd):
    t = table1(R.evals, fd, budgets=[30, 50])
    assert cell(t, LIN, U, 30)["mean"] == 29.0                   # only step 20 is ≤ 30
    assert cell(t, LIN, CO, 30)["n"] == 1                        # the partial run stopped at 20
    assert (t[t["budget"] == 50]["n"] == 0).all()                # nobody trained to 50


def test_table1_markdown_and_latex(R, fd):
    md, tex, csv = renderers.render_table1(table1(R.evals, fd), fd)
    # ≤ 20: uniform is tied with the best (min_snr); ≤ 40: min_snr is separated, in bold
    assert "| linear | uniform | ≈ 29.0 ± 12.7 (30.0, 28.0) | 21.0 ± 12.7 (20.0, 22.0) |" in md
    assert "**19.0 ± 12.7** (18.0, 20.0)" in md
    assert "16.0 [1/2 seeds]" in md
    # LaTeX: booktabs, siunitx numbers (a true minus sign, aligned), escaped labels
    assert r"\textbf{\num{19.0 +- 12.7}} (\num{18.0}, \num{20.0})" in tex
    assert r"min\_snr(gamma=1)" in tex and r"\toprule" in tex and "siunitx" in tex
    assert set(csv["metric"]) == {"fd_cnn"}
    assert csv.loc[0, "seeds"] == "0:30;1:28"


def test_extractors_never_share_a_table(R, fd):
    us = {u.metric: u for u in units(R.evals)}
    assert set(us) == {"fd_cnn", "fid_inception", "nll_bpd", "swd"}
    t = table1(R.evals, fd)
    assert not {40.0, 50.0} & set(cell(t, LIN, CO, 20)["values"] + cell(t, LIN, CO, 40)["values"])
    fi = table1(R.evals, us["fid_inception"])
    assert set(fi["condition"]) == {CO} and fi["mean"].tolist() == [50.0, 40.0]
    assert us["swd"].setting != fd.setting


def test_lower_is_better_directions():
    for m in ("fd_cnn", "fid_inception", "nll_bpd", "swd", "mmd2_rbf"):
        assert lower_is_better(m) and known_direction(m)
    assert not lower_is_better("precision") and not known_direction("foo")


# ---------------------------------------------------------------------------- time to target
def test_time_to_target_hand_computed(R, fd):
    t = time_to_target(R.evals, fd).set_index(["schedule", "condition"])
    m = t.loc[(LIN, M)]
    assert m["target"] == 21.0                                   # mean(20, 22)
    assert (m["ref_iter"], m["ref_wall"]) == (40.0, 21.0)        # 1D
    assert m["iter_values"] == (40.0, 20.0) and m["wall_values"] == (21.0, 10.5)
    assert m["iter_mean"] == 30.0 and m["iter_ci95"] == pytest.approx(half([40, 20]))
    assert m["wall_mean"] == 15.75
    assert m["speedup_iter"] == pytest.approx(40 / 30)
    assert m["speedup_wall"] == pytest.approx(21 / 15.75)
    c = t.loc[(LIN, CO)]                                         # the partial seed: not yet
    assert c["reached"] == 1 and c["n_runs"] == 2 and math.isnan(c["iter_mean"])
    u = t.loc[(LIN, U)]
    assert u["is_baseline"] and u["speedup_iter"] == 1.0 and u["iter_values"] == (40.0, 40.0)
    assert t.loc[(COS, M)]["reached"] == 0 and t.loc[(COS, M)]["target"] == 25.0


# ---------------------------------------------------------------------------- Table 4
def test_pair_table_paired_difference(R, fd):
    p = pair_table(R.evals, fd, U, M).set_index(["schedule", "budget"])
    r = p.loc[(LIN, 20)]
    assert (r["a_mean"], r["b_mean"], r["diff"]) == (29.0, 22.0, -7.0)
    assert r["diff_ci95"] == pytest.approx(half([24 - 30, 20 - 28]))
    # −7 ± 12.7: not separated, so neither is better (bold only where the CI excludes 0)
    assert r["test"] == "paired, n=2" and r["best"] == "tie"
    assert p.loc[(LIN, 40)]["best"] == "b"                       # −2, −2: half-width 0
    assert p.loc[(COS, 40)]["best"] == "tie" and p.loc[(COS, 40)]["test"] == "n=1 vs 1"
    q = pair_table(R.evals, fd, U, CO).set_index(["schedule", "budget"])
    assert q.loc[(LIN, 40)]["best"] == ""                        # compose lacks a seed there


def test_welch_interval_by_hand():
    a, b = {0: 1.0, 1: 2.0, 2: 3.0}, {5: 2.0, 6: 4.0}            # no common seed
    d, h, test = diff_ci(a, b)
    va, vb = 1.0 / 3, 2.0 / 2                                    # s²/n
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 1)                # = 32/19
    assert df == pytest.approx(32 / 19)
    assert d == 1.0 and h == pytest.approx(stats.t.ppf(0.975, df) * math.sqrt(va + vb))
    assert test == "welch, n=3 vs 2"


def test_mean_ci():
    m, h, s, n = mean_ci([1.0, 2.0, 4.0, float("nan")])
    assert (m, n) == (7 / 3, 3) and h == pytest.approx(half([1, 2, 4]))
    assert math.isnan(mean_ci([5.0])[1]) and mean_ci([])[3] == 0


# ---------------------------------------------------------------------------- the CLI
@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("report")
    assert report.main([str(FIX), "--out", str(d), "--metric", "fd_cnn"]) == 0
    return d


def test_cli_writes_index_tables_and_figures(out):
    index = (out / "index.md").read_text()
    files = {seg.split(")")[0] for line in index.splitlines() for seg in line.split("](")[1:]}
    assert len(files) > 10
    for f in files:
        assert (out / f).stat().st_size > 0, f
    for name in ("table1_fd_cnn_digits_unet", "time_to_target_fd_cnn_digits_unet",
                 "vs_uniform_fd_cnn_digits_unet"):
        for ext in ("md", "csv", "tex"):
            assert (out / "tables" / f"{name}.{ext}").stat().st_size > 0
    pngs = sorted((out / "figures").glob("*.png"))
    assert not list((out / "tables").glob("table4*"))       # one table per metric, no pairs
    assert {p.stem for p in pngs} >= {"fd_cnn_digits_unet_vs_iteration",
                                      "forest_fd_cnn_digits_unet",
                                      "fd_cnn_digits_unet_vs_wallclock", "train_loss_digits_unet",
                                      "timesteps_uniform_ddpm_digits_unet",
                                      "timesteps_uniform_vlb_digits_unet", "p_t_linear_digits_unet"}
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
        assert p.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"
    assert "fid_inception" not in index and "nll_bpd" not in index    # --metric fd_cnn


def test_the_index_opens_with_the_headline_and_a_forest_in_effect_order(out):
    index = (out / "index.md").read_text()
    heads = [ln for ln in index.splitlines() if ln.startswith("## ")]
    assert heads[0] == "## Headline: every strategy against the baseline"
    assert heads[1] == "## Statistics and notes"
    body = index[index.index(heads[0]):index.index(heads[1])]
    assert "forest_fd_cnn_digits_unet.png" in body and "vs_uniform_fd_cnn_digits_unet" in body
    assert index.count("(figures/forest_fd_cnn_digits_unet.png)") == 2      # image + link, once


def test_forest_rows_are_in_effect_order_best_on_top():
    from bench.analysis.metric_figures import fig_forest
    from bench.analysis.tables import Unit

    vs = pd.DataFrame({"condition": ["a_arm", "b_arm", "c_arm"] * 2, "schedule": ["linear"] * 6,
                       "budget": [100] * 3 + [200] * 3,
                       "diff": [0.0, 0.0, 0.0, 0.3, -0.5, 0.1], "diff_ci95": [0.1] * 6})
    for metric, want in (("fd_cnn", ["b_arm", "c_arm", "a_arm"]),     # lower is better
                         ("accuracy", ["a_arm", "c_arm", "b_arm"])):
        unit = Unit("s", metric, "ddim10_eta0", 100, "u", "t")
        fig = fig_forest(vs, unit)
        rows = [t.get_text() for t in fig.axes[0].get_yticklabels()]
        assert rows == want, metric


def test_index_reports_partial_missing_and_skipped(out):
    index = (out / "index.md").read_text()
    runs = index.split("## Runs")[1]
    assert "**partial (no DONE: running or stopped): 1**" in runs
    assert "- `fx/c-lin-s1` — compose(adaptive_beta+min_snr), linear, seed 1" in runs
    assert "**missing (expected by sweep.yaml, no run directory): 1**" in runs
    assert "p2, linear, seed 0: expected by fx2/sweep.yaml" in runs
    assert "compose(adaptive_beta+min_snr) (linear, digits · unet(ch=8)): 1/2 seeds done; " \
           "seed 1 partial" in runs
    assert runs.count("| done |") == 8
    skipped = index.split("## Skipped")[1].split("## Runs")[0]
    assert "Fig. 2/6" in skipped and "toy2d" in skipped          # fx2 has no diagnostics


def test_cli_formats_and_budgets(tmp_path):
    rc = report.main([str(FIX), "--out", str(tmp_path), "--format", "csv", "--no-figures",
                      "--metric", "nll_bpd", "--budgets", "20,40", "--pair", U, CO])
    assert rc == 0
    assert {p.suffix for p in (tmp_path / "tables").iterdir()} == {".csv"}
    t = pd.read_csv(tmp_path / "tables" / "table1_nll_bpd_digits_unet.csv")
    r = t[(t["condition"] == U) & (t["budget"] == 40)].iloc[0]
    assert r["mean"] == pytest.approx(4.2) and r["ci95"] == pytest.approx(half([4.0, 4.4]))
    assert sorted(p.name for p in (tmp_path / "tables").glob("table4*")) == [
        "table4_nll_bpd_digits_unet_uniform_vs_compose_adaptive_beta_min_snr.csv"]


# ---------------------------------------------------------------------------- bad inputs
def run_cli(capsys, *args) -> tuple[int, str]:
    rc = report.main([str(a) for a in args])
    return rc, capsys.readouterr().err


@pytest.fixture
def one_run(tmp_path) -> Path:
    """A copy of one done run (fx/u-lin-s0) in a fresh tree."""
    root = tmp_path / "res"
    shutil.copytree(FIX / "fx" / "u-lin-s0", root / "sw" / "r0")
    return root


def test_empty_and_non_results_directories(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, err = run_cli(capsys, empty, "--no-figures")
    assert rc == 2 and str(empty) in err and "is empty" in err
    other = tmp_path / "other"
    (other / "sub").mkdir(parents=True)
    (other / "sub" / "notes.txt").write_text("hello")
    rc, err = run_cli(capsys, other, "--no-figures")
    assert rc == 2 and "not a results tree" in err and "config.yaml" in err
    rc, err = run_cli(capsys, tmp_path / "nope")
    assert rc == 2 and "no such directory" in err


@pytest.mark.parametrize("name, content, expect", [
    ("metrics.jsonl", '{"step": 10, "loss": 1.0}\n{"step": 20, "lo\n{"step": 40}\n', "line 2"),
    ("evals.csv", "step,nimg,metric,value\n20,320,fd_cnn,abc\n", "row 2: column 'value'"),
    ("evals.csv", "step,metric\n20,fd_cnn\n", "missing column(s) value"),
    ("evals.csv", "", "not a readable CSV"),
    ("config.yaml", "seed: [0\n", "not valid YAML"),
    ("config.yaml", "- a list\n", "must be a mapping"),
    ("timesteps/p_t.csv", "step,t\n20,0\n", "missing column(s) p"),
])
def test_corrupt_files_name_the_file(one_run, capsys, name, content, expect):
    path = one_run / "sw" / "r0" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(content)
    rc, err = run_cli(capsys, one_run, "--no-figures")
    assert rc == 2, err
    assert str(path) in err and expect in err


def test_half_written_last_line_of_a_running_run_is_tolerated(one_run):
    run = one_run / "sw" / "r0"
    (run / "DONE").unlink()
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 50, "lo')                                # no newline yet
    r = load(one_run).runs.iloc[0]
    assert r["status"] == "partial" and "incomplete" in r["note"]


def test_unknown_metric_or_pair_is_an_error(capsys):
    rc, err = run_cli(capsys, FIX, "--metric", "fid", "--no-figures")
    assert rc == 2 and "fd_cnn" in err and "fid_inception" in err
    rc, err = run_cli(capsys, FIX, "--pair", U, "p3", "--no-figures")
    assert rc == 2 and "'p3'" in err and M in err


def test_duplicates_and_variants_are_explicit(one_run):
    src = one_run / "sw" / "r0"
    shutil.copytree(src, one_run / "other_sweep" / "r0")           # the same run twice
    lr = one_run / "sw" / "r_lr"
    shutil.copytree(src, lr)
    (lr / "config.yaml").write_text((lr / "config.yaml").read_text().replace(
        "train: {iterations: 40,", "train: {iterations: 40, lr: 0.001,"))
    runs = load(one_run).runs.set_index("run")
    # both done: the first by path is kept, the other is reported and not counted
    assert runs.loc["other_sweep/r0", "status"] == "done"
    assert runs.loc["sw/r0", "status"] == "duplicate"
    assert "other_sweep/r0" in runs.loc["sw/r0", "note"]
    assert runs.loc["sw/r_lr", "condition"] == "uniform [train.lr=0.001]"
    assert runs.loc["sw/r0", "condition"] == "uniform [train.lr=0.0002]"


def test_twelve_strategies_get_distinct_styles_fixed_by_the_registry():
    import strategies
    from bench.analysis import style as S

    names = strategies.registered()
    assert names[0] == "uniform" and len(names) >= 12
    seen = {(S.style(n).color, S.style(n).marker, S.style(n).linestyle) for n in names}
    assert len(seen) == len(names)
    assert len({S.style(n).color for n in names[:12]}) == 12
    # a condition keeps its strategy's hue (a shade of it) with another line and marker; the
    # mark and the order of the others do not matter
    from matplotlib.colors import rgb_to_hsv, to_rgb

    v, base = S.style("min_snr(gamma=1)"), S.style("min_snr")
    assert rgb_to_hsv(to_rgb(v.color))[0] == pytest.approx(rgb_to_hsv(to_rgb(base.color))[0],
                                                           abs=0.02)
    assert v.linestyle != "-" and v.marker != base.marker and not v.filled
    # the variants of one strategy in one figure never look alike
    labels = [f"adaptive_beta({k})" for k in ("variant=low_variance", "baseline=ema",
                                              "zero_term=exclude", "update_every=10")]
    sty = S.styles(["uniform", *labels, "adaptive_beta"])
    assert len({(x.color, x.linestyle, x.marker) for x in sty.values()}) == 6
    assert sty["uniform"] == S.style("uniform") and sty["adaptive_beta"] == S.style("adaptive_beta")
    assert S.style("adaptive_beta [did not adapt]") == S.style("adaptive_beta")
    assert S.style("my_new_strategy") == S.style("my_new_strategy")     # hashed, stable


def test_two_plug_ins_and_uniform_get_three_distinct_colours_and_the_registered_keep_theirs():
    import strategies
    from bench.analysis import style as S
    from strategies.base import Strategy as Base
    from strategies.registry import register, unregister

    names = ["zz_plug_one", "zz_plug_two"]
    for n in names:
        register(type(n, (Base,), {"name": n, "paper": "test",
                                    "Params": dataclasses.dataclass(frozen=True)(
                                        type("Params", (), {}))}))
    try:
        sty = S.styles(["uniform", *names, "zz_plug_one(k=1)"])
        assert len({sty[c].color for c in ["uniform", *names]}) == 3
        assert sty["uniform"] == S.style("uniform")
        everything = S.styles(strategies.registered())
        assert len({st.color for st in everything.values()}) == min(len(everything),
                                                                    len(S.PALETTE))
        assert all(everything[n] == S.style(n) for n in strategies.registered()[:22])
    finally:
        for n in names:
            unregister(n)


def test_short_legend_labels_and_their_key():
    from bench.analysis import style as S

    labels = ["uniform", "adaptive_beta [did not adapt: 4/5 seeds]",
              "adaptive_beta(update_every=10,variant=low_variance)",
              "compose(adaptive_beta(update_every=10,variant=low_variance)+min_snr)",
              "grad_variance(refresh_every=100)", "grad_variance(refresh_every=50)"]
    short = S.short_labels(labels)
    assert short == {labels[0]: "uniform", labels[1]: "adaptive_beta †",
                     labels[2]: "adaptive_beta low_variance*",
                     labels[3]: "adaptive_beta low_variance*+min_snr",
                     labels[4]: "grad_variance refresh_every=100",   # alike: what differs
                     labels[5]: "grad_variance refresh_every=50"}
    key = S.legend_key(labels)
    assert f"grad_variance refresh_every=50 = {labels[5]}" in key
    assert key.endswith("† did not adapt in some seeds")


def test_fig5_converts_fixed_weights_to_probabilities():
    p_t = pd.DataFrame({"run": ["a"] * 4 + ["b"] * 4, "step": [10] * 8, "t": [0, 1, 2, 3] * 2,
                        "p": [0.25] * 8})
    out = effective_p_t(p_t, {"a": np.array([1.0, 1.0, 2.0, 4.0])})
    np.testing.assert_allclose(out.loc[out["run"] == "a", "p"], [1 / 8, 1 / 8, 2 / 8, 4 / 8])
    np.testing.assert_allclose(out.loc[out["run"] == "b", "p"], [0.25] * 4)   # no weights: p


def test_fixed_loss_weights_are_those_of_fixed_weightings_only(tmp_path):
    runs = []
    for name, strat in (("u", {"name": "uniform"}), ("m", {"name": "min_snr", "gamma": 5}),
                        ("e", {"name": "edm2_uncertainty"})):
        d = tmp_path / name
        d.mkdir()
        runfiles.write_config(d, C.resolve({"strategy": strat, "diffusion": {"timesteps": 50}}))
        runs.append({"run": name, "status": "done", "path": str(d)})
    w = fixed_loss_weights(pd.DataFrame(runs))
    assert set(w) == {"m"}                       # uniform: constant; edm2: learned (starts at 1)
    snr = DDPM("linear", 50).snr.double().numpy()
    np.testing.assert_allclose(w["m"], np.minimum(snr, 5) / snr)


# ---------------------------------------------------------------------------- presentation
def _line_colors(fig) -> dict[str, str]:
    """{legend label: colour} of the labelled lines (and error bars) of a figure."""
    from matplotlib.colors import to_hex

    out = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            if not line.get_label().startswith("_"):
                out[line.get_label()] = to_hex(line.get_color())
    return out


def test_a_strategy_has_one_colour_in_every_figure_and_report(R, tmp_path):
    rep = report_build.build(R, metrics=["fd_cnn"])
    figs = {f.slug: f.figure for f in rep.figures}
    a = _line_colors(figs["fd_cnn_digits_unet_vs_iteration"])
    b = _line_colors(figs["train_loss_digits_unet"])
    assert a[M] == b[M] and a[U] == b[U] and a[M] != a[U]
    # another report, without uniform (so every other strategy moves up in the legend)
    sub = tmp_path / "sub"
    shutil.copytree(FIX / "fx", sub / "fx")
    for d in (sub / "fx").glob("u-*"):
        shutil.rmtree(d)
    rep2 = report_build.build(load(sub), metrics=["fd_cnn"], baseline=M)
    c = _line_colors({f.slug: f.figure for f in rep2.figures}["fd_cnn_vs_iteration"])
    assert U not in c and c[M] == a[M] and c[CO] == a[CO]


def test_bands_stay_in_the_metric_range_and_ticks_at_evaluated_steps(R, fd):
    ev = R.counted(R.evals)
    # linear, min_snr ≤ 20: 22 ± 25.4 — an unclipped band would reach −3.4
    c = curve(ev[(ev["metric"] == "fd_cnn") & (ev["condition"] == M)
                   & (ev["schedule"] == LIN)], "value")
    assert (c["mean"] - c["ci95"]).min() < 0
    lo, _ = band(c[c["n"] >= 2], valid_range("fd_cnn"))
    assert lo.min() >= 0                                         # clipped to the metric's range
    fig = fig_metric_vs_iteration(ev, fd)
    polys = [p for ax in fig.axes for p in ax.collections]
    assert c["n"].max() < 3 and not polys        # < 3 seeds: the seeds' points, not a t-band
    points = [ln for ax in fig.axes for ln in ax.lines if ln.get_linestyle() == "None"]
    assert points and all(min(ln.get_ydata()) >= 0 for ln in points)
    steps = set(fd.select(ev)["step"])
    for ax in fig.axes:
        if ax.get_xlabel():
            assert set(ax.get_xticks()) <= steps
    assert fig.axes[0].get_ylabel() == "fd_cnn ↓" and metric_label("nll_bpd") == \
        "NLL (bits/dim) ↓"
    panels = [ax for ax in fig.axes if ax.get_xlabel()]
    assert len(panels) == 2 and panels[0].get_shared_y_axes().joined(*panels)
    assert valid_range("foo") == (-math.inf, math.inf)          # unknown: not clipped
    assert not ranking.rankable("mmd2_rbf") and ranking.rankable("fd_cnn")


def test_tick_steps_are_a_subset_of_the_steps():
    steps = list(range(0, 200_001, 10_000))
    ticks = tick_steps(steps, 7)
    assert set(ticks) <= set(steps) and len(ticks) <= 7 and ticks[0] == 0 and ticks[-1] == 2e5
    assert [step_text(s) for s in (400, 2000, 2500, 20_000, 200_000, 1_000_000)] == [
        "400", "2k", "2.5k", "20k", "0.2M", "1M"]
    assert protocol_text("ddim10_eta0", 100) == "DDIM sampler, 10 steps, η = 0; 100 samples"


def test_vs_baseline_hand_computed(R, fd):
    t = vs_baseline(R.evals, fd).set_index(["schedule", "condition", "budget"])
    r = t.loc[(LIN, M, 40)]             # best-up-to 40: min_snr (18, 20), uniform (20, 22)
    assert (r["diff"], r["diff_ci95"], r["test"], r["verdict"]) == (-2.0, 0.0, "paired, n=2",
                                                                    "better")
    r = t.loc[(LIN, M, 20)]             # (24, 20) − (30, 28) = −6, −8
    assert r["diff"] == -7.0 and r["diff_ci95"] == pytest.approx(half([-6, -8]))
    assert r["verdict"] == "tie"
    r = t.loc[(COS, M, 40)]             # one seed each: no interval
    assert r["diff"] == 2.0 and r["verdict"] == "no interval"
    assert verdict(1.0, 0.5, lower=True) == "worse" and verdict(1.0, 0.5, False) == "better"
    md, tex, _ = renderers.render_vs_baseline(t.reset_index(), fd, U)
    assert "| ≤ 40 it | min_snr(gamma=1) | 21.0 | 19.0 | −2.0 | [−2.0, −2.0] | 2 vs 2 | paired " \
           "| better |" in md
    assert r"\num{-2.0}" in tex


def test_ranking_uses_rliables_estimators_reproducibly(R):
    from rliable import metrics

    us = units(R.evals)
    scores = ranking.task_scores(R.evals, us)
    # fd_cnn linear/cosine, nll_bpd linear, swd (toy): the tasks with a uniform run
    assert scores["task"].nunique() == 4
    u = scores[(scores["task"] == "fd_cnn_digits_unet/linear") & (scores["strategy"] == U)]
    assert u["score"].sum() == pytest.approx(0.0)                  # 0 = the baseline's mean
    rng = np.random.default_rng(0)
    x, y = rng.random((3, 4)), rng.random((2, 4))
    assert ranking.iqm(x) == pytest.approx(metrics.aggregate_iqm(x))
    assert ranking.probability_of_improvement(x, y) == pytest.approx(
        metrics.probability_of_improvement(x, y))
    t1, p1 = ranking.aggregate(scores, reps=200)
    t2, _ = ranking.aggregate(scores, reps=200)
    pd.testing.assert_frame_equal(t1, t2)                          # fixed seed
    m = t1.set_index("condition").loc[M]
    # min_snr has one seed on cosine: one run per task everywhere, so no bootstrap interval
    assert (m["tasks"], m["runs"]) == (3, 1) and math.isnan(m["iqm_lo"])
    assert 0.0 <= m["p_improve"] <= 1.0
    assert set(p1.columns) == {"condition", "tau", "fraction", "lo", "hi"}


def test_index_headings_name_the_content(out):
    index = (out / "index.md").read_text()
    assert "### Table " not in index and "### Figure " not in index
    assert "### Every strategy vs uniform — digits · unet(ch=8); DDIM sampler" in index
    assert "### Strategies ranked across every condition (rliable)" in index


def test_a_sweep_label_reaches_the_legend_and_the_table_keeps_the_full_condition(tmp_path):
    """A grid entry's ``label:`` names its condition in the figures (not in the config, the run
    id or the tables); the caption's key gives the full label."""
    from bench.sweep import spec as S

    sweep = {"name": "lab", "base": {"dataset": {"name": "toy2d", "n_train": 256, "n_test": 64},
                                     "backbone": {"name": "mlp", "width": 16, "depth": 1},
                                     "diffusion": {"timesteps": 50},
                                     "train": {"iterations": 4, "batch_size": 32, "device": "cpu",
                                               "log_every": 2, "ckpt_every": 4},
                                     "eval": {"at": [4], "metrics": ["swd"], "n_samples": 64,
                                              "ddim_steps": 5}},
             "grid": {"strategy": [{"name": "uniform"},
                                   {"name": "min_snr", "gamma": 1, "label": "clamped SNR"}],
                      "seed": [0, 1]}}
    runs = S.expand(sweep)
    plain = S.expand({**sweep, "grid": {**sweep["grid"], "strategy": [
        {"name": "uniform"}, {"name": "min_snr", "gamma": 1}]}})
    assert [r.run_id for r in runs] == [r.run_id for r in plain]          # not in the identity
    assert [r.display for r in runs] == ["", "", "clamped SNR", "clamped SNR"]
    root = tmp_path / "results" / "lab"
    for r in runs:
        experiment.run(r.config, root / r.run_id, progress=False, log_lines=False)
    (root / "sweep.yaml").write_text(yaml.safe_dump(sweep))
    R = load(tmp_path / "results")
    assert R.displays == {"min_snr(gamma=1)": "clamped SNR"}
    rep = report_build.build(R)
    fig = {f.slug: f for f in rep.figures}["swd_vs_iteration"]
    legend = [t.get_text() for t in fig.figure.legends[0].get_texts()]
    assert legend == ["uniform", "clamped SNR"]
    assert "clamped SNR = min_snr(gamma=1)" in fig.caption
    assert "min_snr(gamma=1)" in "\n".join(t.md for t in rep.tables)
