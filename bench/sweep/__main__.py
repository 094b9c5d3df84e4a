"""``python -m bench.sweep SWEEP.yaml``: plan (--dry-run) or launch a sweep's runs.

    python -m bench.sweep SWEEP.yaml [--cluster local|slurm|debug] [--dry-run] [--wait]
                          [--results-dir DIR] [--only PATTERN] [--executor KEY=VALUE ...]

The sweep file format is documented in bench.sweep.spec; launching in bench.launch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from bench import config as C
from bench import rundir
from bench.launch.launcher import launch
from bench.launch.slurm import slurm_parameters
from bench.sweep.spec import (CLUSTERS, RunConfig, SweepError, executor_params, expand,
                              grid_blocks, load_sweep, missing_requirements, select)


def axis_columns(runs: list[RunConfig]) -> list[str]:
    cols: list[str] = []
    for r in runs:
        cols += [k for k, _ in r.axes if k not in cols]
    return cols


def grid_shape(spec: Mapping) -> str:
    """``3 diffusion.schedule x 6 strategy x 1 seed`` (one product per grid block, joined by +)."""
    return " + ".join(" x ".join(f"{len(values)} {path}" for path, values in block)
                      for block in grid_blocks(spec))


def format_plan(spec: Mapping, runs: list[RunConfig], sweep_dir: Path, cluster: str, ex: dict,
                missing: list[str]) -> str:
    name = spec["name"]
    cols = axis_columns(runs)
    rows = [["run_id", "state", "condition", *cols]]
    for r in runs:
        axes = dict(r.axes)
        rows.append([r.run_id, rundir.state(sweep_dir / r.run_id), r.condition,
                     *(axes.get(c, "-") for c in cols)])
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = [f"sweep {name}: {len(runs)} runs (grid: {grid_shape(spec)}"
             f"{', after cells and --only' if len(runs) != _grid_size(spec) else ''})"
             f" -> {sweep_dir}/"]
    lines += ["  " + "  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip()
              for row in rows]
    lines.append(f"executor ({cluster}):")
    lines += [f"  {k}: {json.dumps(v)}" for k, v in ex.items()]
    if cluster == "slurm":
        lines.append("submitit parameters:")
        lines += [f"  {k}: {json.dumps(v)}" for k, v in slurm_parameters(name, ex).items()]
    for m in missing:
        lines.append(f"requires: MISSING {m}")
    return "\n".join(lines)


def _grid_size(spec: Mapping) -> int:
    total = 0
    for block in grid_blocks(spec):
        n = 1
        for _, values in block:
            n *= len(values)
        total += n
    return total


def parse_executor_overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise SweepError(f"--executor expects KEY=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        out[key.strip()] = C.parse_set([f"v={raw}"])["v"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.sweep", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep", help="sweep YAML file")
    ap.add_argument("--cluster", choices=CLUSTERS, default="local",
                    help="slurm: submitit job arrays; local: one run after another on this "
                         "machine (in this process, or one subprocess per rank when "
                         "tasks_per_node > 1); debug: in this process (default: local)")
    ap.add_argument("--dry-run", action="store_true",
                    help="print the runs and the executor parameters, then exit")
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
    try:
        spec = load_sweep(args.sweep)
        runs = select(expand(spec), args.only)
        ex = executor_params(spec, parse_executor_overrides(args.executor))
        sweep_dir = Path(args.results_dir) / spec["name"]
        missing = missing_requirements(spec)
        if args.dry_run:
            print(format_plan(spec, runs, sweep_dir, args.cluster, ex, missing))
            return 0
        if missing:
            raise SweepError(f"sweep {spec['name']!r} cannot run here:\n  "
                             + "\n  ".join(missing))
        summary = launch(spec, runs, cluster=args.cluster, sweep_dir=sweep_dir, ex=ex,
                         wait=args.wait or args.cluster != "slurm",
                         retry_failed=args.retry_failed,
                         wait_max_s=None if args.wait_max_min is None
                         else 60.0 * args.wait_max_min)
    except C.ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:             # e.g. `--dry-run | head`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (the interpreter's exit flush)
        return 0
    return summary.exit_code


if __name__ == "__main__":
    sys.exit(main())
