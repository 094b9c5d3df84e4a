"""docs/findings.md §3c: §3's low-variance adaptive sampler vs uniform on more seeds, pooled, and
what its unstable seeds look like (the pre-registered endpoint, rule and diagnostics).

    python scripts/findings_3c.py results/findings_main results/findings_3c [--budget 4000]

For every seed of the given studies with both arms (uniform; adaptive_beta low_variance, f_S = 10):
the lowest test NLL reached up to the budget, the paired difference (arm − uniform) with a 95 %
Student-t CI per study and pooled, the share of seeds that adapted (the report's verdict) and the
pre-registered verdict. Then one row per low-variance seed: its NLL at each evaluation, whether it
is *unstable* (an NLL rise > 0.2 bits/dim between consecutive evaluations), and the diagnostics
the pre-registration names — p(t) concentration (lowest entropy of p(t) over the updates, in nats;
uniform is ln T; the largest T·p(t) in the p(t) snapshots), the share of policy updates whose batch
mean log α or log β moved by more than 0.2 (the trust-region bound is 0.25 per example), the
smallest α and β seen, the live model's training loss in the lowest and highest t bins
(metrics.jsonl) at the evaluations around the largest rise, and in how many log intervals
(100 steps) the sampler drew no t at all in the lowest and in the highest tenth of t.
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np
import pandas as pd

from bench.analysis.adaptation import summaries
from bench.analysis.load import load
from bench.analysis.stats import mean_ci

ARM = "variant=low_variance"
JUMP = 0.2                           # bits/dim between consecutive evaluations: "unstable"


def _arms(ev: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    uni = ev[ev["strategy_name"] == "uniform"]
    ada = ev[(ev["strategy_name"] == "adaptive_beta") & ev["strategy"].str.contains(ARM)
             & ev["strategy"].str.contains("update_every=10")
             & ~ev["strategy"].str.contains("compose")]
    return uni, ada


def best(df: pd.DataFrame, budget: int) -> pd.Series:
    d = df[(df["metric"] == "nll_bpd") & (df["step"] <= budget)]
    return d.groupby("seed")["value"].min()


def ci_text(x: np.ndarray) -> str:
    m, h = mean_ci(x)[:2]
    return f"{m:+.3f} ± {h:.3f}" if math.isfinite(h) else f"{m:+.3f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("studies", nargs="+")
    ap.add_argument("--budget", type=int, default=4000)
    args = ap.parse_args(argv)
    diffs, adapted, per_seed = {}, {}, []
    for study in args.studies:
        R = load(study)
        ev = R.counted(R.evals)
        uni, ada = _arms(ev)
        d = (best(ada, args.budget) - best(uni, args.budget)).dropna()
        diffs[study] = d
        summ = summaries(R.counted(R.timesteps["adaptation"]))
        runs = set(ada["run"])
        summ = summ[summ["run"].isin(runs)]
        adapted[study] = (int(summ["adapted"].sum()), len(summ))
        per_seed += [row for run in sorted(runs) for row in _diagnose(R, ada, run)]
    print(f"| seeds | n | Δ NLL low_variance − uniform, ≤ {args.budget} it (bits/dim) | "
          f"better / level-or-worse | adapted |")
    print("|---|---:|---|---|---|")
    for study, d in diffs.items():
        a, n = adapted[study]
        print(f"| {study} ({', '.join(str(int(s)) for s in d.index)}) | {len(d)} | "
              f"{ci_text(d.to_numpy())} | {int((d < 0).sum())} / {int((d >= 0).sum())} | "
              f"{a}/{n} |")
    pooled = pd.concat(diffs.values())
    a = sum(v[0] for v in adapted.values())
    n = sum(v[1] for v in adapted.values())
    m, h = mean_ci(pooled.to_numpy())[:2]
    print(f"| **pooled** | {len(pooled)} | **{ci_text(pooled.to_numpy())}** | "
          f"{int((pooled < 0).sum())} / {int((pooled >= 0).sum())} | {a}/{n} |")
    if m + h < 0 and a >= 0.8 * n:
        verdict = "holds (pooled CI below 0, adapted in >= 80 % of seeds)"
    elif m - h > 0:
        verdict = "reversed (pooled CI above 0)"
    else:
        verdict = "inconclusive"
    print(f"\npre-registered verdict on the headline: {verdict}\n")
    print("| run | seed | NLL at evaluations | unstable | largest rise (step) | min entropy p(t) "
          "| max T·p(t) | updates moving mean log α/β > 0.2 | min α / min β | train loss "
          "lowest / highest t bin before → after the rise | log intervals with no draw in the "
          "lowest / highest t bin |")
    print("|---|---:|---|---|---|---:|---:|---:|---|---|---|")
    for r in per_seed:
        print("| " + " | ".join(str(v) for v in r) + " |")
    return 0


def _diagnose(R, ada: pd.DataFrame, run: str) -> list[list]:
    ev = ada[(ada["run"] == run) & (ada["metric"] == "nll_bpd")].sort_values("step")
    steps, nll = ev["step"].to_numpy(), ev["value"].to_numpy()
    rises = np.diff(nll)
    k = int(np.argmax(rises)) if len(rises) else 0
    unstable = bool(len(rises) and rises.max() > JUMP)
    ad = R.timesteps["adaptation"]
    ad = ad[(ad["run"] == run) & (ad["event"] == "update")].sort_values("step")
    la, lb = np.log(ad["alpha_mean"].to_numpy()), np.log(ad["beta_mean"].to_numpy())
    moves = np.maximum(np.abs(np.diff(la)), np.abs(np.diff(lb)))
    pt = R.timesteps["p_t"] if "p_t" in R.timesteps else None
    max_tp = math.nan
    if pt is not None and len(pt):
        p = pt[pt["run"] == run]
        T = p.groupby("step")["t"].count().max()
        max_tp = float(p["p"].max() * T)
    m = R.metrics[R.metrics["run"] == run].set_index("step")
    def bins_at(step):
        if step not in m.index:
            return "—"
        b = m.loc[step, "loss_bins"]
        return " / ".join("none drawn" if v is None else f"{v:.3f}" for v in (b[0], b[-1]))
    lo, hi = (int(steps[k]), int(steps[k + 1])) if len(rises) else (0, 0)
    return [[run, int(ev["seed"].iloc[0]), " → ".join(f"{v:.2f}" for v in nll),
             "**yes**" if unstable else "no",
             f"{rises.max():+.2f} ({lo}→{hi})" if len(rises) else "—",
             f"{ad['entropy'].min():.2f}", f"{max_tp:.1f}",
             f"{(moves > 0.2).mean():.0%}" if len(moves) else "—",
             f"{ad['alpha_min'].min():.2f} / {ad['beta_min'].min():.2f}",
             f"{bins_at(lo)} → {bins_at(hi)}",
             " / ".join(f"{sum(b[i] is None for b in m['loss_bins'])}/{len(m)}"
                        for i in (0, -1))]]


if __name__ == "__main__":
    sys.exit(main())
