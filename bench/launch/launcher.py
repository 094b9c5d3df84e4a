"""``launch``: plan from what is on disk (DONE: skip; checkpoint: resume; a SLURM job of an
earlier launch still queued or running: leave it alone), run or submit the rest, summarise."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from bench.launch.local import run_inline, run_local
from bench.launch.outcomes import Outcome, Summary, plan
from bench.launch.slurm import run_slurm, slurm_unreachable
from bench.rundir import runfiles, runstate
from bench.rundir.runstate import RunState
from bench.sweep.spec import RunConfig, SweepError

def launch(spec: dict, runs: list[RunConfig], *, cluster: str, sweep_dir: Path, ex: dict,
           wait: bool = True, wait_max_s: float | None = None, retry_failed: bool = False,
           out: Callable[[str], None] = print) -> Summary:
    """Run or submit every run of ``runs`` that is not done (nor diverged, unless
    ``retry_failed``); returns the summary (also printed)."""
    sweep_dir = Path(sweep_dir).absolute()     # jobs may run from another working directory
    if cluster == "slurm":
        problem = slurm_unreachable()
        if problem:
            raise SweepError(f"--cluster slurm: {problem}. Nothing was submitted. Start the "
                             f"local SLURM with `bash scripts/slurm_local.sh start`, or use "
                             f"--cluster local")
    outcomes = [Outcome(r, sweep_dir / r.run_id, runstate.state(sweep_dir / r.run_id))
                for r in runs]
    ranks = ex["tasks_per_node"] * ex["nodes"]
    if cluster == "debug" and (ranks > 1 or ex["parallel"] > 1):
        raise SweepError("--cluster debug runs one run at a time in this process: it cannot run "
                         "tasks_per_node > 1 or parallel > 1; use --cluster local or slurm")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    runfiles.write_sweep(sweep_dir, spec)
    for o in outcomes:
        plan(o, retry_failed)
    if cluster == "debug" or (cluster == "local" and ranks == 1 and ex["parallel"] == 1):
        # One process per run buys nothing here but a torch import per run (seconds each).
        run_inline(outcomes, ex, out)
    elif cluster == "local":
        threads = ex["parallel"] * ranks * ex["cpus_per_task"]
        if threads > (os.cpu_count() or 1):
            out(f"warning: parallel x tasks x cpus_per_task = {threads} threads on "
                f"{os.cpu_count()} CPUs: the runs will slow each other down")
        run_local(outcomes, sweep_dir, ex, out)
    else:
        run_slurm(spec["name"], outcomes, sweep_dir, ex, wait, wait_max_s, out)
    summary = Summary(outcomes)
    for o in outcomes:
        if o.status == RunState.FAILED:
            out(f"FAILED {o.line()}")
    out(summary.format())
    return summary




