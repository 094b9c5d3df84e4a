"""docs/findings.md §3: the pre-registered endpoints of the main comparison, one line per arm.

    python scripts/findings_main.py results/findings_main [--budget 4000]

Per arm against uniform (5 seeds): the paired difference of the lowest NLL (bits/dim) and fd_cnn
reached up to the budget (bench.analysis.tables.pair_table), the compute speed-up to uniform's final NLL
(time_to_target on counted forward-equivalents, all seeds must reach it), how many seeds adapted
(learned arms), and the pre-registered verdict for the adaptive arms.
"""

from __future__ import annotations

import argparse
import math
import sys

from bench.analysis.adaptation import summaries
from bench.analysis.cost import training_cost
from bench.analysis.load import load
from bench.analysis.plotting import ordered_conditions
from bench.analysis.tables import pair_table, time_to_target, units


def unit_of(ev, metric):
    us = [u for u in units(ev) if u.metric == metric]
    if len(us) != 1:
        raise SystemExit(f"error: expected one {metric} protocol, found {len(us)}")
    return us[0]


def fmt(m, h, d=4):
    if m is None or not math.isfinite(m):
        return "—"
    return f"{m:+.{d}f} ± {h:.{d}f}" if math.isfinite(h) else f"{m:+.{d}f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results_dir")
    ap.add_argument("--budget", type=int, default=4000)
    args = ap.parse_args(argv)
    R = load(args.results_dir)
    ev = R.counted(R.evals)
    ev = ev.assign(cost=training_cost(ev))
    nll, fd = unit_of(ev, "nll_bpd"), unit_of(ev, "fd_cnn")
    summ = summaries(R.counted(R.timesteps["adaptation"]))
    summ = summ[summ["setting"] == nll.setting]
    adapted = {c: (int(g["adapted"].sum()), len(g)) for c, g in summ.groupby("condition")}
    ttt = time_to_target(ev, nll).set_index("condition")
    arms = [c for c in ordered_conditions(ev, "uniform") if c != "uniform"]
    print(f"| arm | Δ NLL vs uniform (bits/dim, ≤ {args.budget} it) | Δ fd_cnn vs uniform | "
          f"compute speed-up to uniform's final NLL | adapted seeds | verdict |")
    print("|---|---|---|---|---|---|")
    for arm in arms:
        strat = ev.loc[ev["condition"] == arm, "strategy"].iloc[0]
        cells = []
        diffs = {}
        for u in (nll, fd):
            p = pair_table(ev, u, "uniform", strat, [args.budget])
            p = p[p["budget"] == args.budget]
            row = p.iloc[0] if len(p) else None
            diffs[u.metric] = (row["diff"], row["diff_ci95"]) if row is not None else (None, None)
            cells.append(fmt(*diffs[u.metric], d=4 if u.metric == "nll_bpd" else 1))
        t = ttt.loc[arm] if arm in ttt.index else None
        sp = ("—" if t is None or not math.isfinite(t["speedup_cost"])
              else f"{t['speedup_cost']:.2f}× ({int(t['reached'])}/{int(t['n_runs'])} reached)")
        if t is not None and not math.isfinite(t["speedup_cost"]):
            sp = f"not reached by all seeds ({int(t['reached'])}/{int(t['n_runs'])})"
        k, n = adapted.get(arm, (None, None))
        ad = "—" if k is None else f"{k}/{n}"
        verdict = ""
        if "adaptive_beta" in arm:
            m, h = diffs["nll_bpd"]
            if k is not None and n - k >= 2:
                verdict = "not tested (did not adapt)"
            elif m is None or not math.isfinite(h):
                verdict = "—"
            else:
                verdict = ("reproduced" if m + h < 0 else "not reproduced" if m - h > 0
                           else "inconclusive")
        print(f"| {arm} | {cells[0]} | {cells[1]} | {sp} | {ad} | {verdict} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
