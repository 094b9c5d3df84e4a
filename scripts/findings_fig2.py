"""docs/findings.md §1 (Kim et al. 2025 Fig. 2 / Fig. 6): does the gradient variance of early
timesteps dominate that of late ones, and does it persist?

    python scripts/findings_fig2.py results/findings_fig2 [--early 250] [--late 750]

From every run's timesteps/diagnostics.csv: per run, weighting and snapshot, ρ = mean gradient
variance over the bins with t_hi ≤ EARLY divided by the mean over the bins with t_lo ≥ LATE;
prints log10 ρ (mean ± 95 % t-interval over seeds) per schedule, weighting and snapshot, the
pre-registered verdict per schedule and weighting, the largest ρ, and the loss endpoint: the
relative decrease 1 − L(last)/L(first snapshot > 0) over the late bins minus that over the early
bins, paired by seed.
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np
import pandas as pd

from bench.analysis.load import load
from bench.analysis.stats import mean_ci


def ratios(diag: pd.DataFrame, early: int, late: int) -> pd.DataFrame:
    rows = []
    for (run, w, step), g in diag.groupby(["run", "weighting", "step"]):
        e = g.loc[g["t_hi"] <= early, "grad_var"].mean()
        lt = g.loc[g["t_lo"] >= late, "grad_var"].mean()
        rows.append({"run": run, "schedule": g["schedule"].iloc[0], "seed": g["seed"].iloc[0],
                     "weighting": w, "step": int(step), "rho": float(e / lt)})
    return pd.DataFrame(rows)


def verdict(ci_lo: list[float], ci_hi: list[float]) -> str:
    above = [lo > 0 for lo in ci_lo]
    below = [hi < 0 for hi in ci_hi]
    if all(above):
        return "reproduced"
    if below[-1] or sum(below) >= len(below) / 2:
        return "not reproduced"
    return "inconclusive"


def loss_endpoint(diag: pd.DataFrame, early: int, late: int) -> pd.DataFrame:
    d = diag[diag["weighting"] == "ddpm"]
    rows = []
    for run, g in d.groupby("run"):
        steps = sorted(s for s in g["step"].unique() if s > 0)
        first, last = steps[0], steps[-1]

        def mean(step, sel):
            h = g[g["step"] == step]
            return h.loc[sel(h), "loss"].mean()

        def drop(sel):
            return 1.0 - mean(last, sel) / mean(first, sel)

        late_drop = drop(lambda h: h["t_lo"] >= late)
        early_drop = drop(lambda h: h["t_hi"] <= early)
        rows.append({"schedule": g["schedule"].iloc[0], "seed": g["seed"].iloc[0],
                     "late_drop": late_drop, "early_drop": early_drop,
                     "difference": late_drop - early_drop, "from": first, "to": last})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results_dir")
    ap.add_argument("--early", type=int, default=250)
    ap.add_argument("--late", type=int, default=750)
    args = ap.parse_args(argv)
    R = load(args.results_dir)
    diag = R.counted(R.timesteps["diagnostics"]).dropna(subset=["grad_var"])
    r = ratios(diag[diag["step"] > 0], args.early, args.late)
    for w, gw in r.groupby("weighting"):
        print(f"\n### log10 ρ, {w} weighting (mean ± 95 % CI over seeds; ρ = early / late)\n")
        steps = sorted(gw["step"].unique())
        print("| schedule | " + " | ".join(str(s) for s in steps) + " | max ρ | verdict |")
        print("|---|" + "---|" * (len(steps) + 2))
        for sched, g in gw.groupby("schedule"):
            cells, lo, hi = [], [], []
            for s in steps:
                m, h, _, n = mean_ci(np.log10(g.loc[g["step"] == s, "rho"]))
                cells.append(f"{m:.2f} ± {h:.2f}")
                lo.append(m - h if math.isfinite(h) else -math.inf)
                hi.append(m + h if math.isfinite(h) else math.inf)
            print(f"| {sched} | " + " | ".join(cells) + f" | {g['rho'].max():.1f} | "
                  f"{verdict(lo, hi)} |")
    le = loss_endpoint(diag, args.early, args.late)
    print("\n### loss: relative decrease, late bins minus early bins (paired by seed)\n")
    print("| schedule | late | early | late − early | verdict |")
    print("|---|---|---|---|---|")
    for sched, g in le.groupby("schedule"):
        cells = []
        for c in ("late_drop", "early_drop", "difference"):
            m, h, _, _ = mean_ci(g[c])
            cells.append(f"{m:.3f} ± {h:.3f}")
        m, h, _, _ = mean_ci(g["difference"])
        v = "reproduced" if m - h > 0 else "not reproduced" if m + h < 0 else "inconclusive"
        print(f"| {sched} | " + " | ".join(cells) + f" | {v} |")
    print(f"\n(loss from iteration {int(le['from'].min())} to {int(le['to'].max())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
