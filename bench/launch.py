"""Launching a sweep's runs: the checkpointable task and the debug / local / SLURM executors.

``RunTask`` is what a job runs: it trains one run config into its run directory (resuming from
``ckpt/last.pt``), in a worker thread so that submitit's preemption/timeout handler (which runs in
the main thread) can ask the trainer to stop at the end of its current step, wait for the
checkpoint, and hand submitit a fresh ``DelayedSubmission`` of itself to requeue. With several
tasks per job (``tasks_per_node > 1``) each task is one rank (``bench.dist``); the stop request is
agreed on by all ranks at the end of every step, so they stop together and rank 0 saves.

``launch`` plans from what is on disk (DONE: skip; checkpoint: resume; a SLURM job of an earlier
launch still queued or running: leave it alone), runs or submits the rest, and returns a summary.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bench import dist
from bench.sweep import RunConfig, SweepError, run_state

REPO = Path(__file__).resolve().parent.parent
# Jobs import bench/strategies/backbones from the checkout that launched them.
PYTHONPATH_SETUP = f'export PYTHONPATH="{REPO}${{PYTHONPATH:+:$PYTHONPATH}}"'
ACTIVE_STATES = ("PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING",
                 "COMPLETING", "SUSPENDED", "RESIZING", "PREEMPTED", "STAGE_OUT", "SIGNALING",
                 "READY")
UNKNOWN_GRACE_S = 300.0     # a job whose state stays UNKNOWN this long is reported as lost


# ---------------------------------------------------------------------------- the job's task
class _StopSync:
    """Trainer callback: sets ``trainer.stop_requested`` once a stop was asked for on any rank;
    logs the step the run starts from (after the trainer loaded its checkpoint)."""

    def __init__(self, event: threading.Event, world_size: int):
        self.event, self.world_size = event, world_size
        self.start_step = 0

    def on_start(self, trainer) -> None:
        self.start_step = trainer.step
        if trainer.rank == 0:
            how = "resuming from checkpoint" if trainer.step else "starting"
            print(f"[bench.launch] {trainer.run_dir.name}: {how} at step {trainer.step} of "
                  f"{trainer.tr['iterations']} (world size {trainer.world_size})", flush=True)

    def on_step_end(self, trainer) -> None:
        flag = self.event.is_set() or trainer.stop_requested
        if self.world_size > 1:
            flag = dist.all_reduce_max_flag(flag, trainer.device)
        if flag:
            trainer.stop_requested = True


class RunBusy(RuntimeError):
    """Another process is training this run directory."""


@contextlib.contextmanager
def run_lock(run_dir: Path, take: bool = True):
    """An exclusive lock on ``run_dir/.lock`` while training (released by the OS if the process
    dies), so two launches can never train the same run at once (e.g. a local launch while the
    SLURM job of the same run is running on this filesystem)."""
    if not take:
        yield
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".lock", "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                # A filesystem without flock (some network mounts): train unlocked.
                print(f"[bench.launch] warning: cannot lock {run_dir}: {e}", flush=True)
                yield
                return
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise RunBusy(f"{run_dir} is being trained by {holder}; not starting it twice") from e
        f.seek(0)
        f.truncate()
        job = os.environ.get("SLURM_JOB_ID")
        f.write(f"pid {os.getpid()} on {socket.gethostname()}"
                + (f" (SLURM job {job})" if job else ""))
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class RunTask:
    """Train one run; a submitit checkpointable callable (``checkpoint`` returns a fresh
    ``DelayedSubmission`` of the same run, which resumes from the checkpoint it just wrote)."""

    def __init__(self, config: dict, run_dir: str | Path, stop_timeout_s: float = 60.0,
                 num_threads: int | None = None):
        self.config = config
        self.run_dir = str(run_dir)
        self.stop_timeout_s = float(stop_timeout_s)
        self.num_threads = num_threads      # torch intra-op threads (= the job's CPUs per task)
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None
        self._sync: _StopSync | None = None

    def __getstate__(self) -> dict:
        return {"config": self.config, "run_dir": self.run_dir,
                "stop_timeout_s": self.stop_timeout_s, "num_threads": self.num_threads}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._stop, self._thread, self._sync = None, None, None

    def __call__(self) -> dict:
        env = dist.from_submitit()
        self._stop = threading.Event()
        box: dict = {}
        self._thread = threading.Thread(target=self._work, args=(env, box), daemon=True,
                                        name=f"train-{Path(self.run_dir).name}")
        self._thread.start()
        try:
            while self._thread.is_alive():
                self._thread.join(0.2)      # short joins: signal handlers run in this thread
        except KeyboardInterrupt:
            self._request_stop()
            raise
        if "error" in box:
            from bench.trainer import Interrupted

            if isinstance(box["error"], Interrupted) and env.rank != 0:
                # Rank 0 is checkpointing and requeuing the job, which ends this process.
                time.sleep(self.stop_timeout_s + 60)
            raise box["error"]
        return box["result"]

    def _work(self, env: dist.DistEnv, box: dict) -> None:
        from bench import train

        try:
            if self.num_threads:
                # More threads than CPUs makes OpenMP spin and slows small models many-fold.
                import torch

                torch.set_num_threads(self.num_threads)
            resumed = run_state(Path(self.run_dir)) == "ckpt"
            with run_lock(Path(self.run_dir), env.rank == 0):
                dist.init(env)
                try:
                    final = train.run(self.config, self.run_dir, progress=False, rank=env.rank,
                                      world_size=env.world_size,
                                      reduce=dist.all_reduce_sum if env.distributed else None,
                                      trainer_hook=self._hook(env))
                finally:
                    dist.teardown()
            box["result"] = {"run_id": Path(self.run_dir).name, "resumed": resumed,
                             "start_step": self._sync.start_step if self._sync else None,
                             "final": {k: v for k, v in final.items() if k != "loss_bins"}}
        except BaseException as e:  # noqa: BLE001  (handed to the main thread, re-raised there)
            box["error"] = e

    def _hook(self, env: dist.DistEnv) -> Callable:
        def hook(trainer) -> None:
            self._sync = _StopSync(self._stop, env.world_size)
            trainer.callbacks.append(self._sync)
        return hook

    def _request_stop(self) -> None:
        if self._stop is not None:
            self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(self.stop_timeout_s)

    def checkpoint(self, *args, **kwargs):
        """Called by submitit on preemption or timeout (rank 0): stop the trainer at the end of
        its step, wait for its checkpoint, and requeue a fresh task for the same run."""
        import submitit

        self._request_stop()
        return submitit.helpers.DelayedSubmission(
            RunTask(self.config, self.run_dir, self.stop_timeout_s, self.num_threads))


# ---------------------------------------------------------------------------- outcomes
@dataclass
class Outcome:
    run: RunConfig
    run_dir: Path
    before: str                     # done | ckpt | new | in_flight  (at launch)
    status: str = "pending"         # done | completed | submitted | running | failed
    job_id: str | None = None
    note: str = ""
    resumed: bool = False

    def line(self) -> str:
        job = f" job {self.job_id}" if self.job_id else ""
        note = f": {self.note}" if self.note else ""
        return f"{self.run.run_id} [{self.run.label}]{job} {self.status}{note}"


@dataclass
class Summary:
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def submitted(self) -> int:
        return sum(o.before in ("ckpt", "new") for o in self.outcomes)

    @property
    def resumed(self) -> int:
        return sum(o.resumed for o in self.outcomes)

    @property
    def exit_code(self) -> int:
        return 1 if self.count("failed") else 0

    def format(self) -> str:
        return (f"summary: {len(self.outcomes)} runs: done {self.count('done')}, "
                f"submitted {self.submitted}, resumed {self.resumed}, "
                f"completed {self.count('completed')}, running "
                f"{self.count('running') + self.count('submitted')}, failed {self.count('failed')}")


def _last_step(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    try:
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
        return int(json.loads(lines[-1])["step"]) if lines else 0
    except (OSError, ValueError, KeyError):
        return 0


def _finish(o: Outcome, error: str = "") -> None:
    """Decide from disk (DONE is the truth) how a finished job or call ended."""
    if (o.run_dir / "DONE").exists():
        o.status, o.note = "completed", ""
        return
    o.status = "failed"
    o.note = error or "ended without DONE"
    step = _last_step(o.run_dir)
    if step:
        o.note += f" (at step {step}; rerun to resume from the checkpoint)"


def _done_note(o: Outcome, seconds: float) -> str:
    row = {}
    try:
        row = json.loads((o.run_dir / "DONE").read_text() or "{}")
    except (OSError, ValueError):
        pass
    loss = f", loss {row['loss']:.4g}" if isinstance(row.get("loss"), (int, float)) else ""
    step = f", step {row['step']}" if "step" in row else ""
    return f"in {seconds:.1f} s{step}{loss}"


def _record_job(o: Outcome, cluster: str, folder: Path) -> None:
    o.run_dir.mkdir(parents=True, exist_ok=True)
    with open(o.run_dir / "jobs.jsonl", "a") as f:
        f.write(json.dumps({"cluster": cluster, "job_id": o.job_id, "submitted": time.time(),
                            "resume": o.before == "ckpt", "folder": str(folder)}) + "\n")


def _recorded_job(run_dir: Path) -> dict | None:
    path = run_dir / "jobs.jsonl"
    try:
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
        return json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------- entry point
def launch(spec: dict, runs: list[RunConfig], *, cluster: str, sweep_dir: Path, ex: dict,
           wait: bool = True, wait_max_s: float | None = None,
           out: Callable[[str], None] = print) -> Summary:
    """Run or submit every run of ``runs`` that is not done; returns the summary (also printed)."""
    sweep_dir = Path(sweep_dir).absolute()     # jobs may run from another working directory
    if cluster == "slurm":
        problem = slurm_unreachable()
        if problem:
            raise SweepError(f"--cluster slurm: {problem}. Nothing was submitted. Start the "
                             f"local SLURM with `bash scripts/slurm_local.sh start`, or use "
                             f"--cluster local")
    outcomes = [Outcome(r, sweep_dir / r.run_id, run_state(sweep_dir / r.run_id)) for r in runs]
    ranks = ex["tasks_per_node"] * ex["nodes"]
    if cluster == "debug" and (ranks > 1 or ex["parallel"] > 1):
        raise SweepError("--cluster debug runs one run at a time in this process: it cannot run "
                         "tasks_per_node > 1 or parallel > 1; use --cluster local or slurm")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    _write_if_changed(sweep_dir / "sweep.yaml", yaml.safe_dump(spec, sort_keys=False))
    for o in outcomes:
        if o.before == "done":
            o.status = "done"
    if cluster == "debug" or (cluster == "local" and ranks == 1 and ex["parallel"] == 1):
        # One process per run buys nothing here but a torch import per run (seconds each).
        _run_inline(outcomes, ex, out)
    elif cluster == "local":
        threads = ex["parallel"] * ranks * ex["cpus_per_task"]
        if threads > (os.cpu_count() or 1):
            out(f"warning: parallel x tasks x cpus_per_task = {threads} threads on "
                f"{os.cpu_count()} CPUs: the runs will slow each other down")
        _run_local(outcomes, sweep_dir, ex, out)
    else:
        _run_slurm(spec["name"], outcomes, sweep_dir, ex, wait, wait_max_s, out)
    summary = Summary(outcomes)
    for o in outcomes:
        if o.status == "failed":
            out(f"FAILED {o.line()}")
    out(summary.format())
    return summary


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _progress_prefix(i: int, n: int, o: Outcome) -> str:
    return f"[{i}/{n}] {o.run.run_id} {o.run.label}"


# ---------------------------------------------------------------------------- debug: in-process
def _run_inline(outcomes: list[Outcome], ex: dict, out) -> None:
    import torch

    threads = torch.get_num_threads()       # RunTask sets cpus_per_task; restored afterwards
    try:
        _run_inline_loop(outcomes, ex, out)
    finally:
        torch.set_num_threads(threads)


def _run_inline_loop(outcomes: list[Outcome], ex: dict, out) -> None:
    n = len(outcomes)
    for i, o in enumerate(outcomes, 1):
        if o.status == "done":
            out(f"{_progress_prefix(i, n, o)}: done (skipped)")
            continue
        o.resumed = o.before == "ckpt"
        out(f"{_progress_prefix(i, n, o)}: {'resuming' if o.resumed else 'starting'}")
        t0 = time.perf_counter()
        error = ""
        try:
            RunTask(o.run.config, o.run_dir, ex["stop_timeout_s"], ex["cpus_per_task"])()
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001  (one failing run never stops the others)
            error = f"{type(e).__name__}: {e}"
        _finish(o, error)
        note = _done_note(o, time.perf_counter() - t0) if o.status == "completed" else o.note
        out(f"{_progress_prefix(i, n, o)}: {o.status} {note}")


# ---------------------------------------------------------------------------- local: subprocesses
def _run_local(outcomes: list[Outcome], sweep_dir: Path, ex: dict, out) -> None:
    """Runs in subprocesses, ``ex["parallel"]`` at a time: single-rank runs in a pool of worker
    processes (torch is imported once per worker, not once per run); multi-rank runs as
    submitit LocalExecutor jobs (one process per rank, the preemption path as on SLURM)."""
    if ex["tasks_per_node"] * ex["nodes"] == 1:
        import concurrent.futures
        import multiprocessing

        pool = concurrent.futures.ProcessPoolExecutor(
            ex["parallel"], mp_context=multiprocessing.get_context("spawn"))

        def submit(o: Outcome):
            task = RunTask(o.run.config, o.run_dir, ex["stop_timeout_s"], ex["cpus_per_task"])
            return pool.submit(task), "worker process"
        try:
            _run_at_most(outcomes, ex["parallel"], submit, out)
        finally:
            pool.shutdown(cancel_futures=True)
        return

    import submitit

    folder = sweep_dir / ".submitit" / "%j"
    executor = submitit.LocalExecutor(folder=folder, max_num_timeout=ex["max_num_timeout"])
    params = {"timeout_min": ex["timeout_min"], "tasks_per_node": ex["tasks_per_node"],
              "setup": [PYTHONPATH_SETUP, *ex["setup"]]}
    if ex["gpus_per_node"]:
        params["gpus_per_node"] = ex["gpus_per_node"]
    executor.update_parameters(**params)

    def submit_job(o: Outcome):
        job = executor.submit(RunTask(o.run.config, o.run_dir, ex["stop_timeout_s"],
                                      ex["cpus_per_task"]))
        o.job_id = str(job.job_id)
        _record_job(o, "local", folder)
        return job, f"pid {o.job_id}, log {job.paths.stdout.parent}"
    _run_at_most(outcomes, ex["parallel"], submit_job, out)


def _run_at_most(outcomes: list[Outcome], parallel: int, submit: Callable, out) -> None:
    """Start runs with ``submit(outcome) -> (handle, where)`` (a handle has ``done()`` and
    ``exception()``: a submitit job or a future), at most ``parallel`` unfinished at once."""
    n = len(outcomes)
    queue = []
    for i, o in enumerate(outcomes, 1):
        if o.status == "done":
            out(f"{_progress_prefix(i, n, o)}: done (skipped)")
        else:
            queue.append((_progress_prefix(i, n, o), o))
    running: list[tuple] = []               # (handle, prefix, outcome, start time)
    try:
        while queue or running:
            while queue and len(running) < parallel:
                prefix, o = queue.pop(0)
                o.resumed = o.before == "ckpt"
                handle, where = submit(o)
                out(f"{prefix}: {'resuming' if o.resumed else 'starting'} ({where})")
                running.append((handle, prefix, o, time.perf_counter()))
            ended = [r for r in running if r[0].done()]
            if not ended:
                _show_steps(running)
                time.sleep(0.5)
                continue
            _show_steps([])
            for r in ended:
                running.remove(r)
                handle, prefix, o, t0 = r
                exc = handle.exception()
                _finish(o, _short_error(f"{type(exc).__name__}: {exc}") if exc else "")
                note = (_done_note(o, time.perf_counter() - t0) if o.status == "completed"
                        else o.note)
                out(f"{prefix}: {o.status} {note}")
    except KeyboardInterrupt:
        for handle, *_ in running:
            handle.cancel()
        raise


def _show_steps(running: list[tuple]) -> None:
    """On a terminal, one line with the step each running job is at (cleared when empty)."""
    if not sys.stdout.isatty():
        return
    if not running:
        print("\r\033[K", end="", flush=True)
        return
    text = f"{running[0][1]}: step" if len(running) == 1 else "steps:"
    steps = ", ".join(f"{_last_step(o.run_dir)}/{o.run.config['train']['iterations']}"
                      for _, _, o, _ in running)
    print(f"\r\033[K{text} {steps}", end="", flush=True)


def _short_error(text: str, lines: int = 3) -> str:
    kept = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(kept[-lines:])


# ---------------------------------------------------------------------------- slurm
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


def _proc_error(e: Exception) -> str:
    if isinstance(e, subprocess.CalledProcessError):
        return _short_error((e.stderr or b"").decode(errors="replace") or str(e), 1)
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
    import submitit

    return submitit.SlurmJob(folder=folder, job_id=job_id, tasks=tuple(range(tasks)))


def _run_slurm(name: str, outcomes: list[Outcome], sweep_dir: Path, ex: dict, wait: bool,
               wait_max_s: float | None, out) -> None:
    import submitit

    folder = sweep_dir / ".submitit" / "%j"
    ntasks = ex["tasks_per_node"] * ex["nodes"]
    jobs: dict[int, object] = {}
    _find_in_flight(outcomes, folder, ntasks, jobs)
    todo = [o for o in outcomes if o.before in ("new", "ckpt")]
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
            o.job_id, o.status, o.resumed = str(job.job_id), "submitted", o.before == "ckpt"
            jobs[id(o)] = job
            _record_job(o, "slurm", folder)
        first = str(submitted[0].job_id)
        array = first.split("_")[0]
        what = f"job array {array}" if "_" in first else f"job {first}"
        out(f"submitted {len(todo)} run{'s' if len(todo) > 1 else ''} as SLURM {what} "
            f"(logs: {folder.parent}/{array}*)")
    for o in outcomes:
        if o.status in ("submitted", "running"):
            out(f"  {o.line()}")
    if wait and jobs:
        _wait_slurm(outcomes, jobs, ex["poll_s"], wait_max_s, out)


def _find_in_flight(outcomes: list[Outcome], folder: Path, ntasks: int, jobs: dict) -> None:
    """Runs whose recorded SLURM job is still queued or running are left alone (not resubmitted)."""
    candidates = []
    for o in outcomes:
        if o.before == "done":
            continue
        rec = _recorded_job(o.run_dir)
        if rec and rec.get("cluster") == "slurm" and rec.get("job_id"):
            job = _slurm_job(Path(rec.get("folder") or folder), str(rec["job_id"]), ntasks)
            candidates.append((o, job))
    if not candidates:
        return
    candidates[0][1].watcher.update()
    for o, job in candidates:
        state = job.watcher.get_state(job.job_id, mode="cache").upper()
        if state.split()[0] in ACTIVE_STATES:
            o.before, o.status, o.job_id = "in_flight", "running", job.job_id
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
                _finish(o, f"SLURM state unknown for {UNKNOWN_GRACE_S:.0f} s (is accounting up?)")
            elif first in ACTIVE_STATES:
                unknown_since.pop(id(o), None)
                continue
            else:
                _finish(o, "" if first == "COMPLETED" else f"SLURM job {state}"
                        + _job_error_tail(job))
            pending.remove(o)
            out(f"  {o.line()}")
        if pending and wait_max_s is not None and time.monotonic() - t0 > wait_max_s:
            for o in pending:
                o.status, o.note = "running", f"still running after {wait_max_s:.0f} s of waiting"
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
    tail = _short_error(err, 2)
    return f" ({tail})" if tail else ""
