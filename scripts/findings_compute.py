"""docs/findings.md §7: the adaptive sampler at equal counted compute, the pre-registered endpoints.

    python scripts/findings_compute.py results/findings_compute [--out results/findings_compute/compute.png]

Per adaptive arm (full and cheap all-T row), paired by seed against uniform run to the full arm's
compute: the arm's lowest NLL up to 2000 iterations against uniform's lowest NLL up to the same
counted training compute (forward-equivalents, docs/cost.md); the same at the arm's 500- and
1000-iteration compute; the counted compute at which the arm first reaches uniform's NLL at 2000
iterations (per seed), as a speed-up; fd_cnn likewise; cheap − full at 2000 iterations; how many
seeds adapted. The figure: NLL against counted compute, the mean over seeds per arm.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bench.analysis.adaptation import summaries
from bench.analysis.cost import training_cost
from bench.analysis.load import load
from bench.analysis.stats import mean_ci

ARMS = {"full": "adaptive_beta(update_every=5,variant=low_variance)",
        "cheap": "adaptive_beta(all_t_every=2,all_t_stride=8,update_every=5,variant=low_variance)"}
BUDGETS = (500, 1000, 2000)
TOL = 1e-6          # relative: compute "up to" the arm's includes rounding of equal totals


def per_seed(ev: pd.DataFrame, condition: str, metric: str) -> dict[int, pd.DataFrame]:
    """{seed: that run's evaluations of ``metric`` (step, cost, value), by step}."""
    d = ev[(ev["condition"] == condition) & (ev["metric"] == metric)]
    return {int(s): g.sort_values("step")[["step", "cost", "value"]].reset_index(drop=True)
            for s, g in d.groupby("seed")}


def best_until(g: pd.DataFrame, column: str, limit: float) -> float:
    sub = g.loc[g[column] <= limit * (1 + TOL), "value"]
    return float(sub.min()) if len(sub) else math.nan


def ci(values) -> str:
    m, h, _, n = mean_ci(list(values))
    return "—" if not math.isfinite(m) else f"{m:+.3f} ± {h:.3f}" if math.isfinite(h) else f"{m:+.3f}"


def verdict(values, adapted: int, n: int) -> str:
    if adapted < 2:
        return "not tested (did not adapt)"
    m, h, _, _ = mean_ci(list(values))
    if not math.isfinite(h):
        return "—"
    return "reproduced" if m + h < 0 else "not reproduced" if m - h > 0 else "inconclusive"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results_dir")
    ap.add_argument("--out", help="figure path (default RESULTS_DIR/compute.png)")
    args = ap.parse_args(argv)
    R = load(args.results_dir)
    ev = R.counted(R.evals)
    ev = ev.assign(cost=training_cost(ev))
    uni = {m: per_seed(ev, "uniform", m) for m in ("nll_bpd", "fd_cnn")}
    if not uni["nll_bpd"]:
        raise SystemExit("error: no uniform runs with NLL evaluations under " + args.results_dir)
    summ = summaries(R.counted(R.timesteps["adaptation"]))
    arms = {name: {m: per_seed(ev, cond, m) for m in ("nll_bpd", "fd_cnn")}
            for name, cond in ARMS.items()}

    print("| arm | counted compute at 2000 it (× uniform's per it) | metric | Δ at the compute of "
          "500 it | Δ at 1000 it | **Δ at 2000 it** | adapted | verdict |")
    print("|---|---|---|---|---|---|---|---|")
    deltas: dict[str, dict[int, float]] = {}
    for name, runs in arms.items():
        a = summ[summ["condition"] == ARMS[name]]
        adapted, n = int(a["adapted"].sum()), len(a)
        for metric in ("nll_bpd", "fd_cnn"):
            cols, ratio = [], []
            for b in BUDGETS:
                d = {}
                for seed, g in runs[metric].items():
                    if seed not in uni[metric] or g["step"].max() < b:
                        continue
                    cost = float(g.loc[g["step"] <= b, "cost"].max())
                    u = uni[metric][seed]
                    if b == 2000 and metric == "nll_bpd" and (u["step"] == 2000).any():
                        ratio.append(cost / float(u.loc[u["step"] == 2000, "cost"].iloc[0]))
                    if u["cost"].max() < cost * (1 - TOL):
                        continue                       # uniform has not got there yet
                    d[seed] = best_until(g, "step", b) - best_until(u, "cost", cost)
                cols.append(ci(d.values()) + f" (n={len(d)})")
                if b == 2000 and metric == "nll_bpd":
                    deltas[name] = d
            v = verdict(deltas.get(name, {}).values(), adapted, n) if metric == "nll_bpd" else ""
            r = f"{np.mean(ratio):.2f}×" if ratio else ""
            print(f"| {name} | {r} | {metric} | {cols[0]} | {cols[1]} | **{cols[2]}** | "
                  f"{adapted}/{n} | {v} |")

    print("\nCompute to reach uniform's NLL at 2000 iterations (per seed: uniform's cost at 2000 "
          "it / the arm's cost at its first evaluation at or below it):")
    for name, runs in arms.items():
        speed = {}
        for seed, g in runs["nll_bpd"].items():
            u = uni["nll_bpd"].get(seed)
            if u is None or u["step"].max() < 2000:
                continue
            target = best_until(u, "step", 2000)
            ucost = float(u.loc[u["step"] == 2000, "cost"].iloc[0])
            hit = g[g["value"] <= target]
            speed[seed] = ucost / float(hit["cost"].iloc[0]) if len(hit) else math.nan
        reached = sum(math.isfinite(x) for x in speed.values())
        vals = ", ".join(f"{s}: {x:.2f}×" if math.isfinite(x) else f"{s}: not reached"
                         for s, x in sorted(speed.items()))
        mean = (f"mean {np.mean(list(speed.values())):.2f}×" if reached == len(speed) and speed
                else f"{reached}/{len(speed)} reached")
        print(f"  {name}: {mean} ({vals})")

    if "full" in deltas and "cheap" in deltas:
        d = {s: best_until(arms["cheap"]["nll_bpd"][s], "step", 2000)
             - best_until(arms["full"]["nll_bpd"][s], "step", 2000)
             for s in arms["cheap"]["nll_bpd"] if s in arms["full"]["nll_bpd"]}
        print(f"\nCheap − full, NLL at 2000 iterations: {ci(d.values())} (n={len(d)})")

    out = Path(args.out) if args.out else Path(args.results_dir) / "compute.png"
    fig = Figure(figsize=(6.4, 3.8), layout="constrained")
    ax = fig.add_subplot()
    for label, runs in [("uniform", uni), *[(f"low_variance, {k} row", v) for k, v in
                                            arms.items()]]:
        frames = list(runs["nll_bpd"].values())
        if not frames:
            continue
        steps = sorted(set.intersection(*(set(g["step"]) for g in frames)))
        cost = [np.mean([g.loc[g["step"] == s, "cost"].iloc[0] for g in frames]) for s in steps]
        nll = [np.mean([g.loc[g["step"] == s, "value"].iloc[0] for g in frames]) for s in steps]
        ax.plot(np.array(cost) / 1e6, nll, marker="o", label=f"{label} ({len(frames)} seeds)")
    ax.set_xlabel("counted training compute (10⁶ forward-equivalents)")
    ax.set_ylabel("test NLL, stratified bound (bits/dim)")
    ax.set_title("§7: NLL against counted compute (mean over seeds)", fontsize=10)
    ax.legend(fontsize=8)
    fig.savefig(out, dpi=130)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
