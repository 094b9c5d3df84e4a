"""The run state: the one vocabulary of a run's states (``RunState``) and the views that show
fewer of its words, the state of a run directory from what is on disk (``state``), the FAILED
record of the last attempt, and the run lock (``.lock``: held while a process trains the run).

The vocabulary — every word any command prints or stores for a run's state:

=============  ==========================================================================
word           meaning
=============  ==========================================================================
new            nothing trained yet: config.yaml only, or no run directory at all
queued         a SLURM job of the run waits in the queue
running        a live process trains it (it holds .lock), or its SLURM job runs
checkpointed   stopped part-way: progress on disk (a checkpoint; ``--status`` also counts
               log rows), no DONE, no live process; a launch resumes it
partial        progress on disk and no DONE, read without asking whether a process still
               trains it (running or checkpointed: a read-only reader's view)
done           DONE exists: the run finished (DONE is the truth)
failed         FAILED records why the last attempt failed (diverged or an error); for
               ``--status`` also a SLURM job that ended without DONE
missing        expected by the sweep's sweep.yaml, but there is no run directory
duplicate      the same run (one run identity) as another run dir (not counted)
pending        (a launch) to be run or submitted by this launch
in_flight      (a launch) a SLURM job of an earlier launch is queued or running
submitted      (a launch) submitted to SLURM by this launch, not waited for
completed      (a launch) finished by this launch (DONE written during it)
=============  ==========================================================================

The views (each shows fewer words, in its own order; two spell some differently, kept as they
print):

* ``state(run_dir)`` and the sweep plan (``--dry-run``): ``DISK`` — new, running,
  checkpointed, done, failed.
* a launch (``bench.launch``): ``LAUNCH`` for each run's outcome — pending, done (skipped),
  completed, submitted, running, failed; the state before it is a ``DISK`` word or in_flight.
* ``python -m bench.sweep --status``: ``STATUS_WORDS`` — done, running, queued, stopped
  (checkpointed), failed, not started (new).
* the report (``bench.analysis``, ``bench.report``): ``REPORT_WORDS`` — done, partial, failed,
  not_started (new), missing, duplicate.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from enum import Enum
from pathlib import Path

from bench.core.io import LockBusy, atomic_write_text, file_lock
from bench.rundir.runpaths import FAILED, LOCK, ckpt_path, done_path


class RunState(str, Enum):
    """A run's state; the words and their meanings are in this module's docstring. A member is
    a ``str`` equal to its word (``RunState.DONE == "done"``) and prints as it (``StrEnum``
    before Python 3.11)."""

    __str__ = str.__str__
    __format__ = str.__format__

    NEW = "new"
    QUEUED = "queued"
    RUNNING = "running"
    CHECKPOINTED = "checkpointed"
    PARTIAL = "partial"
    DONE = "done"
    FAILED = "failed"
    MISSING = "missing"
    DUPLICATE = "duplicate"
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    SUBMITTED = "submitted"
    COMPLETED = "completed"


# ---------------------------------------------------------------------------- the views
DISK = (RunState.NEW, RunState.RUNNING, RunState.CHECKPOINTED, RunState.DONE, RunState.FAILED)
LAUNCH = (RunState.PENDING, RunState.DONE, RunState.COMPLETED, RunState.SUBMITTED,
          RunState.RUNNING, RunState.FAILED)
STATUS_WORDS = {RunState.DONE: "done", RunState.RUNNING: "running", RunState.QUEUED: "queued",
                RunState.CHECKPOINTED: "stopped", RunState.FAILED: "failed",
                RunState.NEW: "not started"}
REPORT_WORDS = {RunState.DONE: "done", RunState.PARTIAL: "partial", RunState.FAILED: "failed",
                RunState.NEW: "not_started", RunState.MISSING: "missing",
                RunState.DUPLICATE: "duplicate"}


# ---------------------------------------------------------------------------- the state on disk
def is_done(run_dir: Path) -> bool:
    return done_path(run_dir).exists()


def has_checkpoint(run_dir: Path) -> bool:
    return ckpt_path(run_dir).exists()


def state(run_dir: Path) -> RunState:
    """A ``DISK`` word, from what is on disk: DONE wins; a live lock holder means running; a
    FAILED note the last attempt's failure; else checkpointed if there is a checkpoint, or new."""
    run_dir = Path(run_dir)
    if is_done(run_dir):
        return RunState.DONE
    if lock_holder(run_dir):
        return RunState.RUNNING
    if (run_dir / FAILED).exists():
        return RunState.FAILED
    return RunState.CHECKPOINTED if has_checkpoint(run_dir) else RunState.NEW


# ---------------------------------------------------------------------------- FAILED
def failure_record(run_dir: Path) -> dict:
    """FAILED as {"reason", "kind" ("diverged" | "error"), "step"} ({} if the run has none)."""
    path = Path(run_dir) / FAILED
    if not path.exists():
        return {}
    try:
        rec = json.loads(path.read_text())
    except ValueError:
        rec = None
    if not isinstance(rec, dict):                 # hand-written or truncated: keep its text
        rec = {"reason": path.read_text(errors="replace").strip() or "unknown", "kind": "error"}
    return rec


def failure(run_dir: Path) -> str:
    """The reason the last attempt failed ('' if none recorded)."""
    return str(failure_record(run_dir).get("reason", ""))


def diverged(run_dir: Path) -> bool:
    return failure_record(run_dir).get("kind") == "diverged"


def mark_failed(run_dir: Path, reason: str, kind: str = "error", step: int | None = None) -> None:
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(run_dir) / FAILED, json.dumps(
        {"reason": reason.strip(), "kind": kind, "step": step}, indent=1) + "\n")


def clear_failed(run_dir: Path) -> None:
    (Path(run_dir) / FAILED).unlink(missing_ok=True)


# ---------------------------------------------------------------------------- the run lock
class RunBusy(RuntimeError):
    """Another process is training this run directory."""


LOCK_TRIES = 5                  # x 0.2 s: outlasts another process's state probe
RELEASED = "; released"         # appended to the holder when a run lets go of its lock


def lock_holder(run_dir: Path) -> str:
    """Who holds the run lock ('' when nobody: no training process is alive). The probe takes
    the lock for an instant; ``run_lock`` retries for a second, so a start is never refused
    because of it."""
    path = Path(run_dir) / LOCK
    if not path.exists():
        return ""
    try:
        with file_lock(path, blocking=False):
            return ""
    except LockBusy as e:
        return str(e)


@contextmanager
def run_lock(run_dir: Path, take: bool = True) -> Iterator[None]:
    """Exclusive while training ``run_dir`` (released by the OS if the process dies): two
    launches never train one run at once. Raises ``RunBusy`` naming the holder."""
    if not take:
        yield
        return
    job = os.environ.get("SLURM_JOB_ID")
    holder = (f"pid {os.getpid()} on {socket.gethostname()}"
              + (f" (SLURM job {job})" if job else "")
              + f" since {time.strftime('%Y-%m-%d %H:%M:%S')}")
    path = Path(run_dir) / LOCK
    before = path.read_text(errors="replace").strip() if path.exists() else ""
    with ExitStack() as stack:
        for attempt in range(LOCK_TRIES):
            try:
                f = stack.enter_context(file_lock(path, blocking=False, holder=holder))
                break
            except LockBusy as e:
                if attempt == LOCK_TRIES - 1:
                    raise RunBusy(f"{run_dir} is being trained by {e}; not starting it "
                                  f"twice") from e
                time.sleep(0.2)
        if f is None:
            print(f"[bench.launch] warning: cannot lock {run_dir} (no flock on this "
                  f"filesystem); training unlocked", flush=True)
        elif before and RELEASED not in before:
            print(f"[bench.launch] warning: {run_dir}: taking over the lock of {before}, which "
                  f"ended without releasing it (the process died)", flush=True)
        try:
            yield
        finally:
            if f is not None:
                f.write(RELEASED)
                f.flush()
