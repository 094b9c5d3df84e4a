"""docs/findings.md §6: does a strategy's ranking transfer from DDPM to flow matching? The
pre-registered endpoints from a results tree of sweeps/findings_transfer.yaml.

    python scripts/findings_transfer.py results/findings_transfer [--out results/findings_transfer/transfer.png]

Per process and arm: Δ (arm − that process's uniform) of the lowest NLL (the process's own bound)
and fd_cnn up to each budget, paired by seed, 95 % Student-t CI, and the verdict at 2000
iterations (bench.analysis.tables.vs_baseline). Across processes: Spearman's ρ of the 8 shared
strategies' mean Δ at 2000 iterations, with a percentile bootstrap CI (10 000 replicates, seeds
resampled independently per process); per-arm verdict agreement; the best heuristic per process;
the matched arms (uniform_of). The figure: each strategy's Δ on DDPM against its Δ on flow.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats
from matplotlib.figure import Figure

from bench.analysis.adaptation import summaries
from bench.analysis.load import load, read_config
from bench.analysis.tables import best_up_to, units, vs_baseline

SHARED = {          # the 8 strategies on both processes: condition -> short name
    "lognormal": "logit-normal", "lognormal(variant=edm)": "EDM log-normal",
    "laplace": "laplace", "u_shaped": "u_shaped", "min_snr": "min_snr",
    "soft_min_snr": "soft_min_snr", "grad_variance(refresh_every=100)": "grad_variance",
    "adaptive_beta(update_every=10,variant=low_variance)": "adaptive low-variance"}
HEURISTICS = ("lognormal", "lognormal(variant=edm)", "laplace", "u_shaped", "min_snr", "soft_min_snr")
MATCHED = {"ddpm": "uniform_of(process=flow)", "flow": "uniform_of"}
ADAPTIVE = "adaptive_beta(update_every=10,variant=low_variance)"
REPS = 10_000
BUDGET = 2000          # the verdicts' default budget (--budget)
NLL = {"ddpm": "nll_bpd", "flow": "nll_ode_bpd"}
PROCESSES = ("ddpm", "flow")


def metric_of(kind: str, process: str) -> str:
    """The metric column of ``kind`` (nll: the process's own bound, or fd_cnn) on ``process``."""
    return NLL[process] if kind == "nll" else kind


def unit_of(ev: pd.DataFrame, kind: str, process: str):
    """The one evaluation unit of metric ``kind`` on ``process`` (``ev`` has a process column)."""
    (unit,) = units(ev[ev["process"] == process], [metric_of(kind, process)])
    return unit


def seed_matrix(ev: pd.DataFrame, kind: str, process: str, budget: int) -> pd.DataFrame:
    """Seeds × conditions: the lowest value up to ``budget`` (the metric's best), one process."""
    per = best_up_to(unit_of(ev, kind, process).select(ev), [budget]).dropna(subset=["value"])
    return per.pivot_table(index="seed", columns="strategy", values="value")


def seed_deltas(m: pd.DataFrame) -> np.ndarray:
    """Seeds × shared strategies: arm − uniform, paired by seed."""
    return m[list(SHARED)].sub(m["uniform"], axis=0).to_numpy()


def rho_with_ci(mats: dict[str, pd.DataFrame], rng: np.random.Generator) -> tuple:
    """Spearman's ρ of the shared strategies' mean Δ on the two processes, and its percentile
    bootstrap 95 % CI (seeds resampled with replacement, independently per process)."""
    d = {p: seed_deltas(m) for p, m in mats.items()}
    point = scipy.stats.spearmanr(d["ddpm"].mean(0), d["flow"].mean(0)).statistic
    reps = []
    for _ in range(REPS):
        means = [x[rng.integers(0, x.shape[0], x.shape[0])].mean(0)
                 for x in (d["ddpm"], d["flow"])]
        r = scipy.stats.spearmanr(*means).statistic
        if math.isfinite(r):
            reps.append(r)
    lo, hi = np.percentile(reps, [2.5, 97.5])
    return float(point), float(lo), float(hi), len(reps)


def fmt(row) -> str:
    return f"{row['diff']:+.3f} ± {row['diff_ci95']:.3f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results_dir")
    ap.add_argument("--out", help="figure path (default RESULTS_DIR/transfer.png)")
    ap.add_argument("--seed", type=int, default=0, help="the bootstrap's random seed")
    ap.add_argument("--budget", type=int, default=BUDGET, help="the verdicts' budget (iterations)")
    args = ap.parse_args(argv)
    budget = args.budget
    R = load(args.results_dir)
    process_of = {r.setting: read_config(Path(r.path))["process"]["name"]
                  for r in R.runs.itertuples()}
    ev = R.counted(R.evals)
    ev = ev.assign(process=ev["setting"].map(process_of))
    if budget not in set(ev["step"]):
        ap.error(f"--budget {budget} is not an evaluated iteration; valid: "
                 + ", ".join(str(s) for s in sorted(set(ev["step"]))))

    summ = summaries(R.counted(R.timesteps["adaptation"]))
    adapted = {process_of[s]: (int(g["adapted"].sum()), len(g))
               for s, g in summ[summ["condition"] == ADAPTIVE].groupby("setting")}

    tables = {(kind, p): vs_baseline(ev, unit_of(ev, kind, p)).set_index(["strategy", "budget"])
              for kind in ("nll", "fd_cnn") for p in PROCESSES}

    for metric_kind in ("nll", "fd_cnn"):
        print(f"\n### Δ {metric_kind} vs the process's uniform (lowest up to each budget; "
              f"95 % CI, paired by seed)\n")
        budgets = sorted({b for _, b in tables[metric_kind, "ddpm"].index})
        print("| arm | " + " | ".join(f"{p} ≤ {b}" for p in ("DDPM", "flow") for b in budgets)
              + " | verdict DDPM | verdict flow |")
        print("|---|" + "---|" * (2 * len(budgets) + 2))
        for cond in [*SHARED, "matched"]:
            cells, verdicts = [], []
            for process in PROCESSES:
                t = tables[metric_kind, process]
                c = MATCHED[process] if cond == "matched" else cond
                for b in budgets:
                    cells.append(fmt(t.loc[(c, b)]) if (c, b) in t.index else "—")
                verdicts.append(t.loc[(c, budget), "verdict"] if (c, budget) in t.index else "—")
            name = SHARED.get(cond, "matched (the other's uniform)")
            print(f"| {name} | " + " | ".join(cells) + f" | {verdicts[0]} | {verdicts[1]} |")

    print(f"\nadaptive low-variance adapted: DDPM {adapted.get('ddpm')}, flow {adapted.get('flow')}"
          " (adapted, seeds)")

    rng = np.random.default_rng(args.seed)
    print(f"\n### Transfer: Spearman ρ of the 8 strategies' mean Δ at {budget} iterations\n")
    for metric_kind in ("nll", "fd_cnn"):
        mats = {p: seed_matrix(ev, metric_kind, p, budget) for p in PROCESSES}
        rho, lo, hi, n = rho_with_ci(mats, rng)
        rule = "transfers" if lo > 0 else "does not transfer"
        print(f"- {metric_kind}: ρ = {rho:+.2f}, 95 % bootstrap CI [{lo:+.2f}, {hi:+.2f}] "
              f"({n} replicates with a defined ρ) → **{rule}**")

    print(f"\n### Per arm: the same NLL verdict at {budget} iterations on both?\n")
    agree = 0
    for cond, name in SHARED.items():
        v = [tables["nll", p].loc[(cond, budget), "verdict"] for p in PROCESSES]
        agree += v[0] == v[1]
        print(f"- {name}: DDPM {v[0]}, flow {v[1]}" + (" — same" if v[0] == v[1] else ""))
    print(f"- {agree} of {len(SHARED)} agree")

    print(f"\n### The stronger baseline (lowest mean NLL among the fixed heuristics at {budget})\n")
    for p in PROCESSES:
        t = tables["nll", p]
        best = min(HEURISTICS, key=lambda c: t.loc[(c, budget), "mean"])
        row = t.loc[(best, budget)]
        stronger = SHARED[best] if row["verdict"] == "better" else "uniform"
        print(f"- {p}: best heuristic {SHARED[best]} (Δ {fmt(row)}, {row['verdict']}) → the "
              f"stronger baseline: **{stronger}**")

    out = Path(args.out) if args.out else Path(args.results_dir) / "transfer.png"
    fig = Figure(figsize=(11, 4.4), layout="constrained")
    for i, metric_kind in enumerate(("nll", "fd_cnn")):
        ax = fig.add_subplot(1, 2, i + 1)
        for cond, name in SHARED.items():
            a, b = (tables[metric_kind, p].loc[(cond, budget)] for p in PROCESSES)
            ax.errorbar(a["diff"], b["diff"], xerr=a["diff_ci95"], yerr=b["diff_ci95"],
                        fmt="o", ms=4, capsize=2, label=name)
        ax.axhline(0, color="grey", lw=0.6)
        ax.axvline(0, color="grey", lw=0.6)
        unit = "bits/dim" if metric_kind == "nll" else "fd_cnn"
        ax.set_xlabel(f"Δ {metric_kind} vs uniform on DDPM ({unit})")
        ax.set_ylabel(f"Δ {metric_kind} vs uniform on flow ({unit})")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right center", fontsize=8)
    n = ev.groupby("process")["seed"].nunique().min()
    fig.suptitle(f"§6: each strategy's difference from its process's uniform at {budget} "
                 f"iterations (mean, 95 % CI over {n} seeds)", fontsize=10)
    fig.savefig(out, dpi=130)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
