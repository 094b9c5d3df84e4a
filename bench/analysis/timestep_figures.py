"""The figures of how strategies draw timesteps (matplotlib ``Figure`` objects, None when the
data is absent): did a learned sampler adapt (TV from uniform vs iteration), the per-timestep
loss and gradient variance across training (Kim et al. Fig. 2/6), and p(t) across training, also
with the fixed loss weights folded in (Fig. 5) — with the densities those figures plot."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bench.analysis.load import COUNTED
from bench.analysis.plotting import (add_note, figure, first_run, legend, nice_ticks,
                                     ordered_conditions, schedules, snapshots, titles)
from bench.analysis.style import (legend_key, plain_log_axis, short_labels, step_formatter,
                                  styles)


def fig_adaptation(adaptation: pd.DataFrame, setting: str, threshold: float,
                   baseline: str = "uniform"):
    """Did the learned samplers adapt? Small multiples — one panel per learned condition (a row
    per schedule) — of the total variation of p(t) from uniform at every update (solid) and of
    the histogram of the t drawn so far (dashed; the report's "did not adapt" test) vs iteration:
    each seed thin, the median over seeds bold; the threshold dotted."""
    d = adaptation[(adaptation["setting"] == setting) & adaptation["status"].isin(COUNTED)]
    if d.empty:
        return None
    scheds, conds = schedules(d), ordered_conditions(d, baseline)
    fig, axes = figure(len(conds), nrows=len(scheds), w=2.5, h=2.1, sharey=True)
    sty, short = styles(conds), short_labels(conds)
    for row, sched in enumerate(scheds):
        for col, cond in enumerate(conds):
            ax, st = axes[row, col], sty[cond]
            s = d[(d["schedule"] == sched) & (d["condition"] == cond)]
            for y, ls in (("tv_uniform", "-"), ("drawn_tv", "--")):
                if s.empty:
                    continue
                wide = s.pivot_table(index="step", columns="run", values=y, aggfunc="last")
                for run in wide:
                    ax.plot(wide.index, wide[run], color=st.color, lw=0.7, ls=ls, alpha=0.35)
                ax.plot(wide.index, wide.median(axis=1), color=st.color, lw=2.0, ls=ls)
            ax.axhline(threshold, color="0.3", ls=":", lw=1)
            ax.set_title(short[cond] + (f" — {sched}" if len(scheds) > 1 else ""),
                         fontsize="small")
            ax.set(ylim=(0, 1))
            if col == 0:
                ax.set_ylabel("TV from uniform")
            if row == len(scheds) - 1:
                ax.set_xlabel("training iteration")
            ax.xaxis.set_major_locator(nice_ticks(4))
            ax.xaxis.set_major_formatter(step_formatter())
            ax.grid(alpha=0.3)
    add_note(fig, legend_key(conds))
    titles(fig, f"adaptation of the learned strategies — {setting}",
           f"solid: p(t) at each update; dashed: the t drawn so far (what the verdict uses); "
           f"thin: one seed, bold: the median over seeds; dotted: the 'did not adapt' threshold "
           f"{threshold:g}")
    return fig


def fig_timestep_diagnostics(diag: pd.DataFrame, setting: str, condition: str,
                             weighting: str = "ddpm"):
    """Kim et al. Fig. 2 (``ddpm`` weighting) / Fig. 6 (``vlb``): gradient variance (top) and loss
    (bottom) per timestep bin at each diagnostics snapshot, sequential colours from early (dark)
    to late (light); one column per schedule, the run with the lowest seed of each."""
    d = diag[(diag["setting"] == setting) & (diag["condition"] == condition)
             & (diag["weighting"] == weighting) & diag["status"].isin(COUNTED)]
    if d.empty:
        return None
    scheds = schedules(d)
    rows = [(col, text) for col, text in (("grad_var", "gradient variance"),
                                          ("loss", f"loss ({weighting} weighting)"))
            if pd.to_numeric(d[col], errors="coerce").notna().any()]
    if not rows:
        return None
    fig, axes = figure(len(scheds), len(rows), h=2.8, sharey=True)
    color = snapshots(fig, axes, d["step"])
    for j, sched in enumerate(scheds):
        r = first_run(d[d["schedule"] == sched])
        for step, g in r.groupby("step"):
            t = (g["t_lo"] + g["t_hi"]) / 2.0
            for i, (col, _) in enumerate(rows):
                axes[i, j].plot(t, g[col], color=color(step), lw=1.3)
        axes[0, j].set(title=f"{sched} schedule (seed {r['seed'].iloc[0]})")
        axes[-1, j].set(xlabel="timestep t")
        for i, (col, text) in enumerate(rows):
            if j == 0:
                axes[i, j].set_ylabel(text)
            if (r[col].dropna() > 0).all() and r[col].notna().any():
                axes[i, j].set_yscale("log")
                plain_log_axis(axes[i, j])
            axes[i, j].grid(alpha=0.3)
    what = " and ".join(text.split(" (")[0] for _, text in rows)
    titles(fig, f"per-timestep {what} across training — {condition}",
           f"{weighting} weighting; {setting}")
    return fig


def t_hist_density(t_hist: pd.DataFrame) -> pd.DataFrame:
    """The histogram of drawn t as a density per timestep: p = count / (total × bin width) on
    [t_lo, t_hi), per snapshot (``step``; ``total`` = draws since the previous snapshot)."""
    out = t_hist[["step", "t_lo", "t_hi", "count"]].copy()
    total = out.groupby("step")["count"].transform("sum")
    out["p"] = out["count"] / (total * (out["t_hi"] - out["t_lo"]).clip(lower=1))
    return out


def effective_p_t(p_t: pd.DataFrame, weights: dict[str, np.ndarray]) -> pd.DataFrame:
    """Kim et al. Fig. 5's convention: a strategy's p(t) with its loss weights "converted to
    probabilities", p(t)·w(t)/Σ_τ p(τ)·w(τ) per snapshot; ``weights``: run → w [T] (runs absent
    from it keep p)."""
    out = p_t.copy()
    for run, w in weights.items():
        m = out["run"] == run
        if not m.any():
            continue
        t = out.loc[m, "t"].to_numpy(dtype=int)
        out.loc[m, "p"] = out.loc[m, "p"].to_numpy() * np.asarray(w, dtype=float)[t]
    total = out.groupby(["run", "step"])["p"].transform("sum")
    out["p"] = out["p"] / total.where(total > 0)
    return out


def fig_p_t(p_t: pd.DataFrame, t_hist: pd.DataFrame, setting: str, schedule: str,
            baseline: str = "uniform", weighted: bool = False):
    """Kim et al. Fig. 5: each strategy's timestep distribution across training as T·p(t)
    (1 = uniform, dotted; y from 0), one panel per condition (the run with the lowest seed),
    sequential colours from early (dark) to late (light): the strategy's ``probabilities()``
    snapshots (p_t.csv), else the density of the t it drew (t_hist.csv, ``t_hist_density``).
    ``weighted``: ``p_t`` is ``effective_p_t`` (the loss weights folded in), labelled so. Each
    panel's y runs from 0 to at least 2, so a flat T·p(t) = 1 reads as flat."""
    sel = [df[(df["setting"] == setting) & (df["schedule"] == schedule)
              & df["status"].isin(COUNTED)] for df in (p_t, t_hist)]
    conds = ordered_conditions(pd.concat([s[["condition", "strategy"]] for s in sel]), baseline)
    if not conds:
        return None
    ncols = min(len(conds), 4)
    nrows = math.ceil(len(conds) / ncols)
    fig, axes = figure(ncols, nrows, w=3.6, h=2.9)
    steps = pd.concat([s["step"] for s in sel])
    color = snapshots(fig, axes, steps)
    quantity = "T·p(t)·w(t) / Σ p·w" if weighted else "T·p(t)"
    short = short_labels(conds)
    add_note(fig, legend_key(conds))
    for ax, cond in zip(axes.flat, conds):
        p, h = (s[s["condition"] == cond] for s in sel)
        src = first_run(p if len(p) else h)
        run = src["run"].iloc[0]
        p, h = p[p["run"] == run], h[h["run"] == run]
        what = ("p·w" if weighted else "p(t)") if len(p) else "drawn t"
        top = 2.0
        for step, g in (p if len(p) else t_hist_density(h)).groupby("step"):
            if len(p):
                y = len(g) * g["p"]                       # T·p(t)
                ax.plot(g["t"], y, color=color(step), lw=1.3)
            else:
                g = g.sort_values("t_lo")
                y = g["t_hi"].max() * g["p"]
                ax.stairs(y, [*g["t_lo"], g["t_hi"].iloc[-1]], color=color(step), lw=1.3,
                          baseline=None)
            top = max(top, float(np.nanmax(y)))
        ax.axhline(1.0, color="0.3", ls=":", lw=1)
        ax.set_title(f"{short[cond]} (seed {src['seed'].iloc[0]}, {what})", fontsize="medium")
        ax.set(xlabel="timestep t", ylim=(0, top * 1.05))
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel(f"{quantity}  (1 = uniform)")
    for ax in list(axes.flat)[len(conds):]:
        ax.set_visible(False)
    extra = " with the loss weights" if weighted else ""
    titles(fig, f"timestep distributions across training{extra} — {schedule} schedule, "
                f"{setting}",
           f"{quantity} from the strategy's p(t) where it has one, else from the histogram of the "
           "t it drew between snapshots" + ("; fixed loss weights w folded in (Kim et al. "
                                            "Fig. 5's convention)" if weighted else ""))
    return fig
