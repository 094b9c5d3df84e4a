"""A sweep's status (``python -m bench.sweep SWEEP --status``): each run's state, step, last
evaluation, SLURM state and ETA, read from its files (read-only, also while the sweep runs) and
one bounded sacct/squeue query. The states are the ``STATUS_WORDS`` view of the run-state
vocabulary (``bench.rundir.runstate``): done, running, queued, stopped, failed, not started.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import yaml

from bench.config.files import yaml_load
from bench.labels import duration_text
from bench.launch import slurm as launch_slurm
from bench.rundir import runfiles, runpaths, runstate, runtables
from bench.rundir.runstate import STATUS_WORDS, RunState
from bench.sweep.plan import axis_columns
from bench.sweep.spec import RunConfig

SLURM_TIMEOUT_S = 10.0          # --status: the most one sacct/squeue query may take
SLURM_ENDED_OK = ("COMPLETED", "NOT_QUEUED")


def _last_eval(run_dir: Path) -> str:
    ev = runtables.read_evals(run_dir)
    if not len(ev):
        return "-"
    step = int(ev["step"].max())
    last = ev[ev["step"] == step]
    many = last["metric"].duplicated(keep=False)
    vals = [f"{m}{'[' + s + ']' if dup else ''}={v:.4g}"
            for m, s, v, dup in zip(last["metric"], last["sampler"], last["value"], many)]
    return f"{' '.join(vals)} @{step}"


def job_log(job: Mapping) -> str:
    """Where a SLURM job's output goes: submitit's ``<folder>/<job id>_0_log.err`` (progress
    lines and errors; ``.out`` beside it), the folder's ``%j`` being the job id."""
    folder = str(job.get("folder") or "").replace("%j", str(job["job_id"]))
    return f"{folder}/{job['job_id']}_0_log.err" if folder else ""


def run_status(run: RunConfig, sweep_dir: Path, slurm: dict[str, str] | None) -> dict:
    """One run's state (a ``RunState`` of the ``STATUS_WORDS`` view) from its files (read-only;
    the lock probe takes the lock for an instant, as ``runstate.state`` does): done (DONE),
    running (a process holds the run lock, or its SLURM job runs), queued (its SLURM job is
    pending), failed (FAILED, or its SLURM job ended without DONE), stopped (checkpointed: a
    checkpoint or log rows, no DONE, nobody training it), not started (new).
    ``slurm``: {job id: state} of the recorded SLURM jobs (None: SLURM did not answer)."""
    d = sweep_dir / run.run_id
    iters = int(run.config["train"]["iterations"])
    st = {"run": run, "state": RunState.NEW, "step": 0, "iterations": iters, "eval": "-",
          "slurm": "-", "eta": "—", "note": "", "log": ""}
    if not d.is_dir():
        return st
    notes: list[str] = []
    last: dict = {}
    try:
        last = runtables.last_metrics(d)       # skips a half-written last line
    except (runpaths.RunFileError, OSError) as e:
        notes.append(str(e))
    try:
        st["eval"] = _last_eval(d)
    except (runpaths.RunFileError, OSError) as e:
        notes.append(str(e))
    st["step"] = int(last.get("step", 0) or 0)
    job = runfiles.last_job(d) or {}
    slurm_state = ""
    if job.get("cluster") == "slurm" and job.get("job_id"):
        slurm_state = "unknown" if slurm is None else slurm.get(str(job["job_id"]), "UNKNOWN")
        slurm_state = slurm_state.split()[0] if slurm_state else slurm_state  # "CANCELLED by 0"
        st["slurm"] = f"{job['job_id']} {slurm_state}"
        st["log"] = job_log(job)
    if runstate.is_done(d):
        st["state"] = RunState.DONE
        st["step"] = int(runfiles.read_done(d).get("step") or iters)
        st["note"] = "; ".join(notes)
        return st
    try:
        holder = runstate.lock_holder(d)
    except OSError:                         # e.g. a results tree this user cannot write to
        holder = ""
    failed = runstate.failure(d)
    if holder:
        st["state"] = RunState.RUNNING
        notes.append(f"trained by {holder}")
    elif slurm_state == "RUNNING":
        st["state"] = RunState.RUNNING
        notes.append("its SLURM job runs (not training yet)")
    elif slurm_state in launch_slurm.ACTIVE_STATES:
        st["state"] = RunState.QUEUED
    elif failed:
        st["state"] = RunState.FAILED
        notes.append(f"FAILED: {failed.splitlines()[0]}")
    elif slurm_state and slurm_state not in (*SLURM_ENDED_OK, "unknown", "UNKNOWN"):
        st["state"] = RunState.FAILED
        notes.append(f"its SLURM job ended {slurm_state} without {runpaths.DONE}")
    elif st["step"] or runstate.has_checkpoint(d):
        st["state"] = RunState.CHECKPOINTED
        newest = runpaths.newest_write(d)
        if newest is not None:
            notes.append(f"last write {duration_text(time.time() - newest.stat().st_mtime)} ago")
    wall = last.get("wall_s_train")
    if (st["state"] != RunState.FAILED and st["step"] and isinstance(wall, (int, float))
            and wall > 0):
        st["eta"] = duration_text(wall / st["step"] * max(iters - st["step"], 0))
    st["note"] = "; ".join(notes)
    return st


def sweep_status(runs: list[RunConfig], sweep_dir: Path) -> tuple[list[dict], bool]:
    """Every run's ``run_status`` and whether SLURM answered (True when no SLURM job is
    recorded): one bounded sacct/squeue query for all recorded SLURM jobs."""
    jobs = {}
    for r in runs:
        rec = runfiles.last_job(sweep_dir / r.run_id) if (sweep_dir / r.run_id).is_dir() else None
        if rec and rec.get("cluster") == "slurm" and rec.get("job_id"):
            jobs[r.run_id] = str(rec["job_id"])
    slurm = launch_slurm.job_states(list(jobs.values()), SLURM_TIMEOUT_S) if jobs else {}
    return [run_status(r, sweep_dir, slurm) for r in runs], slurm is not None


def format_status(spec: Mapping, runs: list[RunConfig], sweep_dir: Path,
                  results_dir: Path) -> str:
    lines = [(f"sweep {spec['name']}: {len(runs)} runs in {sweep_dir}/ "
              f"(status at {time.strftime('%Y-%m-%d %H:%M:%S')})")]
    if not sweep_dir.is_dir():
        where = (f"{sweep_dir}/ does not exist" if results_dir.is_dir()
                 else f"the results directory {results_dir}/ does not exist")
        lines.append(f"note: {where}: the sweep has not been launched there yet (launched with "
                     f"another --results-dir?); every run is not started")
    else:
        launched = runpaths.sweep_file(sweep_dir)
        try:
            if launched.exists() and yaml_load(launched.read_text()) != dict(spec):
                lines.append(f"note: the sweep file differs from {launched}, the sweep as last "
                             f"launched; the runs below are the sweep file's")
        except (OSError, yaml.YAMLError):
            pass
    sts, answered = sweep_status(runs, sweep_dir)
    show_slurm = any(s["slurm"] != "-" for s in sts)
    cols = axis_columns(runs)
    head = ["run_id", "state", "step", "last eval", *(["slurm"] if show_slurm else []), "eta",
            "condition", *cols, "note"]
    rows = [head]
    for s in sts:
        r, axes = s["run"], dict(s["run"].axes)
        rows.append([r.run_id, STATUS_WORDS[s["state"]], f"{s['step']}/{s['iterations']}",
                     s["eval"],
                     *([s["slurm"]] if show_slurm else []), s["eta"], r.condition,
                     *(axes.get(c, "-") for c in cols), s["note"]])
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(head))]
    lines += ["  " + "  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip()
              for row in rows]
    logs = [(s["run"].run_id, s["log"]) for s in sts
            if s["log"] and s["state"] in (RunState.RUNNING, RunState.FAILED, RunState.QUEUED)]
    if logs:
        lines.append("logs of the running, queued and failed SLURM jobs (progress lines and "
                     "errors; .out beside each):")
        lines += [f"  {rid}: {path}" for rid, path in logs]
    if not answered:
        lines.append(f"note: slurm: unknown (neither sacct nor squeue on PATH answered within "
                     f"{SLURM_TIMEOUT_S:g} s); states are from the run folders alone")
    counts = Counter(s["state"] for s in sts)
    done = sum(min(s["step"], s["iterations"]) for s in sts)
    total = sum(s["iterations"] for s in sts)
    lines.append(f"summary: {len(sts)} runs: "
                 + ", ".join(f"{w} {counts[k]}" for k, w in STATUS_WORDS.items())
                 + f"; steps {done}/{total} ({100 * done / total:.0f} %)")
    return "\n".join(lines)

