"""bench.perf: the evaluation-share reader on a synthetic results tree, and a smoke run of the
interleaved benchmark on a toy setting (timings are not asserted, only the table's shape)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from bench.analysis.eval_share import eval_share
from bench.tools import cost_table, perf
from bench.tools.perf_window import amortise

FIXTURE_RUN = Path(__file__).resolve().parent / "fixtures" / "results" / "fx2" / "9f3ce0e6b1"


def test_eval_share_counts_a_sample_group_once(tmp_path):
    run = tmp_path / "sweep" / "r1"
    shutil.copytree(FIXTURE_RUN, run)
    (run / "evals.csv").write_text(
        "step,nimg,metric,value,n_samples,sampler,wall_s_train,wall_s_eval\n"
        "10,160,swd,0.5,200,ddim10_eta0,1.5,2.0\n"
        "10,160,mmd,0.1,200,ddim10_eta0,1.5,2.0\n"      # same sample batch: counted once
        "10,160,nll_bpd,3.0,64,full_T100,1.5,1.0\n"
        "20,320,swd,0.3,200,ddim10_eta0,3.0,3.0\n")
    (run / "metrics.jsonl").write_text(
        '{"step": 10, "nimg": 160, "loss": 0.5, "loss_bins": [0.5], "grad_norm": 1.0, '
        '"lr": 0.001, "wall_s_train": 6.0}\n'
        '{"step": 20, "nimg": 320, "loss": 0.5, "loss_bins": [0.5], "grad_norm": 1.0, '
        '"lr": 0.001, "wall_s_train": 14.0}\n')
    r = eval_share(tmp_path)
    assert r["runs"] == 1
    assert r["eval_s"] == pytest.approx(6.0) and r["train_s"] == pytest.approx(14.0)
    assert r["eval_share"] == pytest.approx(0.3)


def test_benchmark_smoke_on_a_toy(capsys):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = perf.benchmark(iters=40, only=["uniform", "adaptive_beta", "grad_variance"],
                              setup={"dataset": {"name": "toy2d"},
                                     "backbone": {"name": "mlp", "width": 32, "depth": 1},
                                     "batch_size": 32}, T=50, warmup=1)
    finally:
        torch.set_num_threads(n)
    by = {r["run"]: r for r in rows}
    assert set(by) == {"bare", "trainer: uniform", "trainer: adaptive_beta",
                       "trainer: grad_variance"}
    assert by["bare"]["ratio"] == pytest.approx(1.0)
    assert by["trainer: adaptive_beta"]["n_periodic"] == 1        # 40 steps, f_S = 40
    assert by["trainer: grad_variance"]["n_periodic"] == 1        # refresh_every = iters
    assert by["trainer: grad_variance"]["period"] == perf.GRAD_VARIANCE_PERIOD
    assert all(r["amortised_ms"] > 0 for r in rows)
    assert perf.markdown(rows).count("\n") == len(rows) + 1


def test_flow_and_ddpm_are_timed_side_by_side_and_refused_strategies_are_skipped():
    logged = []
    rows = perf.benchmark(iters=40, only=["bare@flow", "uniform", "uniform@flow", "speed@flow"],
                          setup={"dataset": {"name": "toy2d"},
                                 "backbone": {"name": "mlp", "width": 16, "depth": 1},
                                 "batch_size": 16}, T=50, warmup=1, process="both",
                          log=logged.append)
    assert [r["run"] for r in rows] == ["bare", "bare@flow", "trainer: uniform",
                                        "trainer: uniform@flow"]
    assert all(r["fe_per_it"] == 48 for r in rows)         # B forwards + B backwards, B = 16
    assert any("speed@flow: skipped (speed does not run on process flow" in s for s in logged)


def test_iters_must_be_whole_update_cycles():
    with pytest.raises(ValueError, match="multiple of 40"):
        perf.benchmark(iters=30)


def test_bad_arguments_are_clear_errors_not_tracebacks(capsys):
    assert perf.main(["--iters", "20", "--only", "uniform"]) == 2
    assert "--iters must be a multiple of 40" in capsys.readouterr().err
    assert perf.main(["--dataset", "nope", "--only", "uniform"]) == 2
    assert "unknown dataset.name 'nope'; valid:" in capsys.readouterr().err


def test_out_writes_a_cost_table_that_the_sweep_plan_reads(tmp_path, capsys):
    """bench.perf --out FILE: the measured ms/it per strategy with its setting and the device;
    python -m bench.sweep --dry-run --cost-table FILE estimates GPU-hours from it (runs of a
    strategy the table lacks are named, not estimated); a second --out keeps the other rows."""
    import json

    import yaml

    from bench import perf as perf_cli
    from bench.sweep import __main__ as sweep_cli

    table = tmp_path / "cost.json"
    argv = ["--iters", "40", "--warmup", "1", "--only", "uniform", "--dataset", "toy2d",
            "--backbone-config", "{name: mlp, width: 16, depth: 1}", "--batch", "32",
            "--timesteps", "50", "--out", str(table)]
    n = torch.get_num_threads()
    try:
        assert perf_cli.main(argv) == 0
    finally:
        torch.set_num_threads(n)
    assert "cost table: 2 rows" in capsys.readouterr().out
    data = json.loads(table.read_text())
    assert data["format"] == cost_table.COST_TABLE_FORMAT
    rows = {r["strategy"]: r for r in data["rows"]}
    assert set(rows) == {"bare", "uniform"}
    uni = rows["uniform"]
    assert uni["dataset"] == "toy2d" and uni["batch_size"] == 32 and uni["device"] == "cpu"
    assert uni["backbone"]["name"] == "mlp" and uni["backbone"]["width"] == 16
    assert uni["device_name"] and uni["ms_per_it"] > 0

    sweep = {"name": "t", "base": {
        "dataset": {"name": "toy2d", "n_train": 256, "n_test": 64},
        "backbone": {"name": "mlp", "width": 16, "depth": 1}, "diffusion": {"timesteps": 50},
        "train": {"iterations": 20, "batch_size": 32, "device": "cpu"}},
        "grid": {"strategy": [{"name": "uniform"}, {"name": "p2"}], "seed": [0, 1, 2]}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(sweep))
    assert sweep_cli.main([str(path), "--dry-run", "--cost-table", str(table),
                           "--results-dir", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert f"cost table {table} ({uni['device_name']}" in out
    line = next(ln for ln in out.splitlines() if "CPU-hours for" in ln)
    assert "for 3 of 6 runs" in line                    # training only: this sweep evaluates none
    assert float(line.split("= ")[-1].split()[0]) == pytest.approx(
        3 * 20 * uni["ms_per_it"] / 3.6e6, rel=1e-3)
    assert "3 runs (60 iterations) have no row in the cost table" in out
    assert "p2 on toy2d/mlp at batch 32" in out

    uni_before = dict(uni)                        # measure another batch into the same file
    argv[argv.index("--batch") + 1] = "16"
    try:
        assert perf_cli.main(argv) == 0
    finally:
        torch.set_num_threads(n)
    rows = json.loads(table.read_text())["rows"]
    assert sorted((r["strategy"], r["batch_size"]) for r in rows) == [
        ("bare", 16), ("bare", 32), ("uniform", 16), ("uniform", 32)]
    assert uni_before in rows


def test_out_refuses_a_missing_folder_or_a_file_that_is_not_a_cost_table(tmp_path, capsys):
    from bench import perf as perf_cli

    assert perf_cli.main(["--out", str(tmp_path / "no" / "t.json")]) == 2
    assert "no such directory" in capsys.readouterr().err
    other = tmp_path / "notes.json"
    other.write_text('{"a": 1}')
    assert perf_cli.main(["--out", str(other)]) == 2
    assert "not a cost table" in capsys.readouterr().err
    assert other.read_text() == '{"a": 1}'
    with pytest.raises(SystemExit):                 # argparse: the two do not go together
        perf_cli.main(["--out", str(tmp_path / "t.json"), "--eval-share", "x"])


def test_a_cost_table_with_rows_of_two_devices_is_ambiguous():
    from bench import config as C

    cfg = C.resolve({"dataset": {"name": "toy2d"}, "backbone": {"name": "mlp"}})
    row = {**cost_table.run_key(cfg), "ms_per_it": 1.0, "device_name": "CPU x"}
    assert cost_table.lookup([row], cfg) == row
    assert cost_table.lookup([row], C.resolve({"strategy": {"name": "p2"}})) is None
    with pytest.raises(C.ConfigError, match=r"several devices \(CPU x, NVIDIA H200\)"):
        cost_table.lookup([row, {**row, "device_name": "NVIDIA H200"}], cfg)


# ---------------------------------------------------------------------------- window mode
TINY = {"dataset": {"name": "toy2d"}, "backbone": {"name": "mlp", "width": 32, "depth": 1},
        "batch_size": 16}


def test_amortise_is_the_per_step_formula_at_window_one_and_spreads_windows_alike():
    a = amortise([1.0, 3.0, 1.2, 9.0], [0, 0, 0, 1], 1, 40)      # 3 ordinary, 1 periodic step
    assert a["median"] == pytest.approx(1.2) and a["periodic"] == pytest.approx(9.0)
    assert a["amortised"] == pytest.approx(1.2 + (9.0 - 1.2) / 40)
    assert a["mean"] == pytest.approx(14.2 / 4) and a["n_periodic"] == 1
    w = amortise([4.0, 4.4, 12.0], [0, 0, 1], 4, 40)             # windows of 4 steps
    assert w["median"] == pytest.approx(1.05)                      # median(1.0, 1.1)
    assert w["periodic"] == pytest.approx(1.05 + (12.0 - 4 * 1.05))
    assert w["amortised"] == pytest.approx(1.05 + (12.0 - 4 * 1.05) / 40)
    every = amortise([5.0, 7.0], [1, 1], 4, 40)   # periodic work in every window: the mean
    assert every["amortised"] == every["median"] == pytest.approx(12.0 / 8)


def test_window_mode_counts_the_same_work_and_reports_syncs_and_mfu(one_thread):
    kw = dict(iters=40, only=["uniform", "adaptive_beta", "grad_variance"], setup=TINY, T=50,
              warmup=1)
    per_step = {r["run"]: r for r in perf.benchmark(**kw)}
    rows = perf.benchmark(**kw, window=4, peak=1.0)
    by = {r["run"]: r for r in rows}
    assert set(by) == set(per_step)
    assert all(r["window"] == 4 for r in rows) and by["bare"]["ratio"] == pytest.approx(1.0)
    assert by["trainer: adaptive_beta"]["n_periodic"] == 1         # one update in 40 steps
    assert by["trainer: grad_variance"]["n_periodic"] == 1
    for run, r in by.items():                      # counted work does not depend on the window
        assert r["fe_per_it"] == pytest.approx(per_step[run]["fe_per_it"]), run
        assert r["syncs_per_step"] == 0, run       # steady state on the CPU: no host reads
        assert r["amortised_ms"] > 0 and r["flops_per_step"] > 0 and r["mfu"] > 0
    assert all(r["mfu"] is None for r in per_step.values())     # CPU without a peak: no MFU
    table = perf.markdown(rows).splitlines()
    assert table[0].endswith("| counted ratio vs bare | syncs/step | MFU (bf16 peak) |")
    assert len(table) == len(rows) + 2 and all(ln.count("|") == 10 for ln in table)


def test_window_mode_on_the_command_line(capsys, one_thread):
    from bench import perf as perf_cli

    argv = ["--iters", "40", "--window", "4", "--warmup", "1", "--only", "uniform",
            "--dataset", "toy2d", "--backbone-config", "{name: mlp, width: 32, depth: 1}",
            "--batch", "16", "--timesteps", "50", "--sync-steps", "2", "--peak-tflops", "1",
            "--threads", "1"]
    assert perf_cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "window=4" in out and "FLOPs per training step (bare, forward + backward" in out
    lines = [ln for ln in out.splitlines() if ln.startswith("| ")]
    assert lines[0].startswith("| run | median ms/it |") and "| syncs/step | MFU" in lines[0]
    assert [ln.split(" | ")[0] for ln in lines[1:]] == ["| bare", "| trainer: uniform"]
    assert perf_cli.main(argv[:2] + ["--window", "7"]) == 2
    assert "--window must be a positive divisor of --iters (40), got 7" in capsys.readouterr().err
