"""Figures (matplotlib ``Figure`` objects, no pyplot state): metric vs iteration, metric vs
wall-clock relative to the baseline's time "1D" (Fig. 1/7), training loss, per-timestep loss and
gradient variance across training (Fig. 2/6), p(t) across training (Fig. 5)."""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np
import pandas as pd

from bench.analysis.load import COUNTED, schedule_key
from bench.analysis.stats import lower_is_better, mean_ci
from bench.analysis.tables import AXIS_COLUMN, Unit, baseline_reference

# ---------------------------------------------------------------------------- figures
# Every figure function returns a matplotlib Figure (or None when its data is absent) and keeps
# no pyplot state; bench.report saves them. Colours are fixed per condition within a figure.
TIME_CMAP = "coolwarm_r"     # early snapshots red, late ones blue (Kim et al. Fig. 2, 5, 6)


def _figure(ncols: int, nrows: int = 1, w: float = 4.2, h: float = 3.3):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w * ncols + 0.6, h * nrows + 0.5), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _suptitle(fig, text: str) -> None:
    """A figure title wrapped to the figure's width (long setting labels)."""
    import textwrap

    width = max(int(fig.get_figwidth() * 11), 40)
    fig.suptitle(textwrap.fill(text, width))


def _colors(conditions: Iterable[str]) -> dict[str, Any]:
    """One colour per condition: tab10 up to 10 conditions, tab20 up to 20 (then they repeat)."""
    from matplotlib import colormaps

    conds = list(dict.fromkeys(conditions))
    cmap = colormaps["tab10" if len(conds) <= 10 else "tab20"]
    return {c: cmap(i % cmap.N) for i, c in enumerate(conds)}


def _schedules(df: pd.DataFrame) -> list[str]:
    return sorted(set(df["schedule"]), key=schedule_key)


def ordered_conditions(df: pd.DataFrame, baseline: str) -> list[str]:
    pairs = df[["condition", "strategy"]].drop_duplicates()
    return [c for _, c in sorted((s != baseline, c) for c, s in pairs.itertuples(index=False))]


def curve(df: pd.DataFrame, y: str, x: str = "step", level: float = 0.95) -> pd.DataFrame:
    """Per ``step``: mean of ``x`` and of ``y`` over the runs (seeds), the CI half-width of ``y``
    (NaN below 2 runs) and n."""
    rows = []
    for step, g in df.groupby("step", sort=True):
        m, half, _, n = mean_ci(g[y], level)
        rows.append({"step": step, "x": float(g[x].mean()), "mean": m, "ci95": half, "n": n})
    return pd.DataFrame(rows, columns=["step", "x", "mean", "ci95", "n"])


def _plot_curve(ax, c: pd.DataFrame, color, label: str) -> None:
    c = c.dropna(subset=["mean"])
    ax.plot(c["x"], c["mean"], marker="o", ms=3, color=color, label=label)
    band = c[c["n"] >= 2]
    if len(band):
        ax.fill_between(band["x"], band["mean"] - band["ci95"], band["mean"] + band["ci95"],
                        color=color, alpha=0.2, linewidth=0)


def _legend(fig, axes) -> None:
    handles, labels = {}, []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    if handles:
        # Short legends go below the panels; long ones to the right, one column, so the panels
        # keep their height (the CLI saves with bbox_inches="tight").
        below = len(labels) <= 4 and max(map(len, labels)) <= 24
        if not below:  # widen the figure by the legend's width (small font ≈ 0.075 in a char)
            fig.set_figwidth(fig.get_figwidth() + 0.6 + 0.075 * max(map(len, labels)))
        fig.legend([handles[lab] for lab in labels], labels,
                   loc="outside lower center" if below else "outside right center",
                   ncols=len(labels) if below else 1, fontsize="small")


def _integer_x(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _ylabel(metric: str) -> str:
    return f"{metric} ({'lower' if lower_is_better(metric) else 'higher'} is better)"


def _plot_conditions(ax, d: pd.DataFrame, y: str, x: str, colors: dict, baseline: str,
                     level: float) -> None:
    """One mean curve (with its band) of ``y`` vs ``x`` per condition of ``d``, baseline first."""
    for cond in ordered_conditions(d, baseline):
        _plot_curve(ax, curve(d[d["condition"] == cond], y, x, level), colors[cond], cond)


def fig_metric_vs_iteration(ev: pd.DataFrame, unit: Unit, baseline: str = "uniform",
                            level: float = 0.95):
    """The metric vs training iteration, one panel per schedule: mean over seeds with the 95 %
    t-interval as a band (where ≥ 2 seeds have a value)."""
    data = unit.select(ev)
    data = data[data["status"].isin(COUNTED)]
    if data.empty:
        return None
    fig, axes, _ = _schedule_panels(data, "value", _ylabel(unit.metric), baseline, level)
    _suptitle(fig, unit.title)
    _legend(fig, axes)
    return fig


def _schedule_panels(data: pd.DataFrame, y: str, ylabel: str, baseline: str, level: float):
    """One panel per schedule of ``y`` vs iteration per condition: (fig, axes, [(ax, rows)])."""
    scheds = _schedules(data)
    fig, axes = _figure(len(scheds))
    colors = _colors(ordered_conditions(data, baseline))
    panels = []
    for ax, sched in zip(axes[0], scheds):
        d = data[data["schedule"] == sched]
        _plot_conditions(ax, d, y, "step", colors, baseline, level)
        ax.set(title=sched, xlabel="iteration", ylabel=ylabel)
        _integer_x(ax)
        ax.grid(alpha=0.3)
        panels.append((ax, d))
    return fig, axes, panels


RELATIVE_AXES = {   # axis (bench.analysis.tables.AXIS_COLUMN): (1D unit, x label)
    "cost": ("forward-equivalents", "training compute / 1D ({baseline}; counted "
                                    "forward-equivalents)"),
    "wall": ("s", "training wall-clock / 1D ({baseline}; measured)"),
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
            for s in _schedules(data)}
    key = f"ref_{axis}"
    refs = {s: r for s, r in refs.items() if r and np.isfinite(r[key]) and r[key] > 0}
    if not refs:
        return None
    fig, axes = _figure(len(refs))
    colors = _colors(ordered_conditions(data, baseline))
    for ax, (sched, ref) in zip(axes[0], refs.items()):
        d = data[data["schedule"] == sched]
        d = d.assign(rel=pd.to_numeric(d[col], errors="coerce") / ref[key])
        _plot_conditions(ax, d, "value", "rel", colors, baseline, level)
        ax.axvline(1.0, color="0.4", ls="--", lw=1)
        ax.text(1.0, 1.0, " 1D", transform=ax.get_xaxis_transform(), va="top", fontsize="small")
        ax.set(title=f"{sched} (1D = {ref[key]:.4g} {unit_name})", ylabel=_ylabel(unit.metric),
               xlabel=xlabel.format(baseline=baseline))
        ax.grid(alpha=0.3)
    _suptitle(fig, unit.title)
    _legend(fig, axes)
    return fig


def fig_adaptation(adaptation: pd.DataFrame, setting: str, threshold: float,
                   baseline: str = "uniform"):
    """Did the learned samplers adapt? Per schedule, the total variation of each learned run's
    p(t) from uniform at every update (solid) and of the histogram of the t it drew so far
    (dashed; the report's "did not adapt" test) vs iteration, the threshold dotted."""
    d = adaptation[(adaptation["setting"] == setting) & adaptation["status"].isin(COUNTED)]
    if d.empty:
        return None
    scheds = _schedules(d)
    fig, axes = _figure(len(scheds))
    colors = _colors(ordered_conditions(d, baseline))
    for ax, sched in zip(axes[0], scheds):
        s = d[d["schedule"] == sched]
        for cond in ordered_conditions(s, baseline):
            for i, (_, r) in enumerate(s[s["condition"] == cond].groupby("run", sort=True)):
                r = r.sort_values("step")
                ax.plot(r["step"], r["tv_uniform"], color=colors[cond], lw=1.1,
                        label=cond if i == 0 else None)
                ax.plot(r["step"], r["drawn_tv"], color=colors[cond], lw=1.0, ls="--")
        ax.axhline(threshold, color="0.3", ls=":", lw=1)
        ax.set(title=sched, xlabel="iteration", ylabel="total variation from uniform",
               ylim=(0, 1))
        _integer_x(ax)
        ax.grid(alpha=0.3)
    _suptitle(fig, f"adaptation of the learned strategies — {setting} (solid: p(t) at each "
                   f"update; dashed: the t drawn so far; dotted: threshold {threshold:g})")
    _legend(fig, axes)
    return fig


def fig_train_loss(metrics: pd.DataFrame, setting: str, baseline: str = "uniform",
                   level: float = 0.95):
    """Training loss (the logged per-example ε-MSE, unweighted, averaged over the log interval)
    vs iteration, one panel per schedule, mean over seeds with a 95 % band."""
    data = metrics[(metrics["setting"] == setting) & metrics["status"].isin(COUNTED)]
    data = data.dropna(subset=["loss"])
    if data.empty:
        return None
    fig, axes, panels = _schedule_panels(data, "loss", "training loss (ε-MSE)", baseline, level)
    for ax, d in panels:
        if (d["loss"] > 0).all():
            ax.set_yscale("log")      # the y-range follows the curves, not the (wide) bands
            lo, hi = d.groupby(["condition", "step"])["loss"].mean().agg(["min", "max"])
            ax.set_ylim(lo / 1.5, hi * 1.5)
    _suptitle(fig, f"training loss — {setting}")
    _legend(fig, axes)
    return fig


def _first_run(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of the run with the lowest seed (then run name) among ``df``'s runs."""
    first = df.sort_values(["seed", "run"]).iloc[0]["run"]
    return df[df["run"] == first]


def _time_colorbar(fig, axes, steps: Iterable[float]):
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    steps = list(steps)
    norm = Normalize(min(steps), max(steps) if max(steps) > min(steps) else min(steps) + 1)
    sm = ScalarMappable(norm=norm, cmap=colormaps[TIME_CMAP])
    fig.colorbar(sm, ax=axes, label="training iteration", shrink=0.9)
    return lambda s: sm.to_rgba(s)


def fig_timestep_diagnostics(diag: pd.DataFrame, setting: str, condition: str,
                             weighting: str = "ddpm"):
    """Kim et al. Fig. 2 (``ddpm`` weighting) / Fig. 6 (``vlb``): gradient variance (top) and loss
    (bottom) per timestep bin at each diagnostics snapshot, coloured from early (red) to late
    (blue); one column per schedule, the run with the lowest seed of each."""
    d = diag[(diag["setting"] == setting) & (diag["condition"] == condition)
             & (diag["weighting"] == weighting) & diag["status"].isin(COUNTED)]
    if d.empty:
        return None
    scheds = _schedules(d)
    fig, axes = _figure(len(scheds), 2, h=2.8)
    color = _time_colorbar(fig, axes, d["step"])
    for j, sched in enumerate(scheds):
        r = _first_run(d[d["schedule"] == sched])
        for step, g in r.groupby("step"):
            t = (g["t_lo"] + g["t_hi"]) / 2.0
            axes[0, j].plot(t, g["grad_var"], color=color(step), lw=1.2)
            axes[1, j].plot(t, g["loss"], color=color(step), lw=1.2)
        axes[0, j].set(title=f"{sched} (seed {r['seed'].iloc[0]})", ylabel="gradient variance")
        axes[1, j].set(xlabel="timestep t", ylabel=f"loss ({weighting} weighting)")
        for i, col in ((0, "grad_var"), (1, "loss")):
            if (r[col].dropna() > 0).all() and r[col].notna().any():
                axes[i, j].set_yscale("log")
            axes[i, j].grid(alpha=0.3)
    _suptitle(fig, f"per-timestep diagnostics — {condition} ({weighting} weighting)")
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
            baseline: str = "uniform"):
    """Kim et al. Fig. 5: each strategy's timestep distribution across training (one panel per
    condition, the run with the lowest seed), coloured from early (red) to late (blue): the
    strategy's ``probabilities()`` snapshots (p_t.csv), else the density of the t it drew
    (t_hist.csv, ``t_hist_density``)."""
    sel = [df[(df["setting"] == setting) & (df["schedule"] == schedule)
              & df["status"].isin(COUNTED)] for df in (p_t, t_hist)]
    conds = ordered_conditions(pd.concat([s[["condition", "strategy"]] for s in sel]), baseline)
    if not conds:
        return None
    ncols = min(len(conds), 4)
    nrows = math.ceil(len(conds) / ncols)
    fig, axes = _figure(ncols, nrows, w=3.6, h=2.8)
    steps = pd.concat([s["step"] for s in sel])
    color = _time_colorbar(fig, axes, steps)
    for ax, cond in zip(axes.flat, conds):
        p, h = (s[s["condition"] == cond] for s in sel)
        src = _first_run(p if len(p) else h)
        run = src["run"].iloc[0]
        p, h = p[p["run"] == run], h[h["run"] == run]
        what = "p(t)" if len(p) else "histogram of drawn t"
        for step, g in (p if len(p) else t_hist_density(h)).groupby("step"):
            if len(p):
                ax.plot(g["t"], g["p"], color=color(step), lw=1.2)
            else:
                g = g.sort_values("t_lo")
                ax.stairs(g["p"], [*g["t_lo"], g["t_hi"].iloc[-1]], color=color(step), lw=1.2,
                          baseline=None)
        ax.set(title=f"{cond}\n(seed {src['seed'].iloc[0]}, {what})", xlabel="timestep t",
               ylabel="p(t)")
        ax.title.set_fontsize("small")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(conds):]:
        ax.set_visible(False)
    _suptitle(fig, f"timestep distributions across training — {schedule}, {setting}")
    return fig
