"""The sweep launcher against a real SLURM (``bash scripts/slurm_local.sh start`` on this machine).

Skipped with a reason when no SLURM is reachable; with ``TSB_REQUIRE_SLURM=1`` (CI) an unreachable
SLURM is a failure instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from bench.rundir import runtables

from bench.launch import launcher
from bench.launch import slurm as launch_slurm
from bench.launch import task as launch_task
from bench.sweep import spec as S
from bench.sweep import __main__ as sweep_cli

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parent.parent
TOY = {
    "dataset": {"name": "toy2d", "kind": "8gaussians", "n_train": 2048, "n_test": 256},
    "backbone": {"name": "mlp", "width": 32, "depth": 2},
    "diffusion": {"schedule": "linear", "timesteps": 50},
    "train": {"iterations": 1000, "batch_size": 64, "lr": 1e-3, "warmup": 10, "ema_decay": 0.99,
              "log_every": 25, "ckpt_every": 1000, "device": "cpu"},
}
COMPARED = ("step", "nimg", "loss", "loss_bins", "grad_norm", "lr")


@pytest.fixture(scope="module")
def slurm() -> None:
    problem = launch_slurm.slurm_unreachable()
    if problem:
        if os.environ.get("TSB_REQUIRE_SLURM") == "1":
            pytest.fail(f"TSB_REQUIRE_SLURM=1 but {problem}; start it with "
                        f"`bash scripts/slurm_local.sh start`")
        pytest.skip(f"{problem} (start one with `bash scripts/slurm_local.sh start`)")


def _spec(name: str, train: dict | None = None, **executor) -> dict:
    base = json.loads(json.dumps(TOY))
    base["train"].update(train or {})
    return {"name": name, "base": base, "grid": {"seed": [0]},
            "executor": {"timeout_min": 15, "poll_s": 1, **executor}}


def _launch(spec: dict, sweep_dir: Path, wait: bool = True, lines: list | None = None):
    ex = S.executor_params(spec)
    out = lines.append if lines is not None else print
    return launcher.launch(spec, S.expand(spec), cluster="slurm", sweep_dir=sweep_dir, ex=ex,
                         wait=wait, wait_max_s=600, out=out)


def _metrics(run_dir: Path) -> list[dict]:
    rows = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: r[k] for k in COMPARED} for r in rows]


def _reference(cfg: dict, run_dir: Path) -> list[dict]:
    """The same run, uninterrupted, in this process (one thread, as in the job)."""
    import torch

    threads = torch.get_num_threads()
    try:
        launch_task.RunTask(cfg, run_dir, num_threads=1)()
    finally:
        torch.set_num_threads(threads)
    return _metrics(run_dir)


def _assert_rows_close(ref: list[dict], got: list[dict], rel: float) -> None:
    assert [r["step"] for r in got] == [r["step"] for r in ref]
    for a, b in zip(ref, got):
        for key in COMPARED:
            x, y = a[key], b[key]
            if isinstance(x, list):
                assert [v is None for v in x] == [v is None for v in y], (key, a, b)
                x = [v for v in x if v is not None]
                y = [v for v in y if v is not None]
            assert y == pytest.approx(x, rel=rel, abs=rel * 1e-3), (key, a, b)


def _sacct_count() -> int:
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-o", "JobID", "-S", "now-1days"],
                         capture_output=True, text=True, check=True).stdout
    return len([ln for ln in out.splitlines() if ln.strip()])


def _wait_until(pred, timeout_s: float, what: str, poll_s: float = 0.2):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def _last_step(run_dir: Path) -> int:
    return runtables.last_step(run_dir)


def test_toy_sweep_runs_as_one_array_and_rerun_submits_nothing(slurm, tmp_path, capsys):
    spec = S.load_sweep(REPO / "sweeps" / "toy_slurm.yaml")
    sweep_dir = tmp_path / spec["name"]
    t0 = time.monotonic()
    summary = _launch(spec, sweep_dir)
    wall = time.monotonic() - t0
    assert summary.exit_code == 0, summary.format()
    assert summary.submitted == 4 and summary.count("completed") == 4
    arrays = {o.job_id.split("_")[0] for o in summary.outcomes}
    assert len(arrays) == 1 and all("_" in o.job_id for o in summary.outcomes), "one job array"
    for o in summary.outcomes:
        assert (o.run_dir / "DONE").exists()
        assert yaml.safe_load((o.run_dir / "config.yaml").read_text()) == o.run.config
        meta = json.loads((o.run_dir / "meta.json").read_text())
        assert meta["slurm_job_id"] and meta["slurm_job_id"] != "None"
        assert _metrics(o.run_dir)[-1]["step"] == o.run.config["train"]["iterations"]
    print(f"4-run toy sweep on SLURM: {wall:.1f} s wall")

    jobs_before = _sacct_count()
    records = {o.run.run_id: (o.run_dir / "jobs.jsonl").read_text() for o in summary.outcomes}
    capsys.readouterr()
    rc = sweep_cli.main([str(REPO / "sweeps" / "toy_slurm.yaml"), "--cluster", "slurm", "--wait",
                 "--results-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "done 4, submitted 0" in out and "submitted 4 runs" not in out
    assert _sacct_count() == jobs_before, "the rerun submitted a job"
    assert records == {o.run.run_id: (o.run_dir / "jobs.jsonl").read_text()
                       for o in summary.outcomes}


def test_interrupted_run_resumes_from_its_checkpoint_with_the_same_metrics(slurm, tmp_path):
    import submitit

    spec = _spec("preempt")            # ckpt_every = iterations: the only mid-run checkpoint is
    sweep_dir = tmp_path / "preempt"   # the one written when the job is interrupted
    first = _launch(spec, sweep_dir, wait=False)
    (o,) = first.outcomes
    assert o.status == "submitted" and o.job_id
    _wait_until(lambda: _last_step(o.run_dir) >= 100, 300, "the job to train 100 steps")
    job = submitit.SlurmJob(folder=sweep_dir / ".submitit" / "%j", job_id=o.job_id)
    job._interrupt()                   # preemption: SIGTERM (ignored) then USR2 -> checkpoint()

    lines: list[str] = []
    second = _launch(spec, sweep_dir, wait=True, lines=lines)   # finds it in flight and waits
    assert second.exit_code == 0, "\n".join(lines)
    (o2,) = second.outcomes
    assert o2.before == "in_flight" and second.submitted == 0, "\n".join(lines)
    assert o2.status == "completed" and o2.job_id == o.job_id
    result = job.result()              # the requeued attempt's return value
    assert 0 < result["start_step"] < spec["base"]["train"]["iterations"], result
    log = Path(str(job.paths.stdout).replace("%t", "0")).read_text()
    assert "this job is preempted" in log and "Calling checkpoint method" in log, log
    assert f"resuming from checkpoint at step {result['start_step']} " in log, log
    meta = json.loads((o.run_dir / "meta.json").read_text())
    assert len(meta.get("resumes", [])) >= 1

    ref = _reference(o.run.config, tmp_path / "reference")
    _assert_rows_close(ref, _metrics(o.run_dir), rel=1e-6)


def test_cancelled_job_is_reported_failed_not_waited_on(slurm, tmp_path):
    spec = _spec("cancel", {"iterations": 10_000_000, "log_every": 100, "ckpt_every": 10_000})
    path = tmp_path / "cancel.yaml"
    path.write_text(yaml.safe_dump(spec))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "bench.sweep", str(path), "--cluster", "slurm",
                             "--wait", "--results-dir", str(tmp_path / "results")],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        run_dir = _wait_until(lambda: next((tmp_path / "results" / "cancel").glob("*/jobs.jsonl"),
                                           None), 120, "the submission").parent
        job_id = json.loads((run_dir / "jobs.jsonl").read_text().splitlines()[-1])["job_id"]
        _wait_until(lambda: _last_step(run_dir) > 0, 300, "the job to start training")
        subprocess.run(["scancel", job_id], check=True)
        t_cancel = time.monotonic()
        out, _ = proc.communicate(timeout=180)
        waited = time.monotonic() - t_cancel
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out
    assert "CANCELLED" in out and "failed 1" in out, out
    assert waited < 60, f"the launcher needed {waited:.0f} s to notice the cancellation"
    status = subprocess.run([sys.executable, "-m", "bench.sweep", str(path), "--status",
                             "--results-dir", str(tmp_path / "results")], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120).stdout
    assert f"{job_id} CANCELLED " in status and "CANCELLED by" not in status, status
    log = status.split(f"  {run_dir.name}: ")[1].splitlines()[0]       # where its output went
    assert log.endswith(f"{job_id}_0_log.err") and "step" in Path(log).read_text(), status


def test_two_tasks_per_node_train_ddp_like_one_process(slurm, tmp_path):
    spec = _spec("ddp", {"iterations": 40, "log_every": 10, "ckpt_every": 40},
                 tasks_per_node=2, cpus_per_task=1)
    summary = _launch(spec, tmp_path / "ddp")
    assert summary.exit_code == 0, summary.format()
    (o,) = summary.outcomes
    assert json.loads((o.run_dir / "meta.json").read_text())["world_size"] == 2
    ref = _reference(o.run.config, tmp_path / "reference")
    assert [r["step"] for r in ref] == [10, 20, 30, 40]
    _assert_rows_close(ref, _metrics(o.run_dir), rel=1e-4)


def test_pending_array_tasks_read_as_pending_not_unknown(slurm, tmp_path):
    """sacct leaves out array tasks that have not started; their state comes from squeue."""
    script = tmp_path / "sleep.sh"
    script.write_text("#!/bin/bash\nsleep 60\n")
    script.chmod(0o755)
    cpus = os.cpu_count() or 1           # one task takes the whole node: the others wait
    job = subprocess.run(["sbatch", "--parsable", "--array=0-2", "-c", str(cpus), "-o",
                          "/dev/null", str(script)], check=True, capture_output=True,
                         text=True).stdout.strip().split(";")[0]
    def once_the_first_runs():
        s = launch_slurm.job_states([f"{job}_{i}" for i in range(3)])
        return s if s and s.get(f"{job}_0") == "RUNNING" else None

    try:
        states = _wait_until(once_the_first_runs, 60, "the first array task to run")
        assert states[f"{job}_1"] == states[f"{job}_2"] == "PENDING", states
    finally:
        subprocess.run(["scancel", job], check=False)
