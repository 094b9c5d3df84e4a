"""Runs on this machine: in this process one after another (``--cluster debug``, or local with
parallel 1), or in subprocesses ``parallel`` at a time (a worker pool for single-rank runs,
submitit's LocalExecutor for multi-rank ones)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import submitit
import torch

from bench.launch.outcomes import (Outcome, done_note, finish, progress_prefix, record_job,
                                   short_error, skip_text, skipped)
from bench.launch.slurm import PYTHONPATH_SETUP
from bench.launch.task import RunTask
from bench.rundir import runpaths, runtables
from bench.rundir.runstate import RunState


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
            initializer=_worker_signals)

        def submit(o: Outcome):
            task = RunTask(o.run.config, o.run_dir, ex["stop_timeout_s"], ex["cpus_per_task"],
                           job_log=False)
            return pool.submit(task), "worker process"
        try:
            _run_at_most(outcomes, ex["parallel"], submit, out)
        except KeyboardInterrupt:
            # Ctrl-C reaches only this process (the workers ignore SIGINT): ask every worker to
            # checkpoint at the end of its step (SIGTERM), wait for them, then stop.
            for proc in list(getattr(pool, "_processes", {}).values()):
                with contextlib.suppress(OSError):
                    os.kill(proc.pid, signal.SIGTERM)
            pool.shutdown(wait=True, cancel_futures=True)
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


def _worker_signals() -> None:
    """In a pool worker: Ctrl-C is the parent's to handle; SIGTERM stops the task gracefully."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _raise_interrupt)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


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




