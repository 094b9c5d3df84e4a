"""``python -m bench.sweep SWEEP.yaml``: plan (--dry-run), launch, or follow (--status) a sweep.

    python -m bench.sweep SWEEP.yaml [--cluster local|slurm|debug] [--dry-run] [--wait]
                          [--results-dir DIR] [--only PATTERN] [--executor KEY=VALUE ...]
    python -m bench.sweep SWEEP.yaml --dry-run [--ms-per-it MS | --cost-table FILE]
    python -m bench.sweep SWEEP.yaml --status [--results-dir DIR] [--only PATTERN]

The sweep file format is documented in bench.sweep.spec; launching in bench.launch. The plan
(--dry-run) lists the runs, their cost (training iterations and forward-equivalents, evaluation
passes; GPU-hours from --ms-per-it or a ``python -m bench.perf --out`` cost table) and the
executor of the cluster it is for. --status reads the results (read-only, also while the sweep
runs) and prints each run's state, step, last evaluation, SLURM state and ETA.
"""

from __future__ import annotations

from bench.core.command import guard_startup

guard_startup(__name__ == "__main__")            # Ctrl-C during the imports below: one line

import argparse  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from bench.config.fields import ConfigError  # noqa: E402
from bench.config.files import find_file, parse_set  # noqa: E402
from bench.core.command import exit_status, run_main, stopped_word  # noqa: E402
from bench.launch.launcher import launch  # noqa: E402
from bench.rundir.runpaths import check_folder  # noqa: E402
from bench.sweep.check import expand  # noqa: E402
from bench.sweep.cost import format_cost  # noqa: E402
from bench.sweep.inputs import missing_inputs, plan_warnings  # noqa: E402
from bench.sweep.plan import format_plan, format_summary  # noqa: E402
from bench.sweep.spec import (CLUSTERS, SweepError, cluster_choice, executor_params,  # noqa: E402
                              load_sweep, select)
from bench.sweep.status import format_status  # noqa: E402
from bench.tools import cost_table  # noqa: E402


def parse_executor_overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise SweepError(f"--executor expects KEY=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        out[key.strip()] = parse_set([f"v={raw}"])["v"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.sweep", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep", help="sweep YAML file")
    ap.add_argument("--cluster", choices=CLUSTERS, default=None,
                    help="slurm: submitit job arrays; local: one run after another on this "
                         "machine (in this process, or one subprocess per rank when "
                         "tasks_per_node > 1); debug: in this process (default: the sweep "
                         "file's 'cluster:', else local)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true",
                      help="print the runs, their cost and the executor parameters, then exit")
    mode.add_argument("--status", action="store_true",
                      help="print each run's state, step, last evaluation, SLURM state and ETA "
                           "from the results (read-only: also while the sweep runs), then exit")
    cost = ap.add_mutually_exclusive_group()
    cost.add_argument("--ms-per-it", type=float, metavar="MS",
                      help="with --dry-run: estimate GPU-hours at MS milliseconds per training "
                           "iteration")
    cost.add_argument("--cost-table", metavar="FILE",
                      help="with --dry-run: estimate GPU-hours from the ms per iteration that "
                           "`python -m bench.perf ... --out FILE` measured")
    ap.add_argument("--results-dir", default="results", help="runs go to DIR/<sweep name>/<run_id>")
    ap.add_argument("--only", metavar="PATTERN",
                    help="only runs whose id or 'axis=value' label matches this glob")
    ap.add_argument("--executor", action="append", default=[], metavar="KEY=VALUE",
                    help="override an executor parameter, e.g. --executor partition=gpu")
    ap.add_argument("--wait", action="store_true",
                    help="slurm: wait for the jobs and report how each ended "
                         "(local and debug always wait)")
    ap.add_argument("--retry-failed", action="store_true",
                    help="train diverged runs again (they are skipped otherwise; runs that "
                         "failed for another reason are always retried)")
    ap.add_argument("--wait-max-min", type=float, default=None,
                    help="with --wait: stop waiting after this many minutes (jobs keep running)")
    args = ap.parse_args(argv)
    if (args.ms_per_it is not None or args.cost_table) and not args.dry_run:
        ap.error("--ms-per-it and --cost-table go with --dry-run")
    if args.ms_per_it is not None and not (math.isfinite(args.ms_per_it) and args.ms_per_it > 0):
        ap.error(f"--ms-per-it must be a positive number of milliseconds, got {args.ms_per_it}")
    launched = None                 # the cluster, once the launch may have started runs
    try:
        try:                        # a path, or a name in the suite's sweeps/ (find_file)
            args.sweep = str(find_file(args.sweep, ("sweeps",)))
        except ConfigError as e:
            raise SweepError(str(e).replace("config file", "sweep file")) from None
        spec = load_sweep(args.sweep)
        runs = select(expand(spec), args.only)
        ex = executor_params(spec, parse_executor_overrides(args.executor))
        results_dir = Path(args.results_dir)
        sweep_dir = results_dir / spec["name"]
        check_folder(sweep_dir, "--results-dir")
        if args.status:
            print(format_status(spec, runs, sweep_dir, results_dir))
            return 0
        cluster, source = cluster_choice(spec, args.cluster)
        missing = missing_inputs(spec, runs)
        if args.dry_run:
            table = None
            if args.cost_table:
                table = (args.cost_table, cost_table.read_cost_table(args.cost_table))
            cost, total = format_cost(runs, ex, args.ms_per_it, table, cluster)
            summary = format_summary(runs, sweep_dir, total, missing, plan_warnings(cluster, ex))
            print(format_plan(spec, runs, sweep_dir, cluster, ex, source, cost, summary))
            return 1 if missing else 0
        if missing:
            raise SweepError(f"sweep {spec['name']!r} cannot run here:\n  "
                             + "\n  ".join(missing))
        launched = cluster
        summary = launch(spec, runs, cluster=cluster, sweep_dir=sweep_dir, ex=ex,
                         wait=args.wait or cluster != "slurm",
                         retry_failed=args.retry_failed,
                         wait_max_s=None if args.wait_max_min is None
                         else 60.0 * args.wait_max_min)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:     # Ctrl-C, or SIGTERM (Terminated: bench.core.command)
        # A local launch has stopped its runs (each checkpointed at the end of its step) and
        # waited for its workers (bench.launch.local); SLURM jobs go on without this process.
        what = {None: "nothing was launched",
                "slurm": "the submitted jobs keep running"}.get(
            launched, "the running runs checkpointed and stopped")
        print(f"{stopped_word(e)}: {what}; rerun the same command to resume", file=sys.stderr)
        return exit_status(e)
    except BrokenPipeError:             # e.g. `--dry-run | head`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (the interpreter's exit flush)
        return 0
    return summary.exit_code


if __name__ == "__main__":
    sys.exit(run_main(main))
