"""What a sweep costs before it runs, in the plan (``--dry-run``): per run its training iterations
and forward-equivalents and its evaluations' network passes (``run_cost``), summed into the
plan's cost lines (``format_cost``), with GPU-hours from ``--ms-per-it`` or a cost table of
``python -m bench.perf --out``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping

from bench.config.sections import Eval
from bench.core import processes
from bench.core.cost import BWD_FACTOR, forward_equivalents
from bench.data import datasets
from bench.evaluation.callbacks import resolve_metrics
from bench.evaluation.nll import likelihood_plan
from bench.sweep.spec import RunConfig
from bench.tools import cost_table


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
    return len(Eval.from_dict(e).evaluated_steps(int(iterations))), ", ".join(when)


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
    process = processes.build(d, cfg["process"])
    if sample:
        steps = process.sample_passes(e["sampler"], Eval.from_dict(e).sampler_steps)
        how = {"ddpm": f"DDPM T = {T}", "ddim": f"DDIM {steps}", "euler": f"Euler {steps}",
               "heun": f"Heun {steps} passes"}[e["sampler"]]
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
        plan = likelihood_plan(process, c["timesteps"], c["ode_steps"], c["probes"])
        flow = plan["metric"] == "nll_ode_bpd"
        how = (f"ODE, Heun {c['ode_steps']} steps, {c['probes']} Hutchinson probe(s): as many "
               f"backward passes per probe" if flow else plan["estimator"])
        out["nll"] = {"n": n, "upper": bool(n and not n_test), "terms": plan["passes"],
                      "how": how, "metric": plan["metric"], "unit": "passes" if flow else "terms",
                      "fwd": n_eval * n * plan["passes"] if n else None}
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
            lines.append(f"      {m['metric']} ({m['how']}): {ev} x {images} x {m['terms']} "
                         f"{m['unit']}{fwd}")
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

