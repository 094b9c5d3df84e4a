"""Faults a run survives: divergence, a second trainer on the same run, a crash mid-write, a full
disk, a corrupt log on resume, Ctrl-C and SIGTERM (also during start-up, and to a local sweep)."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from bench.analysis import load as results_tree
from bench import config as C
from bench import experiment
from bench.rundir import runpaths, runstate, runtables
from bench.rundir.runstate import RunState
from bench.launch import launcher
from bench.sweep import spec as S
from bench.train import __main__ as train_cli
from bench.train.trainer import Interrupted

from helpers import StopAt, run_files

REPO = Path(__file__).resolve().parent.parent
TOY = {"name": "toy", "seed": 1, "dataset": {"name": "toy2d", "n_train": 2000, "n_test": 100},
       "backbone": {"name": "mlp", "width": 32, "depth": 1}, "diffusion": {"timesteps": 50},
       "train": {"iterations": 40, "batch_size": 64, "log_every": 5, "ckpt_every": 10,
                 "device": "cpu"}}
DIVERGES = C.deep_update(TOY, {"train": {"lr": 1e6, "grad_clip": 0}})


def _without_wall(rows):
    return [{k: v for k, v in r.items() if k != "wall_s_train"} for r in rows]


def _rows(run_dir):
    return runtables.metric_rows(run_dir)[0]


def test_a_diverged_run_fails_and_is_never_a_data_point(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(DIVERGES))
    rc = train_cli.main([str(tmp_path / "c.yaml"), "--results-dir", str(tmp_path / "res" / "s"),
                         "--no-progress"])
    err = capsys.readouterr().err
    run_dir = tmp_path / "res" / "s" / C.run_id(C.resolve(DIVERGES))
    assert rc == 1 and "diverged at step" in err and "Traceback" not in err
    assert "no checkpoint was written yet" in err or "last good checkpoint" in err
    assert not runstate.is_done(run_dir) and runstate.state(run_dir) == RunState.FAILED
    assert runstate.diverged(run_dir) and "diverged at step" in runstate.failure(run_dir)
    for line in (runpaths.metrics_path(run_dir).read_text().splitlines()
                 if runpaths.metrics_path(run_dir).exists() else []):
        json.loads(line, parse_constant=lambda c: pytest.fail(f"non-finite {c} in JSON"))
    R = results_tree.load(tmp_path / "res")
    (row,) = R.runs.itertuples()
    assert row.status == "failed" and "diverged" in row.note and R.counted(R.runs).empty
    # a sweep rerun skips it (and says so) unless asked to retry
    sweep = {"name": "s", "base": DIVERGES, "grid": {"seed": [1]}}
    runs = S.expand(sweep)
    assert runs[0].run_id == run_dir.name
    lines: list[str] = []
    summary = launcher.launch(sweep, runs, cluster="debug", sweep_dir=tmp_path / "res" / "s",
                              ex=S.executor_params(sweep), out=lines.append)
    assert summary.exit_code == 1 and summary.submitted == 0, lines
    assert any("failed (skipped)" in ln and "--retry-failed" in ln for ln in lines), lines
    summary = launcher.launch(sweep, runs, cluster="debug", sweep_dir=tmp_path / "res" / "s",
                              ex=S.executor_params(sweep), retry_failed=True, out=lines.append)
    assert summary.submitted == 1 and summary.count("failed") == 1


def _cli(cfg_file, results, *extra):
    return subprocess.Popen([sys.executable, "-m", "bench.train", str(cfg_file),
                             "--results-dir", str(results), "--no-progress", *extra], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(cond, what, timeout=300):
    deadline = time.time() + timeout
    while not cond():
        if time.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_a_second_trainer_on_the_same_run_is_refused_at_once(tmp_path, capsys):
    cfg = C.deep_update(TOY, {"train": {"iterations": 1500, "log_every": 50, "ckpt_every": 500}})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    run_dir = tmp_path / "res" / C.run_id(C.resolve(cfg))
    first = _cli(tmp_path / "c.yaml", tmp_path / "res")
    _wait_for(lambda: runstate.lock_holder(run_dir) and runpaths.metrics_path(run_dir).exists(),
              "the first trainer to start")
    meta = (run_dir / runpaths.META).read_text()
    rc = train_cli.main([str(tmp_path / "c.yaml"), "--results-dir", str(tmp_path / "res"),
                         "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and "is being trained by pid" in err and " since " in err, err
    assert (run_dir / runpaths.META).read_text() == meta          # the refused attempt left no trace
    assert first.wait(timeout=600) == 0, first.stderr.read()
    steps = [r["step"] for r in _rows(run_dir)]
    assert steps == list(range(50, 1501, 50))


def test_a_half_written_last_line_is_dropped_and_the_run_ends_as_if_uninterrupted(tmp_path):
    cfg = C.resolve(TOY)
    experiment.run(cfg, tmp_path / "ref", progress=False)

    cut = tmp_path / "cut"
    with pytest.raises(Interrupted):
        experiment.run(cfg, cut, progress=False, extra_callbacks=[StopAt(20)])
    with open(runpaths.metrics_path(cut), "a") as f:
        f.write('{"step": 25, "nimg": 16')            # the crash mid-write
    experiment.run(cfg, cut, progress=False)
    assert _without_wall(_rows(cut)) == _without_wall(_rows(tmp_path / "ref"))


def test_ctrl_c_checkpoints_exits_130_and_resumes_bit_identical(tmp_path):
    cfg = C.deep_update(TOY, {"train": {"iterations": 1200, "log_every": 50, "ckpt_every": 100}})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    ref = _cli(tmp_path / "c.yaml", tmp_path / "ref")
    assert ref.wait(timeout=600) == 0, ref.stderr.read()
    run_dir = tmp_path / "cut" / C.run_id(C.resolve(cfg))
    proc = _cli(tmp_path / "c.yaml", tmp_path / "cut")
    _wait_for(lambda: runpaths.ckpt_path(run_dir).exists() and runpaths.metrics_path(run_dir).exists()
              and len(_rows(run_dir)) >= 3, "a checkpoint")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert not runstate.is_done(run_dir), "the run finished before Ctrl-C; make it longer"
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()             # the job log's plain lines, then one message
    assert "Traceback" not in err and all(ln.startswith("[toy] step") for ln in lines[:-1]), err
    assert lines[-1].startswith("interrupted: stopped at step") and runpaths.ckpt_path(run_dir).exists()
    again = _cli(tmp_path / "c.yaml", tmp_path / "cut")
    assert again.wait(timeout=600) == 0, again.stderr.read()
    ref_dir = tmp_path / "ref" / run_dir.name
    assert _without_wall(_rows(run_dir)) == _without_wall(_rows(ref_dir))


def _local_sweep(tmp_path: Path, name: str, iterations: int, ckpt_every: int, preexec_fn):
    """A two-seed toy sweep run two at a time by ``python -m bench.sweep --cluster local`` in its
    own session: (a function that launches it, its run directories, their resolved configs)."""
    base = C.deep_update(TOY, {"train": {"iterations": iterations, "log_every": 50,
                                         "ckpt_every": ckpt_every}})
    sweep = {"name": name, "base": base, "grid": {"seed": [0, 1]},
             "executor": {"parallel": 2, "cpus_per_task": 1}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(sweep))
    expanded = S.expand(sweep)

    def launch():
        return subprocess.Popen(
            [sys.executable, "-m", "bench.sweep", str(tmp_path / "s.yaml"), "--cluster", "local",
             "--results-dir", str(tmp_path / "res")], cwd=REPO, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, start_new_session=True, preexec_fn=preexec_fn)
    return launch, [tmp_path / "res" / name / r.run_id for r in expanded], \
        [r.config for r in expanded]


def test_ctrl_c_in_a_local_sweep_stops_every_worker_cleanly_and_the_rerun_resumes(tmp_path,
                                                                                 one_thread):
    """Ctrl-C reaches the whole process group; the workers leave it to the launcher, which stops
    each run at the end of its step (a checkpoint at that step), prints one line, exits 130."""
    launch, runs, configs = _local_sweep(tmp_path, "cc", 6000, 1000,
                                         lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    proc = launch()
    _wait_for(lambda: all(runpaths.metrics_path(d).exists() and len(_rows(d)) >= 2 for d in runs),
              "both runs to train")
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, (out, err)
    assert "terminate called" not in err and "Traceback" not in err, err
    assert err.strip() == ("interrupted: the running runs checkpointed and stopped; rerun the "
                           "same command to resume"), err
    for d in runs:
        assert not runstate.is_done(d), "a run finished before Ctrl-C; make it longer"
        st = torch.load(runpaths.ckpt_path(d), weights_only=False)
        assert st["step"] >= runtables.last_step(d)          # stopped at a step, not killed
    again = launch()
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0 and "resumed 2" in out, (out, err)
    ref = tmp_path / "ref"                  # the workers' thread count: one (one_thread)
    experiment.run(configs[0], ref, progress=False)
    assert _without_wall(_rows(runs[0])) == _without_wall(_rows(ref))


def test_resume_is_bit_identical_for_every_file_of_the_run(tmp_path):
    """Stopped part-way (as SIGTERM stops it) and resumed, a run with evaluations, diagnostics
    (the drawn-t histograms between snapshots) and a learned strategy (adaptation rows) ends
    with the same files as an uninterrupted one."""
    cfg = C.resolve(C.deep_update(TOY, {
        "train": {"iterations": 60, "log_every": 5, "ckpt_every": 20},
        "strategy": {"name": "adaptive_beta", "update_every": 10, "hidden_dim": 16},
        "eval": {"every": 30, "metrics": ["swd"], "n_samples": 200, "ddim_steps": 10,
                 "diagnostics": {"every": 20, "per_bin": 0, "loss_per_bin": 8, "bins": 5,
                                 "hist_bins": 5, "pool": 64}}}))
    experiment.run(cfg, tmp_path / "ref", progress=False)
    with pytest.raises(Interrupted):
        experiment.run(cfg, tmp_path / "cut", progress=False, extra_callbacks=[StopAt(30)])
    experiment.run(cfg, tmp_path / "cut", progress=False)
    ref, cut = run_files(tmp_path / "ref"), run_files(tmp_path / "cut")
    assert "timesteps/t_hist.csv" in ref and "timesteps/adaptation.csv" in ref
    assert sorted(cut) == sorted(ref)
    assert [f for f in ref if cut[f] != ref[f]] == []


# ---------------------------------------------------------------------------- faults mid-write
def _no_space(monkeypatch, failed_too: bool):
    """torch.save writes part of the checkpoint and fails as a full disk does; with
    ``failed_too`` every text write (FAILED among them) fails alike from then on."""
    def partial_text(self, data, *args, **kwargs):
        with open(self, "w") as f:
            f.write(data[:3])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def partial_save(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"PK\x03")
        if failed_too:
            monkeypatch.setattr(Path, "write_text", partial_text)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", partial_save)


@pytest.mark.parametrize("failed_too", [False, True], ids=["checkpoint", "checkpoint+FAILED"])
def test_a_full_disk_mid_checkpoint_fails_the_run_naming_the_file_and_leaves_no_tmp(
        tmp_path, capsys, monkeypatch, failed_too):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(TOY))
    argv = [str(tmp_path / "c.yaml"), "--results-dir", str(tmp_path / "res"), "--no-progress"]
    run_dir = tmp_path / "res" / C.run_id(C.resolve(TOY))
    _no_space(monkeypatch, failed_too)
    rc = train_cli.main(argv)
    err = capsys.readouterr().err
    ckpt = runpaths.ckpt_path(run_dir)
    assert rc == 1 and "Traceback" not in err, err         # a failed run, not bad input (2)
    assert f"cannot write {ckpt}: No space left on device" in err, err
    assert sorted(p.name for p in run_dir.rglob("*.tmp")) == [] and not ckpt.exists()
    if failed_too:           # nothing recorded, and said so: a warning naming FAILED, one error
        assert not (run_dir / runpaths.FAILED).exists()
        assert f"not recorded in {run_dir / runpaths.FAILED}" in err
        assert "FAILED could not be written" in err.strip().splitlines()[-1], err
    else:
        assert runstate.state(run_dir) == RunState.FAILED and str(ckpt) in runstate.failure(run_dir)
        assert err.strip().splitlines()[-1].endswith("to resume from the last checkpoint"), err
        assert f"recorded in {run_dir / runpaths.FAILED}" in err
    monkeypatch.undo()                                     # space again: the rerun finishes
    assert train_cli.main(argv) == 0 and runstate.state(run_dir) == RunState.DONE


@pytest.mark.parametrize("name, corrupt, expect", [
    ("metrics.jsonl", lambda text: text.replace("\n", "\n{oops\n", 1),
     "metrics.jsonl, line 2: corrupt metrics row"),
    ("evals.csv", lambda text: 'step,metric,value\n10,"fd\n', "evals.csv: not a readable CSV"),
], ids=["metrics-middle-line", "evals-csv"])
def test_a_corrupt_log_is_refused_on_resume_before_anything_is_written(tmp_path, capsys, name,
                                                                        corrupt, expect):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(TOY))
    run_dir = tmp_path / "res" / C.run_id(C.resolve(TOY))
    with pytest.raises(Interrupted):
        experiment.run(C.resolve(TOY), run_dir, progress=False, extra_callbacks=[StopAt(20)])
    path = run_dir / name
    path.write_text(corrupt(path.read_text() if path.exists() else ""))
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != ".lock"}
    rc = train_cli.main([str(tmp_path / "c.yaml"), "--results-dir", str(tmp_path / "res"),
                         "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and expect in err and str(run_dir) in err, err
    assert "delete the run directory to train the run again" in err, err
    after = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != ".lock"}
    assert after == before            # no FAILED, no second meta.json entry, nothing truncated
    assert runstate.state(run_dir) == RunState.CHECKPOINTED


# ---------------------------------------------------------------------------- signals
def _default_stop_signals() -> None:
    """In the child before exec: a background job's ignored SIGINT would stay ignored."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


STALL = """
import os, sys, time
from pathlib import Path

class Stall:
    \"\"\"Pauses the import of $TSB_STALL_ON (once), after writing $TSB_STALL_MARK.\"\"\"
    def find_spec(self, name, path=None, target=None):
        if name == os.environ.get("TSB_STALL_ON"):
            sys.meta_path.remove(self)
            Path(os.environ["TSB_STALL_MARK"]).write_text(name)
            for _ in range(1200):
                time.sleep(0.05)
        return None

sys.meta_path.insert(0, Stall())
"""


@pytest.mark.parametrize("module, stall_on, sig, status, line", [
    ("bench.train", "torch", signal.SIGINT, 130, "interrupted during start-up; nothing was done"),
    ("bench.sweep", "torch", signal.SIGINT, 130, "interrupted during start-up; nothing was done"),
    ("bench.sweep", "torch", signal.SIGTERM, 143,
     "terminated (SIGTERM) during start-up; nothing was done"),
    ("bench.train", "stall_plugin", signal.SIGINT, 130,
     "interrupted before training started; rerun the same command to resume from the last "
     "checkpoint"),
    ("bench.sweep", "stall_plugin", signal.SIGINT, 130,
     "interrupted: nothing was launched; rerun the same command to resume"),
], ids=["train-imports", "sweep-imports", "sweep-imports-sigterm", "train-config",
        "sweep-config"])
def test_a_stop_during_start_up_is_one_line_and_its_exit_status(tmp_path, module, stall_on, sig,
                                                                 status, line):
    """Ctrl-C (or SIGTERM) while the command imports torch, or while its config imports a
    plug-in (``imports:``): one line on stderr, no traceback, 130 (143), nothing written."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(STALL)
    cfg = {**TOY, "imports": ["stall_plugin"]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(
        cfg if module == "bench.train" else {"name": "st", "base": cfg, "grid": {"seed": [0]}}))
    mark = tmp_path / "stalled"
    env = {**os.environ, "TSB_STALL_ON": stall_on, "TSB_STALL_MARK": str(mark),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path / "site"),
                                                        os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-m", module, str(tmp_path / "c.yaml"),
                             "--results-dir", str(tmp_path / "res")], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=_default_stop_signals)
    _wait_for(lambda: mark.exists() or proc.poll() is not None, "the stalled import")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == status and err.strip() == line, (out, err)
    assert not (tmp_path / "res").exists()


def _lock_pid(run_dir: Path) -> int | None:
    m = re.match(r"pid (\d+) ", (run_dir / runpaths.LOCK).read_text()
                 if (run_dir / runpaths.LOCK).exists() else "")
    return int(m.group(1)) if m else None


def test_sigterm_to_a_local_sweep_stops_its_workers_at_a_checkpoint_and_leaves_no_orphan(
        tmp_path):
    """SIGTERM to the launcher alone (as a process manager sends it): it forwards the stop to
    each worker, whose run checkpoints at the end of its step, waits for them, prints one line
    and exits 143; no worker outlives it, and each run is checkpointed (not failed)."""
    launch, runs, _ = _local_sweep(tmp_path, "term", 100000, 10000, _default_stop_signals)
    proc = launch()
    _wait_for(lambda: proc.poll() is not None or all(
        _lock_pid(d) and runpaths.metrics_path(d).exists() and _rows(d) for d in runs),
        "both workers to train")
    pids = [_lock_pid(d) for d in runs]
    assert proc.pid not in pids and len(set(pids)) == 2      # two worker processes
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, (out, err)
    assert err.strip() == ("terminated (SIGTERM): the running runs checkpointed and stopped; "
                           "rerun the same command to resume"), err
    for pid in pids:                                          # gone, not orphaned
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    for d in runs:
        assert runstate.state(d) == RunState.CHECKPOINTED, runstate.failure(d)
        st = torch.load(runpaths.ckpt_path(d), weights_only=False)
        assert st["step"] >= runtables.last_step(d) > 0      # stopped at a step, not killed
