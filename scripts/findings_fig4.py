"""docs/findings.md §2 (Kim et al. 2025 Fig. 4): the change of the per-timestep loss after training
only on t < 0.2T, against a uniform control that shares the first iterations exactly.

    python scripts/findings_fig4.py results/findings_fig4 [--out results/findings_fig4/fig4.png]

Reads every run's timesteps/diagnostics.csv (ddpm weighting) at the two diagnostics steps; per
seed and run: Δ(bin) = loss(after) − loss(before); R = mean Δ over the bins the range run did not
sample, F = −mean Δ over the bins it sampled. Prints per-seed values and mean ± 95 % t-interval
of R, F and R − F for both runs, and draws Δ per bin (mean over seeds with the interval).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from bench.analysis.load import Results, load, read_config
from bench.analysis.stats import mean_ci


def deltas(R: Results) -> tuple[pd.DataFrame, float]:
    """Rows (run kind, seed, t_lo, t_hi, delta) and the range's upper edge (fraction of T)."""
    d = R.counted(R.timesteps["diagnostics"])
    d = d[d["weighting"] == "ddpm"]
    steps = sorted(d["step"].unique())
    if len(steps) != 2:
        raise SystemExit(f"error: expected diagnostics at two steps, found {steps}")
    before, after = steps
    cfgs = {r: read_config(Path(p)) for r, p in zip(R.runs["run"], R.runs["path"])}
    rows, high = [], None
    for run, g in d.groupby("run"):
        s = cfgs[run]["strategy"]
        kind = "range" if s["name"] == "uniform_range" else "control"
        if kind == "range":
            high = float(s["high"])
        b = g[g["step"] == before].set_index("t_bin")
        a = g[g["step"] == after].set_index("t_bin")
        for k in b.index:
            rows.append({"kind": kind, "seed": int(b.loc[k, "seed"]), "t_lo": int(b.loc[k, "t_lo"]),
                         "t_hi": int(b.loc[k, "t_hi"]),
                         "delta": float(a.loc[k, "loss"] - b.loc[k, "loss"])})
    if high is None:
        raise SystemExit("error: no uniform_range run in this tree")
    return pd.DataFrame(rows), high


def endpoints(df: pd.DataFrame, T_cut: int) -> pd.DataFrame:
    out = []
    for (kind, seed), g in df.groupby(["kind", "seed"]):
        sampled = g["t_hi"] <= T_cut
        R = float(g.loc[~sampled, "delta"].mean())
        F = -float(g.loc[sampled, "delta"].mean())
        out.append({"kind": kind, "seed": seed, "R": R, "F": F, "R_minus_F": R - F})
    return pd.DataFrame(out)


def figure(df: pd.DataFrame, T_cut: int, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.6), layout="constrained")
    ax = fig.subplots()
    for kind, color in (("range", "tab:red"), ("control", "tab:blue")):
        g = df[df["kind"] == kind]
        stats = [(t_lo, t_hi, *mean_ci(v["delta"])[:2])
                 for (t_lo, t_hi), v in g.groupby(["t_lo", "t_hi"])]
        mid = np.array([(a + b) / 2 for a, b, _, _ in stats])
        m = np.array([s[2] for s in stats])
        h = np.array([s[3] for s in stats])
        label = ("trained on t < %d only" % T_cut) if kind == "range" else "uniform (control)"
        ax.plot(mid, m, marker="o", ms=3, color=color, label=label)
        ax.fill_between(mid, m - h, m + h, color=color, alpha=0.2, linewidth=0)
    ax.axhline(0, color="0.3", lw=0.8)
    ax.axvline(T_cut, color="0.3", ls="--", lw=0.8)
    ax.set(xlabel="timestep t", ylabel="Δ loss (after − before), ε-MSE",
           title="Fig. 4: loss change per timestep (mean ± 95 % CI over seeds)")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=130)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results_dir")
    ap.add_argument("--out", help="figure path (default RESULTS_DIR/fig4.png)")
    args = ap.parse_args(argv)
    R = load(args.results_dir)
    df, high = deltas(R)
    T = int(df["t_hi"].max())
    cut = round(high * T)
    ep = endpoints(df, cut)
    print(ep.to_string(index=False, float_format=lambda x: f"{x:.5f}"))
    print()
    print("| run | R (mean rise, unsampled bins) | F (mean fall, sampled bins) | R − F |")
    print("|---|---|---|---|")
    for kind, g in ep.groupby("kind", sort=False):
        cells = []
        for c in ("R", "F", "R_minus_F"):
            m, h, _, n = mean_ci(g[c])
            cells.append(f"{m:+.5f} ± {h:.5f} (n={n})")
        print(f"| {kind} | " + " | ".join(cells) + " |")
    figure(df, cut, Path(args.out) if args.out else Path(args.results_dir) / "fig4.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
