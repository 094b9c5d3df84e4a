"""Runs on this machine: in this process one after another (``--cluster debug``, or local with
parallel 1), or in subprocesses ``parallel`` at a time (a worker pool for single-rank runs,
submitit's LocalExecutor for multi-rank ones)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import submitit
import torch

from bench.launch.outcomes import (Outcome, done_note, finish, progress_prefix, record_job,
                                   short_error, skip_text, skipped)
from bench.launch.slurm import PYTHONPATH_SETUP
from bench.launch.task import RunTask
from bench.rundir import runpaths, runtables
from bench.rundir.runstate import RunState

STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}
PR_SET_PDEATHSIG = 1                    # prctl(2): a signal for this process when its parent dies
_worker = {"task": False, "stop": False, "launcher": 0}    # a pool worker's state


def run_inline(outcomes: list[Outcome], ex: dict, out) -> None:
    """debug, or local with one rank and parallel 1: one run after another in this process."""
    threads = torch.get_num_threads()       # RunTask sets cpus_per_task; restored afterwards
    try:
        _run_inline_loop(outcomes, ex, out)
    finally:
        torch.set_num_threads(threads)


def _run_inline_loop(outcomes: list[Outcome], ex: dict, out) -> None:
    n = len(outcomes)
    for i, o in enumerate(outcomes, 1):
        if skipped(o):
            out(f"{progress_prefix(i, n, o)}: {skip_text(o)}")
            continue
        o.launched = True
        out(f"{progress_prefix(i, n, o)}: {'resuming' if o.resumed else 'starting'}")
        t0 = time.perf_counter()
        error = ""
        try:
            RunTask(o.run.config, o.run_dir, ex["stop_timeout_s"], ex["cpus_per_task"],
                    job_log=False)()
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001  (one failing run never stops the others)
            error = f"{type(e).__name__}: {e}"
        finish(o, error)
        note = (done_note(o, time.perf_counter() - t0) if o.status == RunState.COMPLETED
                else o.note)
        out(f"{progress_prefix(i, n, o)}: {o.status} {note}")


def run_local(outcomes: list[Outcome], sweep_dir: Path, ex: dict, out) -> None:
    """Runs in subprocesses, ``ex["parallel"]`` at a time: single-rank runs in a pool of worker
    processes (torch is imported once per worker, not once per run); multi-rank runs as
    submitit LocalExecutor jobs (one process per rank, the preemption path as on SLURM)."""
    if ex["tasks_per_node"] * ex["nodes"] == 1:
        pool = concurrent.futures.ProcessPoolExecutor(
            ex["parallel"], mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_signals, initargs=(os.getpid(),))

        def submit(o: Outcome):
            task = RunTask(o.run.config, o.run_dir, ex["stop_timeout_s"], ex["cpus_per_task"],
                           job_log=False)
            # A worker is born with Ctrl-C and SIGTERM blocked (the mask survives exec) and
            # unblocks them once its handlers are in place: a signal while it starts up is
            # handled, not a traceback; here they wait the few ms of the spawn.
            with _blocked(STOP_SIGNALS):
                return pool.submit(_work, task), "worker process"
        try:
            _run_at_most(outcomes, ex["parallel"], submit, out)
        except KeyboardInterrupt:           # Ctrl-C, or SIGTERM (bench.core.command)
            _stop_workers(pool)
            raise
        finally:
            pool.shutdown(cancel_futures=True)
        return

    folder = sweep_dir / runpaths.SUBMITIT_DIR / "%j"
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
        record_job(o, "local", folder)
        return job, f"pid {o.job_id}, log {job.paths.stdout.parent}"
    _run_at_most(outcomes, ex["parallel"], submit_job, out)


@contextlib.contextmanager
def _blocked(signals: set) -> Iterator[None]:
    """Hold ``signals`` pending in this thread (delivered when the block ends)."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _stop_workers(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    """Ask every worker to stop (SIGTERM: its run checkpoints at the end of the current step)
    and wait until all have exited — a second Ctrl-C or SIGTERM meanwhile does not cut the wait
    short, so no worker outlives the launcher."""
    for proc in list(getattr(pool, "_processes", {}).values()):
        with contextlib.suppress(OSError):
            os.kill(proc.pid, signal.SIGTERM)
    while True:
        try:
            pool.shutdown(wait=True, cancel_futures=True)
            return
        except KeyboardInterrupt:
            continue


def _worker_signals(parent: int) -> None:
    """In a pool worker: Ctrl-C is the launcher's to handle (it forwards it as SIGTERM); SIGTERM
    stops the task gracefully; the worker also gets SIGTERM if the launcher dies without
    forwarding one (killed outright: Linux's parent-death signal), so it never trains on as an
    orphan. The launcher spawned it with both signals blocked: unblocked once handled."""
    _worker["launcher"] = parent
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop_task)
    with contextlib.suppress(OSError, AttributeError):        # not Linux: no parent-death signal
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:                                # the launcher is gone already
        os._exit(0)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def _work(task: RunTask) -> dict:
    """A task in a pool worker. A worker told to stop (SIGTERM) runs no task from then on, and
    ends once its run has stopped if the launcher is gone (nothing would ever end it)."""
    _worker["task"] = True
    try:
        if _worker["stop"]:                 # told to stop before the task began
            raise KeyboardInterrupt
        return task()
    finally:
        _worker["task"] = False
        _exit_if_orphaned()


def _stop_task(signum, frame) -> None:
    """SIGTERM in a worker: the running task (RunTask) asks its trainer to checkpoint at the end
    of its step and stop; a repeated one changes nothing (the stop is under way)."""
    first, _worker["stop"] = not _worker["stop"], True
    if not _worker["task"]:
        _exit_if_orphaned()
    elif first:
        raise KeyboardInterrupt


def _exit_if_orphaned() -> None:
    """A stopped worker whose launcher died (killed outright: the parent-death signal) ends
    here: it would wait for a next task forever."""
    if _worker["stop"] and os.getppid() != _worker["launcher"]:
        os._exit(143)


def _run_at_most(outcomes: list[Outcome], parallel: int, submit: Callable, out) -> None:
    """Start runs with ``submit(outcome) -> (handle, where)`` (a handle has ``done()`` and
    ``exception()``: a submitit job or a future), at most ``parallel`` unfinished at once."""
    n = len(outcomes)
    queue = []
    for i, o in enumerate(outcomes, 1):
        if skipped(o):
            out(f"{progress_prefix(i, n, o)}: {skip_text(o)}")
        else:
            queue.append((progress_prefix(i, n, o), o))
    running: list[tuple] = []               # (handle, prefix, outcome, start time)
    try:
        while queue or running:
            while queue and len(running) < parallel:
                prefix, o = queue.pop(0)
                o.launched = True
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
                finish(o, short_error(f"{type(exc).__name__}: {exc}") if exc else "")
                note = (done_note(o, time.perf_counter() - t0) if o.status == RunState.COMPLETED
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
    steps = ", ".join(f"{runtables.last_step(o.run_dir)}/{o.run.config['train']['iterations']}"
                      for _, _, o, _ in running)
    print(f"\r\033[K{text} {steps}", end="", flush=True)




