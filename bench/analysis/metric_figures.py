"""The figures of evaluated metrics and the training log (matplotlib ``Figure`` objects, None
when the data is absent): the metric vs iteration, vs counted compute and vs wall-clock relative
to the baseline's "1D" (Kim et al. Fig. 1/7), the forest plot of differences from the baseline,
rliable's performance profiles, and the training loss."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bench.analysis.adaptation import unmarked
from bench.analysis.load import COUNTED
from bench.analysis.plotting import (add_note, figure, legend, nice_ticks,
                                     ordered_conditions, plot_conditions, protocol, schedules,
                                     titles)
from bench.analysis.stats import valid_range
from bench.analysis.style import (legend_key, metric_label, metric_unit, plain_log_axis,
                                  short_labels, step_axis, step_formatter, step_text, styles)
from bench.analysis.tables import AXIS_COLUMN, Unit, baseline_reference


def fig_metric_vs_iteration(ev: pd.DataFrame, unit: Unit, baseline: str = "uniform",
                            level: float = 0.95):
    """The metric vs training iteration, one panel per schedule (shared y): mean over seeds with
    the 95 % t-interval as a band (where ≥ 2 seeds have a value) clipped to the metric's valid
    range; x ticks at the evaluated steps."""
    data = unit.select(ev)
    data = data[data["status"].isin(COUNTED)]
    if data.empty:
        return None
    fig, axes, panels = _schedule_panels(data, "value", metric_label(unit.metric), baseline,
                                         level, valid_range(unit.metric))
    for ax, d in panels:
        step_axis(ax, d["step"])
    legend(fig, axes)
    titles(fig, f"{unit.metric} vs training iteration — {unit.setting}", protocol(unit))
    return fig


def _schedule_panels(data: pd.DataFrame, y: str, ylabel: str, baseline: str, level: float,
                     valid: tuple[float, float] = (-math.inf, math.inf), log: bool = False):
    """One panel per schedule (shared y) of ``y`` vs iteration per condition:
    (fig, axes, [(ax, rows)])."""
    scheds = schedules(data)
    fig, axes = figure(len(scheds), sharey=True)
    sty = styles(ordered_conditions(data, baseline))
    panels = []
    for j, (ax, sched) in enumerate(zip(axes[0], scheds)):
        d = data[data["schedule"] == sched]
        plot_conditions(ax, d, y, "step", sty, baseline, level, valid, log)
        ax.set(title=f"{sched} schedule", xlabel="training iteration")
        if j == 0:
            ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        panels.append((ax, d))
    return fig, axes, panels


RELATIVE_AXES = {   # axis (bench.analysis.tables.AXIS_COLUMN): (1D unit, x label)
    "cost": ("forward-equivalents", "training compute / 1D (counted forward-equivalents)"),
    "wall": ("s", "training wall-clock / 1D (measured: machine load\nshows up as strategy "
                  "cost — compare on counted compute)"),
}


def fig_metric_vs_relative(ev: pd.DataFrame, unit: Unit, axis: str = "cost",
                           baseline: str = "uniform", level: float = 0.95):
    """Kim et al. Fig. 1 / Fig. 7: the metric vs training cost relative to "1D", the baseline's
    mean cost to its final evaluation, one panel per schedule that has a done baseline run;
    ``axis`` "cost" (counted forward-equivalents, the primary axis) or "wall" (measured
    wall-clock). None when no schedule has a baseline with that axis."""
    if axis not in RELATIVE_AXES:
        raise ValueError(f"unknown axis {axis!r}; valid: {', '.join(RELATIVE_AXES)}")
    (unit_name, xlabel), col = RELATIVE_AXES[axis], AXIS_COLUMN[axis]
    data = unit.select(ev)
    data = data[data["status"].isin(COUNTED)]
    if col not in data:
        return None
    refs = {s: baseline_reference(data[(data["schedule"] == s) & (data["strategy"] == baseline)
                                       & (data["variant"] == "")], unit.lower_is_better)
            for s in schedules(data)}
    key = f"ref_{axis}"
    refs = {s: r for s, r in refs.items() if r and np.isfinite(r[key]) and r[key] > 0}
    if not refs:
        return None
    fig, axes = figure(len(refs), sharey=True)
    sty = styles(ordered_conditions(data, baseline))
    for j, (ax, (sched, ref)) in enumerate(zip(axes[0], refs.items())):
        d = data[data["schedule"] == sched]
        d = d.assign(rel=pd.to_numeric(d[col], errors="coerce") / ref[key])
        plot_conditions(ax, d, "value", "rel", sty, baseline, level, valid_range(unit.metric))
        ax.axvline(1.0, color="0.4", ls="--", lw=1)
        ax.annotate("1D", xy=(1.0, 0.97), xycoords=("data", "axes fraction"), xytext=(3, 0),
                    textcoords="offset points", va="top", ha="left", fontsize="small")
        lo, hi = ax.get_xlim()
        ax.set_xlim(lo, max(hi, 1.25))            # room for the "1D" label
        ax.set(title=f"{sched} schedule (1D = {ref[key]:.3g} {unit_name})", xlabel=xlabel)
        ax.title.set_fontsize("medium")
        if j == 0:
            ax.set_ylabel(metric_label(unit.metric))
        ax.grid(alpha=0.3)
    what = "counted training compute" if axis == "cost" else "measured training wall-clock"
    legend(fig, axes)
    titles(fig, f"{unit.metric} vs {what} relative to {baseline}'s 1D — {unit.setting}",
           protocol(unit))
    return fig


def fig_forest(vs: pd.DataFrame, unit: Unit, baseline: str = "uniform"):
    """A forest plot of ``tables.vs_baseline`` at its largest budget: per schedule panel (shared
    rows, in effect order: the best difference, averaged over the panels, on top), each
    condition's difference from the baseline (mean with its 95 % CI), zero dashed; None without
    a difference."""
    if vs.empty:
        return None
    d = vs[vs["budget"] == vs["budget"].max()].dropna(subset=["diff"])
    if d.empty:
        return None
    scheds = schedules(d)
    # rows in effect order, the best first (the mean difference over the schedule panels)
    effect = d.groupby("condition", sort=False)["diff"].mean()
    conds = sorted(effect.index, key=lambda c: (effect[c] if unit.lower_is_better
                                                else -effect[c], c))
    sty, short = styles(conds), short_labels(conds)
    fig, axes = figure(len(scheds), w=3.4, h=1.0 + 0.32 * len(conds), sharey=True)
    fig.set_figwidth(fig.get_figwidth() + 0.075 * max(len(x) for x in short.values()))
    add_note(fig, legend_key(conds))
    for j, (ax, sched) in enumerate(zip(axes[0], scheds)):
        s = d[d["schedule"] == sched].set_index("condition")
        for i, cond in enumerate(conds):
            if cond not in s.index:
                continue
            r, st = s.loc[cond], sty[cond]
            ci = r["diff_ci95"] if np.isfinite(r["diff_ci95"]) else 0.0
            ax.errorbar(r["diff"], i, xerr=ci, fmt=st.marker, color=st.color, ms=5, capsize=3,
                        mfc=st.color if st.filled else "white")
        ax.axvline(0.0, color="0.3", ls="--", lw=1)
        ax.set_yticks(range(len(conds)), [short[c] for c in conds] if j == 0 else [])
        ax.set_ylim(len(conds) - 0.5, -0.5)
        better = "negative" if unit.lower_is_better else "positive"
        u = metric_unit(unit.metric)
        ax.set(title=f"{sched} schedule",
               xlabel=f"Δ {unit.metric}{f' ({u})' if u else ''} vs {baseline} "
                      f"({better} = better)")
        ax.xaxis.set_major_locator(nice_ticks(5))
        ax.grid(alpha=0.3, axis="x")
    budget = int(d["budget"].iloc[0])
    titles(fig, f"{unit.metric}: difference from {baseline} at ≤ {step_text(budget)} "
                f"iterations — {unit.setting}",
           f"{protocol(unit)}; mean and 95 % CI over seeds, paired by seed where possible")
    return fig


def fig_profiles(profiles: pd.DataFrame, baseline: str = "uniform"):
    """Performance profiles (Agarwal et al. 2021, rliable) as small multiples: per strategy, the
    fraction of runs over every condition whose normalised score exceeds τ, with its
    stratified-bootstrap 95 % band, over the baseline's profile in grey; columns of
    ``profiles``: condition, tau, fraction, lo, hi."""
    if profiles.empty:
        return None
    conds = list(dict.fromkeys(profiles["condition"]))
    base = next((c for c in conds if unmarked(c).strip() == baseline), None)
    others = [c for c in conds if c != base] or conds
    ncols = min(4, len(others))
    nrows = math.ceil(len(others) / ncols)
    fig, axes = figure(ncols, nrows=nrows, w=2.6, h=2.1, sharey=True)
    sty, short = styles(conds), short_labels(conds)
    for ax in axes.flat[len(others):]:
        ax.set_visible(False)
    for k, (ax, cond) in enumerate(zip(axes.flat, others)):
        if base is not None:
            g = profiles[profiles["condition"] == base]
            ax.plot(g["tau"], g["fraction"], color="0.6", lw=1.0, drawstyle="steps-post")
        g, st = profiles[profiles["condition"] == cond], sty[cond]
        ax.plot(g["tau"], g["fraction"], color=st.color, ls=st.linestyle, lw=1.5,
                drawstyle="steps-post")
        ax.fill_between(g["tau"], g["lo"], g["hi"], color=st.color, alpha=0.15, lw=0,
                        step="post")
        ax.axvline(0.0, color="0.3", ls=":", lw=1)
        ax.set_title(short[cond], fontsize="small")
        ax.set(ylim=(0, 1))
        if k % ncols == 0:
            ax.set_ylabel("fraction of runs > τ")
        if k >= len(others) - ncols:
            ax.set_xlabel("τ (0 = baseline mean)")
        ax.grid(alpha=0.3)
    add_note(fig, legend_key(conds))
    titles(fig, "performance profiles across every condition",
           f"score = ({baseline} mean − value) / |{baseline} mean| per condition (sign flipped "
           f"for higher-is-better metrics); τ: relative improvement over {baseline}'s mean; "
           f"grey: {baseline}'s profile; stratified-bootstrap 95 % bands")
    return fig


def fig_train_loss(metrics: pd.DataFrame, setting: str, baseline: str = "uniform",
                   level: float = 0.95):
    """Training loss (the logged per-example ε-MSE, unweighted, averaged over the log interval)
    vs iteration, one panel per schedule (shared log y), mean over seeds with a 95 % band."""
    data = metrics[(metrics["setting"] == setting) & metrics["status"].isin(COUNTED)]
    data = data.dropna(subset=["loss"])
    if data.empty:
        return None
    log = bool((data["loss"] > 0).all())      # a log axis, its bands drawn in log space
    fig, axes, panels = _schedule_panels(data, "loss", metric_label("loss"), baseline, level,
                                         valid_range("loss"), log)
    for ax, _ in panels:
        ax.xaxis.set_major_formatter(step_formatter())
    if log:
        ax = axes[0, 0]
        ax.set_yscale("log")
        plain_log_axis(ax)
    legend(fig, axes)
    titles(fig, f"training loss — {setting}", "the logged per-example ε-MSE (unweighted), "
                "averaged over each log interval; geometric mean over seeds, 95 % band in log "
                "space; a non-uniform "
                "sampler averages other timesteps, so this is no figure of merit across "
                "strategies")
    return fig
