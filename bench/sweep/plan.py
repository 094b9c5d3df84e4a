"""The sweep plan (``python -m bench.sweep SWEEP --dry-run``): a summary first (runs, compute,
device-hours of training and evaluation, every missing input and warning: ``format_summary``),
then one line per run with its state on disk (``bench.rundir.runstate.state``), condition and
grid coordinates, the cost lines (``bench.sweep.cost``), the executor of the cluster it is for
(and its submitit parameters on SLURM).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from bench.launch.slurm import slurm_parameters
from bench.rundir import runstate
from bench.sweep.spec import RunConfig, grid_blocks

SLURM_KEYS = ("partition", "account", "qos", "constraint", "mem_gb", "array_parallelism",
              "additional")


def axis_columns(runs: list[RunConfig]) -> list[str]:
    cols: list[str] = []
    for r in runs:
        cols += [k for k, _ in r.axes if k not in cols]
    return cols


def grid_shape(spec: Mapping) -> str:
    """``3 diffusion.schedule x 6 strategy x 1 seed`` (one product per grid block, joined by +)."""
    return " + ".join(" x ".join(f"{len(values)} {path}" for path, values in block)
                      for block in grid_blocks(spec))


def format_summary(runs: list[RunConfig], sweep_dir: Path, total: dict, missing: list[str],
                   warnings: list[str]) -> list[str]:
    """The plan's first lines: runs, compute, hours, every missing input and warning."""
    states = Counter(runstate.state(sweep_dir / r.run_id) for r in runs)
    lines = ["summary:", f"  runs: {len(runs)} ({', '.join(f'{n} {k}' for k, n in states.items())})",
             (f"  compute: training {total['fe_train'] + total['fe_strategy']:.3g} "
              f"forward-equivalents (the strategies' own {total['fe_strategy']:.3g}), "
              f"evaluation {total['eval_fwd']:.3g} forwards")]
    h, unit = total["hours"], total["unit"]
    if h is None:
        lines.append(f"  {unit}-hours: not estimated (give --ms-per-it or --cost-table)")
    else:
        lines.append(f"  {unit}-hours: {(h['train'] + h['eval']) * h['devices']:.4g} = training "
                     f"{h['train'] * h['devices']:.4g} + evaluation {h['eval'] * h['devices']:.4g}"
                     f"{' (runs without a cost-table row not included)' if h['partial'] else ''}")
    lines += [f"  MISSING: {m}" for m in missing] + [f"  warning: {w}" for w in warnings]
    lines.append(f"  -> cannot run here: {len(missing)} missing input(s); the plan exits 1"
                 if missing else "  -> ready to run")
    return lines


def format_plan(spec: Mapping, runs: list[RunConfig], sweep_dir: Path, cluster: str, ex: dict,
                source: str = "", cost: list[str] | None = None,
                summary: list[str] | None = None) -> str:
    name = spec["name"]
    cols = axis_columns(runs)
    rows = [["run_id", "state", "condition", *cols]]
    for r in runs:
        axes = dict(r.axes)
        rows.append([r.run_id, runstate.state(sweep_dir / r.run_id), r.condition,
                     *(axes.get(c, "-") for c in cols)])
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = [f"sweep {name}: {len(runs)} runs (grid: {grid_shape(spec)}"
             f"{', after cells and --only' if len(runs) != _grid_size(spec) else ''})"
             f" -> {sweep_dir}/"]
    lines += summary or []
    lines += ["  " + "  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip()
              for row in rows]
    lines += cost or []
    lines.append(f"executor for cluster {cluster}{' (' + source + ')' if source else ''}:")
    lines += [f"  {k}: {json.dumps(v)}" for k, v in ex.items()]
    slurm_keys = [k for k in SLURM_KEYS if (spec.get("executor") or {}).get(k) is not None]
    if cluster != "slurm" and slurm_keys:
        lines.append(f"  note: the sweep's executor sets SLURM key(s) {', '.join(slurm_keys)}, "
                     f"which --cluster {cluster} does not use; --cluster slurm (or 'cluster: "
                     f"slurm' in the sweep file) plans and launches it on SLURM")
    if cluster == "slurm":
        lines.append("submitit parameters:")
        lines += [f"  {k}: {json.dumps(v)}" for k, v in slurm_parameters(name, ex).items()]
    return "\n".join(lines)


def _grid_size(spec: Mapping) -> int:
    total = 0
    for block in grid_blocks(spec):
        n = 1
        for _, values in block:
            n *= len(values)
        total += n
    return total

