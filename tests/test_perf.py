"""bench.perf: the evaluation-share reader on a synthetic results tree, and a smoke run of the
interleaved benchmark on a toy setting (timings are not asserted, only the table's shape)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from bench.tools import perf

FIXTURE_RUN = Path(__file__).resolve().parent / "fixtures" / "results" / "fx2" / "f37c93ca72"


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
    r = perf.eval_share(tmp_path)
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


def test_iters_must_be_whole_update_cycles():
    with pytest.raises(ValueError, match="multiple of 40"):
        perf.benchmark(iters=30)


def test_bad_arguments_are_clear_errors_not_tracebacks(capsys):
    assert perf.main(["--iters", "20", "--only", "uniform"]) == 2
    assert "--iters must be a multiple of 40" in capsys.readouterr().err
    assert perf.main(["--dataset", "nope", "--only", "uniform"]) == 2
    assert "unknown dataset 'nope'; valid:" in capsys.readouterr().err
