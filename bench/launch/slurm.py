"""SLURM through submitit: reachability, the executor parameters, job arrays, finding jobs of an
earlier launch still in flight, and waiting for them."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import submitit

from bench.launch.outcomes import Outcome, finish, record_job, short_error, skipped
from bench.launch.task import RunTask
from bench.rundir import runfiles, runpaths
from bench.rundir.runstate import RunState

REPO = Path(__file__).resolve().parents[2]
# Jobs import bench/strategies/backbones from the checkout that launched them.
PYTHONPATH_SETUP = f'export PYTHONPATH="{REPO}${{PYTHONPATH:+:$PYTHONPATH}}"'
ACTIVE_STATES = ("PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING",
                 "COMPLETING", "SUSPENDED", "RESIZING", "PREEMPTED", "STAGE_OUT", "SIGNALING",
                 "READY")
UNKNOWN_GRACE_S = 300.0     # a job whose state stays UNKNOWN this long is reported as lost


def slurm_unreachable() -> str | None:
    """None if SLURM answers (controller and accounting); otherwise what is wrong."""
    for tool in ("sbatch", "sinfo", "sacct", "scontrol"):
        if shutil.which(tool) is None:
            return f"no SLURM reachable ({tool!r} is not on PATH)"
    try:
        subprocess.run(["sinfo", "-h", "-o", "%P"], check=True, capture_output=True, timeout=15)
    except (subprocess.SubprocessError, OSError) as e:
        return f"no SLURM reachable (sinfo failed: {_proc_error(e)})"
    try:
        subprocess.run(["sacct", "-n", "-X", "-j", "1"], check=True, capture_output=True,
                       timeout=15)
    except (subprocess.SubprocessError, OSError) as e:
        return (f"SLURM accounting is not reachable (sacct failed: {_proc_error(e)}); submitit "
                f"needs sacct to follow jobs")
    return None


def job_states(job_ids: list[str], timeout_s: float = 10.0) -> dict[str, str] | None:
    """{job id: SLURM state} of recorded jobs, read-only and bounded: ``sacct`` (every state,
    ended jobs too), and ``squeue`` for the jobs sacct does not list (pending array tasks, which
    sacct leaves out until they start; without sacct, a job squeue does not list has left the
    queue: ``NOT_QUEUED``). None when neither is on PATH or answers within ``timeout_s``."""
    ids = sorted({str(j) for j in job_ids if j})
    if not ids:
        return {}
    sacct = _query(["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(ids)],
                   timeout_s)
    missing = [j for j in ids if j not in (sacct or {})]
    squeue = _query(["squeue", "-h", "-r", "-o", "%i|%T", "-j", ",".join(missing)],
                    timeout_s) if missing else {}
    if sacct is None and squeue is None:
        return None
    gone = "UNKNOWN" if sacct is not None else "NOT_QUEUED"
    return {j: (sacct or {}).get(j) or (squeue or {}).get(j) or gone for j in ids}


def _query(cmd: list[str], timeout_s: float) -> dict[str, str] | None:
    """{job id: state} from one sacct/squeue call printing ``id|state`` lines (array ranges
    expanded); None when the tool is not on PATH or does not answer in time."""
    if shutil.which(cmd[0]) is None:
        return None
    try:
        res = subprocess.run(cmd, check=True, capture_output=True, timeout=timeout_s,
                             stdin=subprocess.DEVNULL)
    except (subprocess.SubprocessError, OSError):
        return None
    states: dict[str, str] = {}
    for line in res.stdout.decode(errors="replace").splitlines():
        job, _, state = line.strip().partition("|")
        for one in _array_ids(job):
            states[one] = state.strip() or "UNKNOWN"
    return states


def _array_ids(job: str) -> list[str]:
    """``12_[1-3,7%2]`` (pending array tasks, as sacct/squeue print them) -> 12_1 12_2 12_3 12_7."""
    if "_[" not in job or not job.endswith("]"):
        return [job] if job else []
    base, spec = job[:-1].split("_[", 1)
    out = []
    for part in spec.split("%")[0].split(","):
        lo, _, hi = part.partition("-")
        if lo.isdigit() and (not hi or hi.isdigit()):
            out += [f"{base}_{i}" for i in range(int(lo), int(hi or lo) + 1)]
    return out


def _proc_error(e: Exception) -> str:
    if isinstance(e, subprocess.CalledProcessError):
        return short_error((e.stderr or b"").decode(errors="replace") or str(e), 1)
    return str(e)


def slurm_parameters(name: str, ex: dict) -> dict:
    """AutoExecutor.update_parameters(...) for the executor block."""
    p = {"name": f"tsb-{name}", "timeout_min": ex["timeout_min"], "nodes": ex["nodes"],
         "tasks_per_node": ex["tasks_per_node"], "cpus_per_task": ex["cpus_per_task"],
         "slurm_array_parallelism": ex["array_parallelism"]}
    optional = {"gpus_per_node": ex["gpus_per_node"] or None, "mem_gb": ex["mem_gb"],
                "slurm_partition": ex["partition"], "slurm_account": ex["account"],
                "slurm_qos": ex["qos"], "slurm_constraint": ex["constraint"],
                "slurm_setup": [PYTHONPATH_SETUP, *ex["setup"]],
                "slurm_additional_parameters": dict(ex["additional"]) or None}
    p.update({k: v for k, v in optional.items() if v is not None})
    return p


def _slurm_job(folder: Path, job_id: str, tasks: int):
    return submitit.SlurmJob(folder=folder, job_id=job_id, tasks=tuple(range(tasks)))


def run_slurm(name: str, outcomes: list[Outcome], sweep_dir: Path, ex: dict, wait: bool,
               wait_max_s: float | None, out) -> None:
    folder = sweep_dir / runpaths.SUBMITIT_DIR / "%j"
    ntasks = ex["tasks_per_node"] * ex["nodes"]
    jobs: dict[int, object] = {}
    _find_in_flight(outcomes, folder, ntasks, jobs)
    todo = [o for o in outcomes if not skipped(o)]
    if todo:
        executor = submitit.AutoExecutor(folder=folder, cluster="slurm",
                                         slurm_max_num_timeout=ex["max_num_timeout"])
        executor.update_parameters(**slurm_parameters(name, ex))
        submitted = []
        with executor.batch():
            for o in todo:
                submitted.append(executor.submit(RunTask(
                    o.run.config, o.run_dir, ex["stop_timeout_s"], ex["cpus_per_task"])))
        for o, job in zip(todo, submitted):
            o.job_id, o.status, o.launched = str(job.job_id), RunState.SUBMITTED, True
            jobs[id(o)] = job
            record_job(o, "slurm", folder)
        first = str(submitted[0].job_id)
        array = first.split("_")[0]
        what = f"job array {array}" if "_" in first else f"job {first}"
        out(f"submitted {len(todo)} run{'s' if len(todo) > 1 else ''} as SLURM {what} "
            f"(logs: {folder.parent}/{array}*)")
    for o in outcomes:
        if o.status in (RunState.SUBMITTED, RunState.RUNNING):
            out(f"  {o.line()}")
    if wait and jobs:
        _wait_slurm(outcomes, jobs, ex["poll_s"], wait_max_s, out)


def _find_in_flight(outcomes: list[Outcome], folder: Path, ntasks: int, jobs: dict) -> None:
    """Runs whose recorded SLURM job is still queued or running are left alone (not resubmitted)."""
    candidates = []
    for o in outcomes:
        if o.before == RunState.DONE:
            continue
        rec = runfiles.last_job(o.run_dir)
        if rec and rec.get("cluster") == "slurm" and rec.get("job_id"):
            job = _slurm_job(Path(rec.get("folder") or folder), str(rec["job_id"]), ntasks)
            candidates.append((o, job))
    if not candidates:
        return
    candidates[0][1].watcher.update()
    for o, job in candidates:
        state = job.watcher.get_state(job.job_id, mode="cache").upper()
        if state.split()[0] in ACTIVE_STATES:
            o.before, o.status, o.job_id = RunState.IN_FLIGHT, RunState.RUNNING, job.job_id
            o.note = f"already {state.lower()} from an earlier launch; not resubmitted"
            jobs[id(o)] = job


def _wait_slurm(outcomes: list[Outcome], jobs: dict, poll_s: float, wait_max_s: float | None,
                out) -> None:
    """Poll (forced sacct) until every job reached a terminal state, a job is UNKNOWN for too
    long, or ``wait_max_s`` passed. Cancelled, failed and timed-out jobs are reported as failed."""
    pending = [o for o in outcomes if id(o) in jobs]
    t0 = time.monotonic()
    unknown_since: dict[int, float] = {}
    out(f"waiting for {len(pending)} SLURM jobs (poll every {poll_s:g} s)")
    last_counts = ""
    states: dict[int, str] = {}
    while pending:
        next(iter(jobs.values())).watcher.update()
        states.update({id(o): jobs[id(o)].watcher.get_state(jobs[id(o)].job_id, mode="cache")
                       .upper() for o in pending})
        counts = _state_counts(states.values())
        if counts != last_counts:
            out(f"  [{time.monotonic() - t0:6.0f} s] {counts}")
            last_counts = counts
        for o in list(pending):
            job = jobs[id(o)]
            state = states[id(o)]
            first = state.split()[0] if state else "UNKNOWN"
            if first == "UNKNOWN":
                since = unknown_since.setdefault(id(o), time.monotonic())
                if time.monotonic() - since < UNKNOWN_GRACE_S:
                    continue
                finish(o, f"SLURM state unknown for {UNKNOWN_GRACE_S:.0f} s (is accounting up?)")
            elif first in ACTIVE_STATES:
                unknown_since.pop(id(o), None)
                continue
            else:
                finish(o, "" if first == "COMPLETED" else f"SLURM job {state}"
                        + _job_error_tail(job))
            pending.remove(o)
            out(f"  {o.line()}")
        if pending and wait_max_s is not None and time.monotonic() - t0 > wait_max_s:
            for o in pending:
                o.status = RunState.RUNNING
                o.note = f"still running after {wait_max_s:.0f} s of waiting"
            out(f"stopped waiting after {wait_max_s:.0f} s; {len(pending)} jobs still running")
            return
        if pending:
            time.sleep(poll_s)


def _state_counts(states) -> str:
    counts: dict[str, int] = {}
    for st in states:
        key = (st.split()[0] if st else "UNKNOWN").lower()
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))


def _job_error_tail(job) -> str:
    try:
        err = job.stderr() or ""
    except Exception:  # noqa: BLE001  (the log may not exist for a job cancelled while pending)
        return ""
    tail = short_error(err, 2)
    return f" ({tail})" if tail else ""
