"""Sweeps without SLURM: expansion, the paper's grids, bad inputs, and the in-process launcher."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest
import yaml

from bench import config as C
from bench.rundir import runfiles, runstate, runtables
from bench.launch import launcher
from bench.launch import task as launch_task
from bench.evaluation import inception
from bench.experiment import validate
from bench.sweep import spec as S
from bench.sweep.inputs import missing_inputs
from bench.sweep import __main__ as sweep_cli

REPO = Path(__file__).resolve().parent.parent
SWEEPS = sorted((REPO / "sweeps").glob("*.yaml"))

TINY = {
    "dataset": {"name": "toy2d", "n_train": 256, "n_test": 64},
    "backbone": {"name": "mlp", "width": 16, "depth": 1},
    "diffusion": {"timesteps": 50},
    "train": {"iterations": 20, "batch_size": 32, "log_every": 10, "ckpt_every": 10,
              "lr": 1e-3, "device": "cpu"},
}


def spec(**over) -> dict:
    s = {"name": "t", "base": copy.deepcopy(TINY),
         "grid": {"strategy": [{"name": "uniform"}, {"name": "p2", "gamma": 1}],
                  "diffusion.schedule": ["linear", "cosine"], "seed": [0, 1]}}
    s.update(over)
    return s


# ---------------------------------------------------------------------------- expansion
def test_expand_is_pure_and_deterministic():
    s = spec()
    before = copy.deepcopy(s)
    a, b = S.expand(s), S.expand(copy.deepcopy(s))
    assert s == before, "expand mutated its input"
    assert a == b and len(a) == 8
    assert len({r.run_id for r in a}) == 8
    # first axis slowest, file order
    assert [dict(r.axes)["strategy"] for r in a[:4]] == ["uniform"] * 4
    assert [dict(r.axes)["seed"] for r in a[:4]] == ["0", "1", "0", "1"]
    r = a[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.run_id = "x"
    cfg = r.config
    cfg["train"]["lr"] = 123.0
    assert r.config["train"]["lr"] == 1e-3, "RunConfig.config must be a fresh copy"
    assert r.run_id == C.run_id(r.config) == C.run_id(C.resolve(r.config))


def test_the_commands_expand_with_validation_the_pure_expansion_without():
    """spec.expand imports no training code (the report expands committed sweeps with it);
    check.expand, which the commands use, validates each run in grid order."""
    from bench.sweep import check

    s = spec(base={"train": {"iterations": 10}},
             cells=[{"match": {"seed": 1}, "set": {"eval.at": [20]}}])
    assert len(S.expand(s)) == 8
    with pytest.raises(S.SweepError, match=r"run \[.*seed=1\]: eval.at: 20 beyond"):
        check.expand(s)


def test_axis_syntax_strategy_dicts_dotted_paths_and_seeds():
    runs = S.expand(spec())
    cfgs = {(dict(r.axes)["strategy"], dict(r.axes)["diffusion.schedule"], r.config["seed"]):
            r.config for r in runs}
    p2 = cfgs[("p2(gamma=1)", "cosine", 1)]
    assert p2["strategy"] == {"name": "p2", "gamma": 1}
    assert p2["diffusion"] == {**C.DEFAULTS["diffusion"], "schedule": "cosine", "timesteps": 50}
    assert cfgs[("uniform", "linear", 0)]["strategy"] == {"name": "uniform"}
    assert all(c["name"] == "t" for c in cfgs.values()), "run name defaults to the sweep name"


def test_parameter_axis_merges_into_the_base_strategy_and_blocks_union():
    s = spec(base={**copy.deepcopy(TINY), "strategy": {"name": "p2", "k": 2}},
             grid=[{"strategy.gamma": [0.5, 1.0]}, {"strategy": [{"name": "min_snr", "gamma": 5}]}])
    runs = S.expand(s)
    assert [r.config["strategy"] for r in runs] == [
        {"name": "p2", "k": 2, "gamma": 0.5}, {"name": "p2", "k": 2, "gamma": 1.0},
        {"name": "min_snr", "gamma": 5}]
    assert runs[0].label == "strategy.gamma=0.5" and runs[2].label == "strategy=min_snr(gamma=5)"


def test_cells_set_and_skip():
    s = spec(cells=[{"match": {"strategy.name": "p2", "diffusion.schedule": "cosine"},
                     "set": {"train.lr": 5e-4}},
                    {"match": {"strategy": {"name": "uniform"}, "seed": [1]}, "skip": True}])
    runs = S.expand(s)
    assert len(runs) == 6
    lrs = {(dict(r.axes)["strategy"], dict(r.axes)["diffusion.schedule"]): r.config["train"]["lr"]
           for r in runs}
    assert lrs[("p2(gamma=1)", "cosine")] == 5e-4 and lrs[("p2(gamma=1)", "linear")] == 1e-3
    assert not any(dict(r.axes)["strategy"] == "uniform" and r.config["seed"] == 1 for r in runs)
    # matching sees the defaults: diffusion.variance is not in the sweep but matches
    s2 = spec(cells=[{"match": {"diffusion.variance": "fixed_large"}, "set": {"train.lr": 3e-4}}])
    assert {r.config["train"]["lr"] for r in S.expand(s2)} == {3e-4}


def test_value_labels_and_select():
    assert S.value_label({"name": "compose", "sampler": {"name": "adaptive_beta"},
                          "weighting": {"name": "min_snr", "gamma": 5}}) == \
        "compose(sampler=adaptive_beta,weighting=min_snr(gamma=5))"
    runs = S.expand(spec())
    assert len(S.select(runs, "p2")) == 4
    assert len(S.select(runs, "diffusion.schedule=cosine")) == 4
    assert S.select(runs, runs[3].run_id) == [runs[3]]
    with pytest.raises(S.SweepError, match="matches none"):
        S.select(runs, "nothing-like-this")


# ---------------------------------------------------------------------------- the sweep files
@pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_every_sweep_file_expands_and_validates(path, capsys):
    sp = S.load_sweep(path)
    runs = S.expand(sp)
    assert runs and sp["name"] == path.stem
    for r in runs:
        validate(r.config)
        assert r.run_id == C.run_id(C.resolve(r.config))
    S.executor_params(sp)
    missing = missing_inputs(sp, runs)          # e.g. CIFAR-10 on this machine: the plan exits 1
    assert sweep_cli.main([str(path), "--dry-run", "--results-dir", "/nonexistent/never"]) == \
        (1 if missing else 0)
    out = capsys.readouterr().out
    assert all(r.run_id in out for r in runs) and all(f"MISSING: {m}" in out for m in missing)


def test_table1_dry_run_lists_exactly_the_papers_grid(capsys, tmp_path, monkeypatch):
    """Here CIFAR-10 and the Inception weights are missing: the plan names both first and exits
    1; its summary counts evaluation into the GPU-hours and flags the unset partition."""
    monkeypatch.setenv("HOME", str(tmp_path))                    # no Inception weights cached
    monkeypatch.setattr(inception, "CLEANFID_DEFAULT_DIR", tmp_path)
    assert sweep_cli.main([str(REPO / "sweeps" / "table1.yaml"), "--dry-run", "--cluster",
                           "slurm", "--ms-per-it", "63.6"]) == 1
    out = capsys.readouterr().out
    runs = S.expand(S.load_sweep(REPO / "sweeps" / "table1.yaml"))
    assert out.startswith(
        "sweep table1: 18 runs (grid: 3 diffusion.schedule x 6 strategy x 1 seed)")
    lines = out.splitlines()
    head = lines.index(next(ln for ln in lines if ln.split()[:2] == ["run_id", "state"]))
    summary = "\n".join(lines[1:head])
    assert summary.startswith("summary:\n  runs: 18 (18 new)")
    assert "MISSING: CIFAR-10" in summary and "MISSING: clean-fid's Inception weights" in summary
    assert "(step 200000)" in summary and "warning: executor.partition is not set" in summary
    assert summary.endswith("-> cannot run here: 2 missing input(s); the plan exits 1")
    gpu = next(ln for ln in lines[1:head] if "GPU-hours:" in ln).split()
    total, train, evaluation = float(gpu[1]), float(gpu[4]), float(gpu[7])
    assert train == pytest.approx((18e6 * 63.6 + 207.6e6 * 63.6 / 384) / 3.6e6, rel=1e-3)
    assert evaluation == pytest.approx(4.5e9 * 63.6 / 384 / 3.6e6, rel=1e-3)
    assert total == pytest.approx(train + evaluation, rel=1e-3)
    listed = [ln.split()[0] for ln in lines[head + 1:head + 19]]
    assert listed == [r.run_id for r in runs]
    got = {(r.config["diffusion"]["schedule"], r.config["strategy"]["name"]) for r in runs}
    assert got == {(s, n) for s in ("linear", "cosine", "quad")
                   for n in ("uniform", "p2", "min_snr", "lognormal", "speed", "adaptive_beta")}
    for r in runs:
        c = r.config
        assert c["seed"] == 0 and c["dataset"]["name"] == "cifar10"
        assert c["backbone"] == {"name": "unet", "ch": 128, "ch_mult": [1, 2, 2, 2],
                                 "num_res_blocks": 2, "attn_resolutions": [16], "dropout": 0.1}
        tr = c["train"]
        assert (tr["lr"], tr["warmup"], tr["batch_size"], tr["grad_clip"], tr["ema_decay"],
                tr["iterations"]) == (2e-4, 5000, 128, 1.0, 0.9999, 1_000_000)
        assert c["diffusion"]["timesteps"] == 1000 and c["diffusion"]["variance"] == "fixed_large"
        assert c["eval"]["at"] == [200_000, 400_000, 600_000, 800_000, 1_000_000]
        assert c["eval"]["metrics"] == ["fid"] and c["eval"]["n_samples"] == 50_000
        s = c["strategy"]
        if s["name"] == "p2":
            assert (s["k"], s["gamma"]) == (1, 1)
        if s["name"] == "min_snr":
            assert s["gamma"] == 5
        if s["name"] == "lognormal":
            assert (s["m"], s["s"]) == (0, 1)
    assert "submitit parameters:" in out and "timeout_min: 1440" in out


def test_table3_composes_min_snr_with_the_adaptive_sampler():
    runs = S.expand(S.load_sweep(REPO / "sweeps" / "table3.yaml"))
    assert [r.config["strategy"]["name"] for r in runs] == ["min_snr", "compose"]
    comp = runs[1].config["strategy"]
    assert comp["sampler"]["name"] == "adaptive_beta"
    assert comp["weighting"] == {"name": "min_snr", "gamma": 5}


def test_latent_sweeps_without_an_autoencoder_stop_with_a_clear_message(tmp_path, capsys):
    for name, what in (("table2", "autoencoder (VQ-f4) checkpoint"),
                       ("table3", "KL-f8 autoencoder")):
        rc = sweep_cli.main([str(REPO / "sweeps" / f"{name}.yaml"), "--cluster", "debug",
                     "--results-dir", str(tmp_path)])
        err = capsys.readouterr().err
        assert rc == 2 and "cannot run here" in err and what in err, err
    assert not any(tmp_path.iterdir()), "nothing may be written"


def test_latent_sweeps_train_on_the_papers_autoencoders():
    for name, preset, shape, flips in (("table2", "vq-f4", "CelebA", False),
                                       ("table3", "kl-f8", "imagenet", True)):
        sp = S.load_sweep(REPO / "sweeps" / f"{name}.yaml")
        paths = [r["path"] for r in S.requirements(sp)]
        for r in S.expand(sp):
            ds = r.config["dataset"]
            assert ds["name"] == "latent" and ds["preset"] == preset
            assert ds["autoencoder"] in paths and ds["source"]["root"] in paths
            assert ds.get("hflip", ds["source"]["hflip"]) is flips
            assert shape.lower() in ds["source"]["root"]


# ---------------------------------------------------------------------------- bad inputs
BAD = {
    "unknown top-level key": ({"grids": {"seed": [0]}}, "unknown sweep key"),
    "unknown axis": ({"grid": {"train.lrr": [1e-3]}}, "unknown config key 'lrr' in train"),
    "unknown top axis": ({"grid": {"optimizer": ["adam"]}}, "unknown config key 'optimizer'"),
    "axis below a value": ({"grid": {"train.lr.x": [1]}}, "'train.lr' is a value"),
    "unknown strategy": ({"grid": {"strategy": [{"name": "nope"}]}}, "unknown strategy 'nope'"),
    "unknown strategy parameter": ({"grid": {"strategy": [{"name": "p2", "gama": 1}]}},
                                   "unknown parameter"),
    "bad strategy value": ({"grid": {"strategy": [{"name": "p2", "gamma": -1}]}}, "gamma"),
    "unknown dataset parameter": ({"grid": {"dataset.colour": [1]}}, "unknown parameter"),
    "bad config value": ({"grid": {"train.lr": [-1.0]}}, "train.lr must be positive"),
    "bad schedule for T": ({"grid": {"diffusion.timesteps": [10]}}, "timesteps"),
    "empty grid": ({"grid": {}}, "grid is empty"),
    "no grid": ({"grid": None}, "grid is empty"),
    "empty axis": ({"grid": {"seed": []}}, "has no values"),
    "axis not a list": ({"grid": {"seed": 0}}, "must be a list"),
    "duplicate runs": ({"grid": {"seed": [0, 1, 0]}}, "duplicate runs"),
    "duplicate through a default": ({"grid": [{"seed": [0]}, {"diffusion.schedule": ["linear"]}]},
                                    "duplicate runs"),
    "cell matches nothing": ({"grid": {"seed": [0]},
                              "cells": [{"match": {"seed": 7}, "set": {"train.lr": 1e-3}}]},
                             "matches no run"),
    "cell with unknown key": ({"grid": {"seed": [0]},
                               "cells": [{"match": {"seed": 0}, "sett": {"train.lr": 1.0}}]},
                              "unknown key"),
    "unknown executor key": ({"executor": {"partitions": "gpu"}}, "unknown executor key"),
    "bad executor value": ({"executor": {"tasks_per_node": 0}}, "tasks_per_node"),
    "bad parallel": ({"executor": {"parallel": 0}}, "executor.parallel must be a positive"),
    "parallel in process": ({"executor": {"parallel": 2}}, "cannot run tasks_per_node > 1 or "
                                                           "parallel > 1"),
    "bad name": ({"name": "../x"}, "directory-safe"),
    "everything skipped": ({"grid": {"seed": [0]}, "cells": [{"match": {"seed": 0}, "skip": True}]},
                           "every cell was skipped"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_sweeps_fail_before_anything_is_written(case, tmp_path, capsys):
    over, message = BAD[case]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec(**over)))
    results = tmp_path / "results"
    rc = sweep_cli.main([str(path), "--cluster", "debug", "--results-dir", str(results)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("error: ") and message in err, err
    assert not results.exists()


def test_slurm_unreachable_is_a_clear_error_and_submits_nothing(tmp_path, capsys, monkeypatch):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    results = tmp_path / "results"
    rc = sweep_cli.main([str(REPO / "sweeps" / "toy_slurm.yaml"), "--cluster", "slurm",
                 "--results-dir", str(results)])
    err = capsys.readouterr().err
    assert rc == 2 and "no SLURM reachable" in err and "Nothing was submitted" in err, err
    assert "slurm_local.sh start" in err
    assert not results.exists()


def test_missing_sweep_file_and_malformed_yaml(tmp_path, capsys):
    assert sweep_cli.main([str(tmp_path / "nope.yaml"), "--dry-run"]) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    assert sweep_cli.main([str(bad), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and "malformed YAML" in err


# ---------------------------------------------------------------------------- launching in-process
def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_debug_launch_is_idempotent_and_one_failure_does_not_stop_the_others(tmp_path, capsys):
    s = spec(grid={"dataset": [{"name": "toy2d", "n_train": 256, "n_test": 64},
                               {"name": "fashion_mnist", "root": str(tmp_path / "missing")},
                               {"name": "toy2d", "n_train": 256, "n_test": 64, "kind": "moons"}]})
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(s))
    argv = [str(path), "--cluster", "debug", "--results-dir", str(tmp_path / "r")]
    assert sweep_cli.main(argv) == 1
    out = capsys.readouterr().out
    assert "[1/3]" in out and "[3/3]" in out and "completed in" in out
    assert "failed 1" in out and "FileNotFoundError" in out and "completed 2" in out
    runs = S.expand(s)
    done = [(tmp_path / "r" / "t" / r.run_id / "DONE").exists() for r in runs]
    assert done == [True, False, True]
    assert yaml.safe_load((tmp_path / "r" / "t" / "sweep.yaml").read_text()) == s

    assert sweep_cli.main(argv) == 1            # the failing run fails again; the others are skipped
    out = capsys.readouterr().out
    assert "done 2, submitted 1" in out and "done (skipped)" in out


@pytest.fixture
def restore_threads():
    import torch

    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_checkpoint_stops_the_trainer_and_the_relaunch_resumes_to_the_same_metrics(
        tmp_path, restore_threads):
    """submitit's preemption path without SLURM: RunTask.checkpoint() (what submitit calls on
    USR2) stops the trainer after its current step, writes the checkpoint and returns a fresh
    DelayedSubmission; the relaunch resumes from it and ends with the uninterrupted metrics."""
    s = spec(grid={"seed": [5]})
    s["base"]["train"].update(iterations=200, log_every=10, ckpt_every=200)
    (run,) = S.expand(s)
    sweep_dir = tmp_path / "t"
    task = launch_task.RunTask(run.config, sweep_dir / run.run_id, stop_timeout_s=60, num_threads=1)
    box: dict = {}

    def preempt():
        while runtables.last_step(sweep_dir / run.run_id) < 30:
            time.sleep(0.01)
        box["delayed"] = task.checkpoint()

    th = threading.Thread(target=preempt)
    th.start()
    from bench.train.trainer import Interrupted

    with pytest.raises(Interrupted):
        task()
    th.join()
    delayed = box["delayed"]
    assert isinstance(delayed.function, launch_task.RunTask) and delayed.function is not task
    assert delayed.function.run_dir == task.run_dir
    import torch

    stopped_at = torch.load(sweep_dir / run.run_id / "ckpt" / "last.pt", weights_only=False)["step"]
    assert 30 <= stopped_at < 200 and not (sweep_dir / run.run_id / "DONE").exists()

    lines: list[str] = []
    ex = S.executor_params(s)
    summary = launcher.launch(s, [run], cluster="debug", sweep_dir=sweep_dir, ex=ex, out=lines.append)
    assert summary.resumed == 1 and summary.count("completed") == 1, lines
    assert any("resuming" in ln for ln in lines)

    ref_dir = tmp_path / "ref"
    launch_task.RunTask(run.config, ref_dir, num_threads=1)()
    keys = ("step", "loss", "loss_bins", "grad_norm", "lr")
    assert [{k: r[k] for k in keys} for r in _metrics(sweep_dir / run.run_id)] == \
        [{k: r[k] for k in keys} for r in _metrics(ref_dir)]


def test_local_executor_runs_a_single_rank_run_in_this_process(tmp_path, capsys):
    s = spec(grid={"seed": [0]})
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(s))
    rc = sweep_cli.main([str(path), "--cluster", "local", "--results-dir", str(tmp_path / "r")])
    out = capsys.readouterr().out
    assert rc == 0, out
    (run,) = S.expand(s)
    run_dir = tmp_path / "r" / "t" / run.run_id
    assert (run_dir / "DONE").exists() and "[1/1]" in out and "completed in" in out
    assert not (tmp_path / "r" / "t" / ".submitit").exists()   # no subprocess for one rank


def test_local_parallel_runs_side_by_side_in_subprocesses_with_in_process_results(
        tmp_path, restore_threads):
    """executor.parallel = 2: the first two runs start before either ends, the third starts when
    one has ended, in one of the two worker processes; each run's metrics equal the same run
    trained in this process."""
    s = spec(grid={"seed": [0, 1, 2]}, executor={"parallel": 2, "cpus_per_task": 1})
    runs = S.expand(s)
    lines: list[str] = []
    summary = launcher.launch(s, runs, cluster="local", sweep_dir=tmp_path / "t",
                            ex=S.executor_params(s), out=lines.append)
    assert summary.count("completed") == 3 and summary.exit_code == 0, lines
    events = ["start" if ": starting" in ln else "end" for ln in lines
              if ": starting" in ln or ": completed" in ln]
    assert events[:3] == ["start", "start", "end"], lines
    # Trained by two worker processes (the lock file keeps its holder), reused across runs.
    pids = {(tmp_path / "t" / r.run_id / ".lock").read_text().split()[1] for r in runs}
    assert len(pids) == 2 and str(os.getpid()) not in pids
    keys = ("step", "loss", "loss_bins", "grad_norm", "lr")
    for run in runs:
        assert (tmp_path / "t" / run.run_id / "DONE").exists()
        ref = tmp_path / "ref" / run.run_id
        launch_task.RunTask(run.config, ref, num_threads=1)()
        assert [{k: r[k] for k in keys} for r in _metrics(tmp_path / "t" / run.run_id)] == \
            [{k: r[k] for k in keys} for r in _metrics(ref)]


def test_a_run_is_never_trained_by_two_processes_at_once(tmp_path):
    run_dir = tmp_path / "run"
    with runstate.run_lock(run_dir):
        with pytest.raises(runstate.RunBusy, match="being trained by pid"):
            with runstate.run_lock(run_dir):
                pass
    with runstate.run_lock(run_dir):      # released
        pass


# ---------------------------------------------------------------------------- --status
def _status_lines(capsys, argv: list[str]) -> dict[str, list[str]]:
    assert sweep_cli.main(argv) == 0
    out = capsys.readouterr().out
    rows = {ln.split()[0]: ln for ln in out.splitlines() if ln.startswith("  ")}
    return {"out": out, **rows}


def test_status_of_a_partly_finished_local_sweep(tmp_path, capsys, monkeypatch):
    """A real (tiny) sweep, then one run stopped early with a half-written log line, one failed,
    one never started, one being trained (its lock held) and one with a SLURM job that a fake
    sacct reports pending; --status reads each state, its step, last evaluation and the summary."""
    s = spec(grid={"seed": [0, 1, 2, 3, 4, 5]})
    s["base"]["eval"] = {"every": 10, "metrics": ["swd"], "n_samples": 32, "ddim_steps": 5}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(s))
    results = tmp_path / "r"
    argv = [str(path), "--status", "--results-dir", str(results)]

    got = _status_lines(capsys, argv)            # not launched yet: every run not started
    assert f"the results directory {results}/ does not exist" in got["out"]
    assert "summary: 6 runs: done 0, running 0, queued 0, stopped 0, failed 0, not started 6; " \
           "steps 0/120 (0 %)" in got["out"]

    assert sweep_cli.main([str(path), "--cluster", "debug", "--results-dir", str(results)]) == 0
    capsys.readouterr()
    runs = S.expand(s)
    _done, stopped, failed, absent, running, queued = (results / "t" / r.run_id for r in runs)
    (stopped / "DONE").unlink()                  # stopped at step 10, mid-write of the next row
    first = (stopped / "metrics.jsonl").read_text().splitlines()[0]
    (stopped / "metrics.jsonl").write_text(first + '\n{"step": 20, "lo')
    (failed / "DONE").unlink()
    runstate.mark_failed(failed, "RuntimeError: boom\nTraceback (most recent call last): ...")
    shutil.rmtree(absent)
    (running / "DONE").unlink()
    (queued / "DONE").unlink()
    runfiles.record_job(queued, {"cluster": "slurm", "job_id": "77_5", "folder": "x"})
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sacct").write_text("#!/bin/sh\necho '77_[4-6%2]|PENDING'\n")
    (bin_dir / "sacct").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    with runstate.run_lock(running):
        got = _status_lines(capsys, argv)
    rid = [r.run_id for r in runs]
    assert got[rid[0]].split()[1:3] == ["done", "20/20"]
    assert "swd=" in got[rid[0]] and "@20" in got[rid[0]]
    assert got[rid[1]].split()[1:3] == ["stopped", "10/20"] and "last write" in got[rid[1]]
    assert got[rid[2]].split()[1] == "failed" and "FAILED: RuntimeError: boom" in got[rid[2]]
    assert "Traceback" not in got[rid[2]]
    assert got[rid[3]].split()[1:5] == ["not", "started", "0/20", "-"]
    assert got[rid[4]].split()[1] == "running" and f"pid {os.getpid()}" in got[rid[4]]
    assert got[rid[5]].split()[1] == "queued" and "77_5 PENDING" in got[rid[5]]
    assert "slurm" in got["out"].splitlines()[1]     # the column, since a job is recorded
    assert "summary: 6 runs: done 1, running 1, queued 1, stopped 1, failed 1, not started 1; " \
           "steps 90/120 (75 %)" in got["out"]
    assert (stopped / "metrics.jsonl").read_text().endswith('"lo'), "--status wrote to a run"

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))      # no sacct, no squeue
    got = _status_lines(capsys, argv)
    assert "77_5 unknown" in got[rid[5]] and "slurm: unknown" in got["out"]
    assert got[rid[5]].split()[1] == "stopped"     # its DONE is gone, its log is there


def test_status_bounds_a_hanging_sacct(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sacct").write_text("#!/bin/sh\nexec sleep 30\n")
    (bin_dir / "sacct").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    from bench.launch import slurm as launch_slurm
    assert launch_slurm.job_states(["1"], timeout_s=0.2) is None
    assert launch_slurm._array_ids("12_[1-3,7%2]") == ["12_1", "12_2", "12_3", "12_7"]


def test_status_bad_input(tmp_path, capsys):
    assert sweep_cli.main([str(tmp_path / "nope.yaml"), "--status"]) == 2
    assert "sweep file not found" in capsys.readouterr().err


# ---------------------------------------------------------------------------- cost in the plan
def _plan(capsys, argv: list[str]) -> str:
    assert sweep_cli.main(argv) == 0
    return capsys.readouterr().out


def test_dry_run_cost_lines_and_gpu_hours_from_ms_per_it(tmp_path, capsys):
    s = spec()                                   # 8 runs x 20 iterations, batch 32, T = 50
    s["base"]["eval"] = {"every": 10, "at": [0], "metrics": ["swd", "nll"], "n_samples": 200,
                         "ddim_steps": 10, "nll": {"n_images": 100}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(s))
    out = _plan(capsys, [str(path), "--dry-run", "--ms-per-it", "7.5",
                         "--results-dir", str(tmp_path / "r")])
    assert "training iterations: 8 runs x iterations = 8 x 20 = 160" in out
    assert f"training forward-equivalents: {160 * 3 * 32:,} = iterations x 3·batch_size" in out
    assert "the strategies' own passes: 0 forward-equivalents more" in out
    # evaluations at 0, 10, 20: DDIM 10 on 200 samples; the NLL on min(100, n_test 64) x T
    assert "8 runs x 3 evaluations (every 10, at 0)" in out
    assert f"24 evaluations x 200 samples x 10 steps (DDIM 10) = {24 * 200 * 10:,} forwards" in out
    assert f"24 evaluations x 64 images x 50 terms = {24 * 64 * 50:,} forwards" in out
    line = next(ln for ln in out.splitlines() if "in all:" in ln)     # a CPU sweep: CPU-hours
    value = float(line.split("= ")[-1].split()[0])
    evaluation = (24 * 200 * 10 + 24 * 64 * 50) * 7.5 / (3 * 32)         # ms at the step's rate
    assert value == pytest.approx((8 * 20 * 7.5 + evaluation) / 3.6e6, rel=1e-3)
    assert line.endswith("CPU-hours") and "7.5 ms/it (--ms-per-it)" in out


def test_dry_run_evaluation_count_matches_what_a_run_evaluates(tmp_path, capsys):
    s = spec(grid={"seed": [0]})
    s["base"]["eval"] = {"every": 10, "final": True, "at": [0, 5], "metrics": ["swd", "nll"],
                         "n_samples": 16, "ddim_steps": 4, "nll": {"n_images": 8}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(s))
    results = tmp_path / "r"
    out = _plan(capsys, [str(path), "--dry-run", "--results-dir", str(results)])
    assert sweep_cli.main([str(path), "--cluster", "debug", "--results-dir", str(results)]) == 0
    capsys.readouterr()
    (run,) = S.expand(s)
    ev = runtables.read_evals(results / "t" / run.run_id)
    assert sorted(set(ev["step"])) == [0, 5, 10, 20]
    assert "1 run x 4 evaluations" in out
    total = int(ev["fwd_eval"].sum())             # one row per metric, swd's batch counted once
    assert f"evaluation: 4 evaluations, {total:,} forwards" in out


def test_dry_run_names_the_cluster_and_where_it_came_from(tmp_path, capsys):
    s = spec(grid={"seed": [0]}, executor={"partition": "gpu"})
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(s))
    argv = [str(path), "--dry-run", "--results-dir", str(tmp_path / "r")]
    out = _plan(capsys, argv)
    assert "executor for cluster local (the default: no --cluster given" in out
    assert "sets SLURM key(s) partition" in out and "submitit parameters:" not in out
    out = _plan(capsys, [*argv, "--cluster", "slurm"])
    assert "executor for cluster slurm (from --cluster slurm):" in out
    assert "submitit parameters:" in out and "SLURM key(s)" not in out
    path.write_text(yaml.safe_dump({**s, "cluster": "slurm"}))
    out = _plan(capsys, argv)
    assert "executor for cluster slurm (from the sweep file's 'cluster: slurm'):" in out
    assert "submitit parameters:" in out
    out = _plan(capsys, [*argv, "--cluster", "debug"])
    assert "executor for cluster debug (from --cluster debug):" in out
    path.write_text(yaml.safe_dump({**s, "cluster": "slurmm"}))
    assert sweep_cli.main(argv) == 2
    assert "unknown sweep cluster 'slurmm'" in capsys.readouterr().err


def test_ms_per_it_needs_dry_run(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec()))
    with pytest.raises(SystemExit):
        sweep_cli.main([str(path), "--ms-per-it", "5", "--results-dir", str(tmp_path / "r")])
    assert "go with --dry-run" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_the_sweep_files_cluster_is_the_launch_default(tmp_path, capsys, monkeypatch):
    """'cluster: slurm' in the sweep file launches like --cluster slurm (here: no SLURM on PATH,
    a clear error, nothing written); --cluster debug overrides it."""
    s = {**spec(grid={"seed": [0]}), "cluster": "slurm"}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(s))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    argv = [str(path), "--results-dir", str(tmp_path / "r")]
    assert sweep_cli.main(argv) == 2
    assert "--cluster slurm: no SLURM reachable" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    assert sweep_cli.main([*argv, "--cluster", "debug"]) == 0
