"""How each run of a launch ended: ``Outcome`` per run, ``Summary`` of all, decided from disk
(DONE is the truth). The words are the ``LAUNCH`` view of the run-state vocabulary
(``bench.rundir.runstate.RunState``): pending, done (skipped), completed, submitted, running,
failed; the state before the launch is a ``DISK`` word or in_flight."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.rundir import runfiles, runpaths, runstate, runtables
from bench.rundir.runstate import RunState
from bench.sweep.spec import RunConfig


@dataclass
class Outcome:
    run: RunConfig
    run_dir: Path
    before: RunState                # a DISK state, or IN_FLIGHT  (at launch)
    status: RunState = RunState.PENDING     # then done | completed | submitted | running | failed
    job_id: str | None = None
    note: str = ""
    resumed: bool = False
    launched: bool = False          # run or submitted by this launch

    def line(self) -> str:
        job = f" job {self.job_id}" if self.job_id else ""
        note = f": {self.note}" if self.note else ""
        return f"{self.run.run_id} {self.run.condition} [{self.run.label}]{job} {self.status}{note}"


@dataclass
class Summary:
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, status: RunState | str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def submitted(self) -> int:
        return sum(o.launched for o in self.outcomes)

    @property
    def resumed(self) -> int:
        return sum(o.resumed for o in self.outcomes)

    @property
    def exit_code(self) -> int:
        return 1 if self.count(RunState.FAILED) else 0

    def format(self) -> str:
        n = self.count
        return (f"summary: {len(self.outcomes)} runs: done {n(RunState.DONE)}, "
                f"submitted {self.submitted}, resumed {self.resumed}, "
                f"completed {n(RunState.COMPLETED)}, running "
                f"{n(RunState.RUNNING) + n(RunState.SUBMITTED)}, failed {n(RunState.FAILED)}")


def plan(o: Outcome, retry_failed: bool = False) -> None:
    """What a launch does with the run, from its state on disk: a diverged run is not trained
    again unless ``retry_failed`` (another failure is: it may have been transient)."""
    failed = runstate.failure_record(o.run_dir) if o.before == RunState.FAILED else {}
    if o.before == RunState.DONE:
        o.status = RunState.DONE
    elif failed.get("kind") == "diverged" and not retry_failed:
        o.status = RunState.FAILED
        o.note = f"{failed['reason']} (not retried: rerun with --retry-failed)"
    elif o.before == RunState.RUNNING:
        o.status = RunState.RUNNING
        o.note = (f"being trained by {runstate.lock_holder(o.run_dir) or 'another process'}; "
                  f"not started again")
    else:
        o.resumed = runstate.has_checkpoint(o.run_dir)


def skipped(o: Outcome) -> bool:
    """Whether ``plan`` left the run alone (only a pending run is run or submitted)."""
    return o.status != RunState.PENDING


def skip_text(o: Outcome) -> str:
    return "done (skipped)" if o.status == RunState.DONE else f"{o.status} (skipped): {o.note}"


def finish(o: Outcome, error: str = "") -> None:
    """Decide from disk (DONE is the truth) how a finished job or call ended."""
    if runstate.is_done(o.run_dir):
        o.status, o.note = RunState.COMPLETED, ""
        return
    o.status = RunState.FAILED
    o.note = error or runstate.failure(o.run_dir) or f"ended without {runpaths.DONE}"
    step = runtables.last_step(o.run_dir)
    if runstate.diverged(o.run_dir):
        o.note += " (a rerun skips it; --retry-failed trains it again)"
    elif step:
        o.note += f" (at step {step}; rerun to resume from the checkpoint)"


def done_note(o: Outcome, seconds: float) -> str:
    row = runfiles.read_done(o.run_dir)
    loss = f", loss {row['loss']:.4g}" if isinstance(row.get("loss"), (int, float)) else ""
    step = f", step {row['step']}" if "step" in row else ""
    return f"in {seconds:.1f} s{step}{loss}"


def record_job(o: Outcome, cluster: str, folder: Path) -> None:
    runfiles.record_job(o.run_dir, {"cluster": cluster, "job_id": o.job_id,
                                  "resume": o.resumed,
                                  "folder": str(folder)})


def progress_prefix(i: int, n: int, o: Outcome) -> str:
    return f"[{i}/{n}] {o.run.run_id} {o.run.condition} [{o.run.label}]"


def short_error(text: str, lines: int = 3) -> str:
    kept = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(kept[-lines:])


