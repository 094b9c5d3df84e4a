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

import argparse
import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import yaml

from bench import config as C
from bench import rundir
from bench.core.cost import BWD_FACTOR, forward_equivalents
from bench.core.diffusion import Diffusion
from bench.data import datasets
from bench.evaluation.callbacks import resolve_metrics
from bench.evaluation.nll import estimator_name
from bench.labels import duration_text
from bench.launch import slurm as launch_slurm
from bench.launch.launcher import launch
from bench.launch.slurm import slurm_parameters
from bench.sweep.spec import (CLUSTERS, RunConfig, SweepError, cluster_choice, executor_params,
                              expand, grid_blocks, load_sweep, missing_requirements, select)
from bench.tools import cost_table

SLURM_TIMEOUT_S = 10.0          # --status: the most one sacct/squeue query may take
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


def format_plan(spec: Mapping, runs: list[RunConfig], sweep_dir: Path, cluster: str, ex: dict,
                missing: list[str], source: str = "", cost: list[str] | None = None) -> str:
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


# ---------------------------------------------------------------------------- cost in the plan
def _n(x: float) -> str:
    """A count for people: 1,000,000."""
    return f"{int(x):,}" if float(x).is_integer() else f"{x:,.1f}"


def _h(hours: float) -> str:
    return f"{hours:.4g}"


def _mix(values: list) -> str:
    """``8 x 20`` when all runs agree, else ``6 x 20 + 2 x 10``."""
    return " + ".join(f"{n} x {_n(v)}" for v, n in Counter(values).items())


def evaluation_count(e: Mapping, iterations: int) -> tuple[int, str]:
    """How many evaluations a run makes, and when, as bench.evaluation.callbacks.Evaluator
    schedules them: every ``eval.every`` steps (step > 0), at each ``eval.at`` step (0 = the
    initial model), and at the last step with ``eval.final``; a step is evaluated once."""
    every = int(e["every"])
    when = ([f"every {every}"] if every > 0 and iterations >= every else []) \
        + ([f"at {', '.join(map(str, sorted(set(e['at']))))}"] if e["at"] else []) \
        + (["final"] if e["final"] else [])
    return len(C.Eval.from_dict(e).steps(int(iterations))), ", ".join(when)


def run_cost(cfg: Mapping) -> dict:
    """What a run costs in passes through the diffusion network, before it runs: its training
    iterations, the trainer's forward-equivalents (batch_size forwards and batch_size backwards per
    iteration, bench.core.cost), and its evaluations' forwards (bench.evaluation: n·k for DDIM-k
    sampling of n samples, n·T for DDPM; the NLL bound of n images n·T or n·(K + 1))."""
    tr, e, d = cfg["train"], cfg["eval"], cfg["diffusion"]
    N, B, T = int(tr["iterations"]), int(tr["batch_size"]), int(d["timesteps"])
    n_eval, when = evaluation_count(e, N)
    out = {"iterations": N, "batch": B, "fe_train": forward_equivalents(N * B, N * B),
           "evals": n_eval, "when": when, "sample": None, "nll": None,
           "diagnostics": bool(e["diagnostics"]["every"] or e["diagnostics"]["at"])}
    if not n_eval:
        return out
    kind = datasets.kind(cfg["dataset"]["name"])
    metrics = resolve_metrics(list(e["metrics"]), kind != "vector", kind == "latent")
    sample = [m for m in metrics if m != "nll"]
    if sample:
        if e["sampler"] == "ddpm":
            steps, how = T, f"DDPM T = {T}"
        else:
            steps = len(Diffusion(d["schedule"], T, d["variance"]).ddim_timesteps(e["ddim_steps"]))
            how = f"DDIM {steps}"
        n = int(e["n_samples"])
        out["sample"] = {"metrics": ", ".join(sample), "n": n, "steps": steps, "how": how,
                         "fwd": n_eval * n * steps}
    if "nll" in metrics:
        c = e["nll"]
        params = {**datasets.defaults(cfg["dataset"]["name"]),
                  **{k: v for k, v in cfg["dataset"].items() if k != "name"}}
        n_test = params.get("n_test") if isinstance(params.get("n_test"), int) else None
        n = (n_test if c["n_images"] <= 0 else
             min(c["n_images"], n_test) if n_test else c["n_images"])
        full = c["timesteps"] <= 0 or c["timesteps"] >= T - 1
        terms = T if full else c["timesteps"] + 1
        out["nll"] = {"n": n, "upper": bool(n and not n_test), "terms": terms,
                      "how": estimator_name(T, c["timesteps"]),
                      "fwd": n_eval * n * terms if n else None}
    return out


def _ms_source(runs: list[RunConfig], ms_per_it: float | None, table: tuple | None,
               ) -> tuple[list[float | None], str]:
    """Per run: ms per training iteration (None: unknown), and where they came from."""
    if ms_per_it is not None:
        return [ms_per_it] * len(runs), f"{ms_per_it:g} ms/it (--ms-per-it)"
    path, rows = table
    found = [cost_table.lookup(rows, r.config) for r in runs]
    names = sorted({f"{r['device_name']}, measured {r.get('measured', '?')}" for r in found if r})
    return ([r["ms_per_it"] if r else None for r in found],
            f"the ms/it of the cost table {path} ({'; '.join(names) or 'no matching row'})")


def format_cost(runs: list[RunConfig], ex: dict, ms_per_it: float | None = None,
                table: tuple | None = None) -> list[str]:
    """The plan's cost lines: training iterations and forward-equivalents, evaluation passes,
    and GPU-hours from ``ms_per_it`` or a cost table (path, rows) of ``python -m bench.perf
    --out``."""
    costs = [run_cost(r.config) for r in runs]
    iters = sum(c["iterations"] for c in costs)
    lines = [("cost (passes through the diffusion network, bench.core.cost: forward-equivalents "
              f"= fwd + {BWD_FACTOR:g}·bwd):"),
             (f"  training iterations: {len(runs)} runs x iterations = "
              f"{_mix([c['iterations'] for c in costs])} = {_n(iters)}")]
    batches = Counter(c["batch"] for c in costs)
    per_it = " + ".join(f"{_n(sum(c['iterations'] for c in costs if c['batch'] == b))} x "
                        f"{_n(forward_equivalents(b, b))}" for b in batches)
    lines += [(f"  training forward-equivalents: {_n(sum(c['fe_train'] for c in costs))} = "
               f"iterations x {BWD_FACTOR + 1:g}·batch_size = {per_it}"),
              ("    (the trainer's batch_size forwards + batch_size backwards per iteration); "
               "the strategies'"),
              ("    own passes come on top, not known before running (docs/cost.md lists them "
               "per strategy)")]
    lines += _eval_lines(costs)
    if ms_per_it is not None or table is not None:
        lines += _gpu_hour_lines(runs, costs, ex, *_ms_source(runs, ms_per_it, table))
    else:
        lines.append("  GPU-hours: give --ms-per-it MS or --cost-table FILE (written by "
                     "`python -m bench.perf ... --out FILE`) for an estimate")
    return lines


def _eval_lines(costs: list[dict]) -> list[str]:
    n_eval = sum(c["evals"] for c in costs)
    if not n_eval:
        return ["  evaluation: none (eval.every 0, no eval.at, eval.final false)"]
    groups: dict[str, list[dict]] = {}
    for c in costs:
        key = json.dumps({k: c[k] for k in ("evals", "when", "sample", "nll")}, sort_keys=True)
        groups.setdefault(key, []).append(c)
    total = sum((c["sample"] or {}).get("fwd", 0) + ((c["nll"] or {}).get("fwd") or 0)
                for c in costs)
    unknown = any(c["nll"] and c["nll"]["fwd"] is None for c in costs)
    more = " + the NLL's below" if unknown else ""
    lines = [f"  evaluation: {_n(n_eval)} evaluations, {_n(total)}{more} forwards"]
    for group in groups.values():
        c, k = group[0], len(group)
        runs = f"{k} run{'s' if k > 1 else ''}"
        if not c["evals"]:
            lines.append(f"    {runs}: no evaluation")
            continue
        lines.append(f"    {runs} x {c['evals']} evaluations ({c['when']})")
        ev = f"{k * c['evals']} evaluations"
        if c["sample"]:
            s = c["sample"]
            lines.append(f"      sample metrics ({s['metrics']}): {ev} x {_n(s['n'])} samples x "
                         f"{s['steps']} steps ({s['how']}) = {_n(k * s['fwd'])} forwards")
        if c["nll"]:
            m = c["nll"]
            images = (f"{'at most ' if m['upper'] else ''}{_n(m['n'])} images" if m["n"]
                      else "the test split's images (its size is not known before loading)")
            fwd = f" = {'at most ' if m['upper'] else ''}{_n(k * m['fwd'])} forwards" \
                if m["fwd"] is not None else ""
            lines.append(f"      nll_bpd ({m['how']}): {ev} x {images} x {m['terms']} terms"
                         f"{fwd}")
    if any(c["diagnostics"] for c in costs):
        lines.append("    (per-timestep diagnostics, eval.diagnostics, are not counted)")
    return lines


def _gpu_hour_lines(runs: list[RunConfig], costs: list[dict], ex: dict,
                    ms: list[float | None], source: str) -> list[str]:
    gpus = ex["nodes"] * ex["gpus_per_node"]
    known = [(r, c, m) for r, c, m in zip(runs, costs, ms) if m is not None]
    it_known = sum(c["iterations"] for _, c, _ in known)
    hours = sum(c["iterations"] * m for _, c, m in known) / 3.6e6
    per = ("x 1 device per run (executor.gpus_per_node is 0)" if gpus == 0
           else f"x {gpus} GPU{'s' if gpus > 1 else ''} per run")
    lines = [f"  GPU-hours (training only, evaluation not included) at {source}:"]
    if not known:
        return lines + [("    no run has a row in the cost table, no estimate (rows are looked "
                         "up by strategy name, dataset, backbone, batch size and "
                         "train.bf16/channels_last/compile/fused_optimizer/tf32)")]
    partial = "" if len(known) == len(runs) else f" for {len(known)} of {len(runs)} runs"
    total = f"{_h(hours)} h {per} = {_h(hours * max(gpus, 1))} GPU-hours{partial}"
    if len({m for _, _, m in known}) == 1:
        lines.append(f"    {_n(it_known)} iterations x {known[0][2]:g} ms/it = {total}")
    else:
        by: dict[tuple, list] = {}
        for r, c, m in known:
            by.setdefault((r.config["strategy"]["name"], m), []).append(c["iterations"])
        lines += [f"    {name}: {_n(sum(its))} iterations x {m:g} ms/it = "
                  f"{_h(sum(its) * m / 3.6e6)} h" for (name, m), its in by.items()]
        lines.append(f"    in all: {total}")
    missing = [(r, c) for r, c, m in zip(runs, costs, ms) if m is None]
    if missing:
        what = sorted({f"{r.config['strategy']['name']} on {r.config['dataset']['name']}/"
                       f"{r.config['backbone']['name']} at batch {c['batch']}"
                       for r, c in missing})
        lines.append(f"    {len(missing)} runs ({_n(sum(c['iterations'] for _, c in missing))} "
                     f"iterations) have no row in the cost table, not estimated: "
                     f"{'; '.join(what)} (measure them with `python -m bench.perf --only ... "
                     f"--backbone-config ... --batch ... --out FILE`)")
    return lines


# ---------------------------------------------------------------------------- --status
NOT_STARTED, RUNNING, QUEUED, STOPPED, FAILED, DONE = ("not started", "running", "queued",
                                                       "stopped", "failed", "done")
STATES = (DONE, RUNNING, QUEUED, STOPPED, FAILED, NOT_STARTED)
SLURM_ENDED_OK = ("COMPLETED", "NOT_QUEUED")


def _last_eval(run_dir: Path) -> str:
    ev = rundir.read_evals(run_dir)
    if not len(ev):
        return "-"
    step = int(ev["step"].max())
    last = ev[ev["step"] == step]
    many = last["metric"].duplicated(keep=False)
    vals = [f"{m}{'[' + s + ']' if dup else ''}={v:.4g}"
            for m, s, v, dup in zip(last["metric"], last["sampler"], last["value"], many)]
    return f"{' '.join(vals)} @{step}"


def run_status(run: RunConfig, sweep_dir: Path, slurm: dict[str, str] | None) -> dict:
    """One run's state from its files (read-only; the lock probe takes the lock for an instant,
    as bench.rundir.state does): done (DONE), running (a process holds the run lock, or its SLURM
    job runs), queued (its SLURM job is pending), failed (FAILED, or its SLURM job ended without
    DONE), stopped (a checkpoint or log rows, no DONE, nobody training it), not started.
    ``slurm``: {job id: state} of the recorded SLURM jobs (None: SLURM did not answer)."""
    d = sweep_dir / run.run_id
    iters = int(run.config["train"]["iterations"])
    st = {"run": run, "state": NOT_STARTED, "step": 0, "iterations": iters, "eval": "-",
          "slurm": "-", "eta": "—", "note": ""}
    if not d.is_dir():
        return st
    notes: list[str] = []
    last: dict = {}
    try:
        last = rundir.last_metrics(d)       # skips a half-written last line
    except (rundir.RunFileError, OSError) as e:
        notes.append(str(e))
    try:
        st["eval"] = _last_eval(d)
    except (rundir.RunFileError, OSError) as e:
        notes.append(str(e))
    st["step"] = int(last.get("step", 0) or 0)
    job = rundir.last_job(d) or {}
    slurm_state = ""
    if job.get("cluster") == "slurm" and job.get("job_id"):
        slurm_state = "unknown" if slurm is None else slurm.get(str(job["job_id"]), "UNKNOWN")
        st["slurm"] = f"{job['job_id']} {slurm_state}"
    first = slurm_state.split()[0] if slurm_state else ""
    if rundir.is_done(d):
        st["state"] = DONE
        st["step"] = int(rundir.read_done(d).get("step") or iters)
        st["note"] = "; ".join(notes)
        return st
    try:
        holder = rundir.lock_holder(d)
    except OSError:                         # e.g. a results tree this user cannot write to
        holder = ""
    failed = rundir.failure(d)
    if holder:
        st["state"] = RUNNING
        notes.append(f"trained by {holder}")
    elif first == "RUNNING":
        st["state"] = RUNNING
        notes.append("its SLURM job runs (not training yet)")
    elif first in launch_slurm.ACTIVE_STATES:
        st["state"] = QUEUED
    elif failed:
        st["state"] = FAILED
        notes.append(f"FAILED: {failed.splitlines()[0]}")
    elif first and first not in (*SLURM_ENDED_OK, "unknown", "UNKNOWN"):
        st["state"] = FAILED
        notes.append(f"its SLURM job ended {slurm_state} without {rundir.DONE}")
    elif st["step"] or rundir.has_checkpoint(d):
        st["state"] = STOPPED
        newest = rundir.newest_write(d)
        if newest is not None:
            notes.append(f"last write {duration_text(time.time() - newest.stat().st_mtime)} ago")
    wall = last.get("wall_s_train")
    if st["state"] != FAILED and st["step"] and isinstance(wall, (int, float)) and wall > 0:
        st["eta"] = duration_text(wall / st["step"] * max(iters - st["step"], 0))
    st["note"] = "; ".join(notes)
    return st


def sweep_status(runs: list[RunConfig], sweep_dir: Path) -> tuple[list[dict], bool]:
    """Every run's ``run_status`` and whether SLURM answered (True when no SLURM job is
    recorded): one bounded sacct/squeue query for all recorded SLURM jobs."""
    jobs = {}
    for r in runs:
        rec = rundir.last_job(sweep_dir / r.run_id) if (sweep_dir / r.run_id).is_dir() else None
        if rec and rec.get("cluster") == "slurm" and rec.get("job_id"):
            jobs[r.run_id] = str(rec["job_id"])
    slurm = launch_slurm.job_states(list(jobs.values()), SLURM_TIMEOUT_S) if jobs else {}
    return [run_status(r, sweep_dir, slurm) for r in runs], slurm is not None


def format_status(spec: Mapping, runs: list[RunConfig], sweep_dir: Path,
                  results_dir: Path) -> str:
    lines = [(f"sweep {spec['name']}: {len(runs)} runs in {sweep_dir}/ "
              f"(status at {time.strftime('%Y-%m-%d %H:%M:%S')})")]
    if not sweep_dir.is_dir():
        where = (f"{sweep_dir}/ does not exist" if results_dir.is_dir()
                 else f"the results directory {results_dir}/ does not exist")
        lines.append(f"note: {where}: the sweep has not been launched there yet (launched with "
                     f"another --results-dir?); every run is not started")
    else:
        launched = rundir.sweep_file(sweep_dir)
        try:
            if launched.exists() and C.yaml_load(launched.read_text()) != dict(spec):
                lines.append(f"note: the sweep file differs from {launched}, the sweep as last "
                             f"launched; the runs below are the sweep file's")
        except (OSError, yaml.YAMLError):
            pass
    sts, answered = sweep_status(runs, sweep_dir)
    show_slurm = any(s["slurm"] != "-" for s in sts)
    cols = axis_columns(runs)
    head = ["run_id", "state", "step", "last eval", *(["slurm"] if show_slurm else []), "eta",
            "condition", *cols, "note"]
    rows = [head]
    for s in sts:
        r, axes = s["run"], dict(s["run"].axes)
        rows.append([r.run_id, s["state"], f"{s['step']}/{s['iterations']}", s["eval"],
                     *([s["slurm"]] if show_slurm else []), s["eta"], r.condition,
                     *(axes.get(c, "-") for c in cols), s["note"]])
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(head))]
    lines += ["  " + "  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip()
              for row in rows]
    if not answered:
        lines.append(f"note: slurm: unknown (neither sacct nor squeue on PATH answered within "
                     f"{SLURM_TIMEOUT_S:g} s); states are from the run folders alone")
    counts = Counter(s["state"] for s in sts)
    done = sum(min(s["step"], s["iterations"]) for s in sts)
    total = sum(s["iterations"] for s in sts)
    lines.append(f"summary: {len(sts)} runs: " + ", ".join(f"{k} {counts[k]}" for k in STATES)
                 + f"; steps {done}/{total} ({100 * done / total:.0f} %)")
    return "\n".join(lines)


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
    try:
        try:                        # a path, or a name in the suite's sweeps/ (find_file)
            args.sweep = str(C.find_file(args.sweep, ("sweeps",)))
        except C.ConfigError as e:
            raise SweepError(str(e).replace("config file", "sweep file")) from None
        spec = load_sweep(args.sweep)
        runs = select(expand(spec), args.only)
        ex = executor_params(spec, parse_executor_overrides(args.executor))
        results_dir = Path(args.results_dir)
        sweep_dir = results_dir / spec["name"]
        if args.status:
            print(format_status(spec, runs, sweep_dir, results_dir))
            return 0
        cluster, source = cluster_choice(spec, args.cluster)
        missing = missing_requirements(spec)
        if args.dry_run:
            table = None
            if args.cost_table:
                table = (args.cost_table, cost_table.read_cost_table(args.cost_table))
            print(format_plan(spec, runs, sweep_dir, cluster, ex, missing, source,
                              format_cost(runs, ex, args.ms_per_it, table)))
            return 0
        if missing:
            raise SweepError(f"sweep {spec['name']!r} cannot run here:\n  "
                             + "\n  ".join(missing))
        summary = launch(spec, runs, cluster=cluster, sweep_dir=sweep_dir, ex=ex,
                         wait=args.wait or cluster != "slurm",
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
