"""What a sweep costs before it runs, in the plan (``--dry-run``): per run its training iterations
and forward-equivalents, its strategy's own passes (by the strategy's formula) and its
evaluations' network passes (``run_cost``), summed into the plan's cost lines and totals
(``format_cost``), with GPU- (or CPU-) hours of training and evaluation from ``--ms-per-it`` or a
cost table of ``python -m bench.perf --out``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping

import strategies
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
    process = processes.build(d, cfg["process"])
    spec = cfg["strategy"]
    fwd_s, bwd_s = strategies.build(spec["name"], process, {k: v for k, v in spec.items()
                                                            if k != "name"}).planned_passes(B, N)
    out = {"iterations": N, "batch": B, "fe_train": forward_equivalents(N * B, N * B),
           "fe_strategy": forward_equivalents(fwd_s, bwd_s), "device": tr["device"],
           "evals": n_eval, "when": when, "sample": None, "nll": None, "eval_fwd": 0,
           "diagnostics": bool(e["diagnostics"]["every"] or e["diagnostics"]["at"])}
    if not n_eval:
        return out
    kind = datasets.kind(cfg["dataset"]["name"])
    metrics = resolve_metrics(list(e["metrics"]), kind != "vector", kind == "latent")
    sample = [m for m in metrics if m != "nll"]
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
    out["eval_fwd"] = (out["sample"] or {}).get("fwd", 0) + ((out["nll"] or {}).get("fwd") or 0)
    return out


def _ms_source(runs: list[RunConfig], ms_per_it: float | None, table: tuple | None,
               ) -> tuple[list[float | None], str, bool]:
    """Per run: ms per training iteration (None: unknown), where they came from, and whether
    it is one number for every run (the strategies' own passes not in it)."""
    if ms_per_it is not None:
        return [ms_per_it] * len(runs), f"{ms_per_it:g} ms/it (--ms-per-it)", True
    path, rows = table
    found = [cost_table.lookup(rows, r.config) for r in runs]
    names = sorted({f"{r['device_name']}, measured {r.get('measured', '?')}" for r in found if r})
    return ([r["ms_per_it"] if r else None for r in found],
            f"the ms/it of the cost table {path} ({'; '.join(names) or 'no matching row'})", False)


def format_cost(runs: list[RunConfig], ex: dict, ms_per_it: float | None = None,
                table: tuple | None = None, cluster: str = "local") -> tuple[list[str], dict]:
    """The plan's cost lines — training iterations and forward-equivalents (the strategies'
    own by their formula), evaluation passes, and device-hours of training and evaluation from
    ``ms_per_it`` or a cost table (path, rows) of ``python -m bench.perf --out`` — and the
    totals its summary shows."""
    costs = [run_cost(r.config) for r in runs]
    total = {"fe_train": sum(c["fe_train"] for c in costs),
             "fe_strategy": sum(c["fe_strategy"] for c in costs),
             "eval_fwd": sum(c["eval_fwd"] for c in costs), "hours": None,
             "unit": _unit(costs, ex, cluster)}
    iters = sum(c["iterations"] for c in costs)
    lines = [("cost (passes through the diffusion network, bench.core.cost: forward-equivalents "
              f"= fwd + {BWD_FACTOR:g}·bwd):"),
             (f"  training iterations: {len(runs)} runs x iterations = "
              f"{_mix([c['iterations'] for c in costs])} = {_n(iters)}")]
    batches = Counter(c["batch"] for c in costs)
    per_it = " + ".join(f"{_n(sum(c['iterations'] for c in costs if c['batch'] == b))} x "
                        f"{_n(forward_equivalents(b, b))}" for b in batches)
    lines += [(f"  training forward-equivalents: {_n(total['fe_train'])} = "
               f"iterations x {BWD_FACTOR + 1:g}·batch_size = {per_it}"),
              "    (the trainer's batch_size forwards + batch_size backwards per iteration)",
              (f"  the strategies' own passes: {_n(total['fe_strategy'])} forward-equivalents "
               f"more, by each strategy's formula (Strategy.planned_passes, docs/cost.md)")]
    by = Counter()
    for r, c in zip(runs, costs):
        by[r.config["strategy"]["name"]] += c["fe_strategy"]
    lines += [f"    {name}: {_n(fe)}" for name, fe in by.items() if fe]
    lines += _eval_lines(costs)
    if ms_per_it is not None or table is not None:
        more, total["hours"] = _hour_lines(runs, costs, ex, total["unit"],
                                           *_ms_source(runs, ms_per_it, table))
        lines += more
    else:
        lines.append(f"  {total['unit']}-hours: give --ms-per-it MS or --cost-table FILE "
                     "(written by `python -m bench.perf ... --out FILE`) for an estimate")
    return lines, total


def _unit(costs: list[dict], ex: dict, cluster: str) -> str:
    """What the hours are of: GPU (SLURM GPUs, or train.device cuda), CPU (train.device cpu),
    else device."""
    devices = {c["device"] for c in costs}
    if devices == {"cpu"}:
        return "CPU"
    if devices == {"cuda"} or (cluster == "slurm" and ex["gpus_per_node"] > 0):
        return "GPU"
    return "device"


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


def _hour_lines(runs: list[RunConfig], costs: list[dict], ex: dict, unit: str,
                ms: list[float | None], source: str, flat: bool) -> tuple[list[str], dict]:
    """Device-hours of training and evaluation at ``ms`` per iteration (None: unknown), and
    their totals. A forward of evaluation (and, with one ``--ms-per-it`` for all runs, of a
    strategy's own passes) is taken to cost what a forward-equivalent of the training step does,
    ms/(3·batch_size)."""
    devices = ex["nodes"] * ex["gpus_per_node"] if unit == "GPU" else 1
    per = f"x {devices} {unit}{'s' if devices > 1 else ''} per run"
    known = [(r, c, m) for r, c, m in zip(runs, costs, ms) if m is not None]
    lines = [f"  {unit}-hours of training and evaluation at {source}:"]
    if not known:
        return lines + [("    no run has a row in the cost table, no estimate (rows are looked "
                         "up by strategy name, dataset, backbone, batch size and "
                         "train.bf16/channels_last/compile/fused_optimizer/tf32)")], None
    per_fe = [m * c["iterations"] / c["fe_train"] for _, c, m in known]   # ms per fwd-equiv.
    train = sum(c["iterations"] * m for _, c, m in known) / 3.6e6
    strat = sum(c["fe_strategy"] * f for (_, c, _), f in zip(known, per_fe)) / 3.6e6 if flat \
        else 0.0
    ev = sum(c["eval_fwd"] * f for (_, c, _), f in zip(known, per_fe)) / 3.6e6
    if len({m for _, _, m in known}) == 1:
        lines.append(f"    training: {_n(sum(c['iterations'] for _, c, _ in known))} iterations "
                     f"x {known[0][2]:g} ms/it = {_h(train)} h")
    else:
        by: dict[tuple, list] = {}
        for r, c, m in known:
            by.setdefault((r.config["strategy"]["name"], m), []).append(c["iterations"])
        lines += [f"    training, {name}: {_n(sum(its))} iterations x {m:g} ms/it = "
                  f"{_h(sum(its) * m / 3.6e6)} h" for (name, m), its in by.items()]
    if strat:
        lines.append(f"    the strategies' own passes: {_h(strat)} h (at the step's cost per "
                     f"forward-equivalent)")
    lines.append(f"    evaluation: {_h(ev)} h (its forwards at the step's cost per "
                 f"forward-equivalent, ms/it ÷ 3·batch_size)")
    hours = {"train": train + strat, "eval": ev, "devices": devices,
             "partial": len(known) < len(runs)}
    partial = "" if len(known) == len(runs) else f" for {len(known)} of {len(runs)} runs"
    lines.append(f"    in all: {_h(train + strat + ev)} h {per} = "
                 f"{_h((train + strat + ev) * devices)} {unit}-hours{partial}")
    missing = [(r, c) for r, c, m in zip(runs, costs, ms) if m is None]
    if missing:
        what = sorted({f"{r.config['strategy']['name']} on {r.config['dataset']['name']}/"
                       f"{r.config['backbone']['name']} at batch {c['batch']}"
                       for r, c in missing})
        lines.append(f"    {len(missing)} runs ({_n(sum(c['iterations'] for _, c in missing))} "
                     f"iterations) have no row in the cost table, not estimated: "
                     f"{'; '.join(what)} (measure them with `python -m bench.perf --only ... "
                     f"--backbone-config ... --batch ... --out FILE`)")
    return lines, hours
