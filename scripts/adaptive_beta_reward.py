"""The pre-registered endpoints of docs/adaptive_beta.md ("Measured: official vs. low_variance")
from a results tree of adaptive_beta runs (e.g. sweeps/adaptive_beta_variants.yaml):

    python scripts/adaptive_beta_reward.py results/adaptive_beta_variants

Per condition (mean ± 95 % t-interval over seeds of the per-run values): the per-example KL reward
std (mean over updates), the reward–t correlation (mean over updates), the share of updates whose
S holds t = 0, the TV from uniform of the drawn t and of the final p(t), and the final value of
each evaluated metric. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from bench.analysis.adaptation import summary
from bench.analysis.load import ReportError, Results, load
from bench.analysis.stats import mean_ci


def per_run(R: Results) -> pd.DataFrame:
    ad = R.counted(R.timesteps["adaptation"])
    rows = []
    for run, g in ad.groupby("run", sort=False):
        upd = g[g["event"] == "update"]
        s = summary(g)
        zero = upd["s_set"].astype(str).str.split().map(lambda xs: "0" in xs)
        ev = R.evals[(R.evals["run"] == run)]
        final = ev[ev["step"] == ev["step"].max()].set_index("metric")["value"].to_dict()
        rows.append({"condition": g["condition"].iloc[0], "seed": g["seed"].iloc[0],
                     "reward_std": s["reward_std_mean"], "reward_t_corr": s["reward_t_corr_mean"],
                     "zero_in_S": float(zero.mean()), "drawn_tv": s["drawn_tv"],
                     "tv_final": s["tv_uniform_final"], **final})
    return pd.DataFrame(rows)


def table(df: pd.DataFrame) -> str:
    cols = [c for c in df.columns if c not in ("condition", "seed")]
    out = ["| condition | seeds | " + " | ".join(cols) + " |",
           "|---|---|" + "---|" * len(cols)]
    for cond, g in df.groupby("condition", sort=False):
        cells = []
        for c in cols:
            m, half, _, n = mean_ci(g[c].dropna())
            cells.append(f"{m:.4g} ± {half:.2g}" if n >= 2 else f"{m:.4g}")
        out.append(f"| {cond} | {len(g)} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results_dir")
    args = ap.parse_args(argv)
    try:
        df = per_run(load(args.results_dir))
    except ReportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if df.empty:
        print(f"error: {args.results_dir}: no adaptation rows (no learned run)", file=sys.stderr)
        return 2
    print(table(df))
    return 0


if __name__ == "__main__":
    sys.exit(main())
