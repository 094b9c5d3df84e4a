"""Figures (matplotlib ``Figure`` objects, no pyplot state): metric vs iteration, metric vs
wall-clock relative to the baseline's time "1D" (Fig. 1/7), training loss, per-timestep loss and
gradient variance across training (Fig. 2/6), p(t) across training (Fig. 5)."""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np
import pandas as pd

from bench.analysis.load import COUNTED, schedule_key
from bench.analysis.stats import mean_ci, valid_range
from bench.analysis.style import (LEGEND_SNAPSHOTS, SNAPSHOT_CMAP, SNAPSHOT_RANGE, Style,
                                  metric_label, metric_unit, plain_log_axis, protocol_text,
                                  snapshot_colors, step_axis, step_formatter, step_text, styles,
                                  wrap_label)
from bench.analysis.tables import AXIS_COLUMN, Unit, baseline_reference

# ---------------------------------------------------------------------------- figures
# Every figure function returns a matplotlib Figure (or None when its data is absent) and keeps
# no pyplot state; bench.report saves them. Styles (colour, marker, line) are fixed per strategy
# by bench.analysis.style, the same in every figure.


def _figure(ncols: int, nrows: int = 1, w: float = 4.2, h: float = 3.3, sharey: bool = False):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w * ncols + 0.6, h * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey="row" if sharey else False)
    return fig, axes


def _wrap(text: str, width: int) -> str:
    """``text`` wrapped to at most ``width`` characters a line, lines balanced (the narrowest
    width giving as few lines), never breaking a word or a "digits · mlp" / "95 %" pair."""
    import textwrap

    for a, b in ((" · ", "\u00a0·\u00a0"), ("95 %", "95\u00a0%"), ("Fig. ", "Fig.\u00a0"),
                 ("et al. ", "et\u00a0al.\u00a0")):
        text = text.replace(a, b)

    def fill(w):
        return textwrap.wrap(text, w, break_long_words=False, break_on_hyphens=False)

    n = len(fill(width))
    w = width
    while w > 20 and len(fill(w - 1)) == n:
        w -= 1
    return "\n".join(fill(w)).replace("\u00a0", " ")


def _titles(fig, title: str, subtitle: str = "") -> None:
    """A short figure title and, below it, a plain-language subtitle, each wrapped (balanced) to
    the figure's width."""
    width = max(int(fig.get_figwidth() * 10), 60)
    text = _wrap(title, width)
    if subtitle:
        text += "\n" + _wrap(subtitle, int(width * 1.15))
    fig.suptitle(text, fontsize="medium")


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


def band(c: pd.DataFrame, valid: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """The (lower, upper) edges of a curve's CI band, clipped to the metric's valid range."""
    return (np.clip(c["mean"] - c["ci95"], *valid).to_numpy(),
            np.clip(c["mean"] + c["ci95"], *valid).to_numpy())


def _plot_curve(ax, c: pd.DataFrame, st: Style, label: str,
                valid: tuple[float, float] = (-math.inf, math.inf)) -> None:
    c = c.dropna(subset=["mean"])
    ax.plot(c["x"], c["mean"], ms=3.5, lw=1.3, label=label, **st.line())
    b = c[c["n"] >= 2]
    if len(b):
        lo, hi = band(b, valid)
        ax.fill_between(b["x"], lo, hi, color=st.color, alpha=0.15, linewidth=0)


def _legend(fig, axes) -> None:
    handles, labels = {}, []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in handles and not lab.startswith("_"):
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


def _plot_conditions(ax, d: pd.DataFrame, y: str, x: str, sty: dict[str, Style],
                     baseline: str, level: float,
                     valid: tuple[float, float] = (-math.inf, math.inf)) -> None:
    """One mean curve (with its band) of ``y`` vs ``x`` per condition of ``d``, baseline first,
    in the figure's styles ``sty``."""
    for cond in ordered_conditions(d, baseline):
        _plot_curve(ax, curve(d[d["condition"] == cond], y, x, level), sty[cond], cond, valid)


def _protocol(unit: Unit) -> str:
    return protocol_text(unit.sampler, unit.n_samples, unit.metric)


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
    _legend(fig, axes)
    _titles(fig, f"{unit.metric} vs training iteration — {unit.setting}", _protocol(unit))
    return fig


def _schedule_panels(data: pd.DataFrame, y: str, ylabel: str, baseline: str, level: float,
                     valid: tuple[float, float] = (-math.inf, math.inf)):
    """One panel per schedule (shared y) of ``y`` vs iteration per condition:
    (fig, axes, [(ax, rows)])."""
    scheds = _schedules(data)
    fig, axes = _figure(len(scheds), sharey=True)
    sty = styles(ordered_conditions(data, baseline))
    panels = []
    for j, (ax, sched) in enumerate(zip(axes[0], scheds)):
        d = data[data["schedule"] == sched]
        _plot_conditions(ax, d, y, "step", sty, baseline, level, valid)
        ax.set(title=f"{sched} schedule", xlabel="training iteration")
        if j == 0:
            ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        panels.append((ax, d))
    return fig, axes, panels


RELATIVE_AXES = {   # axis (bench.analysis.tables.AXIS_COLUMN): (1D unit, x label)
    "cost": ("forward-equivalents", "training compute / 1D (counted forward-equivalents)"),
    "wall": ("s", "training wall-clock / 1D (measured)"),
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
    fig, axes = _figure(len(refs), sharey=True)
    sty = styles(ordered_conditions(data, baseline))
    for j, (ax, (sched, ref)) in enumerate(zip(axes[0], refs.items())):
        d = data[data["schedule"] == sched]
        d = d.assign(rel=pd.to_numeric(d[col], errors="coerce") / ref[key])
        _plot_conditions(ax, d, "value", "rel", sty, baseline, level, valid_range(unit.metric))
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
    _legend(fig, axes)
    _titles(fig, f"{unit.metric} vs {what} relative to {baseline}'s 1D — {unit.setting}",
            _protocol(unit))
    return fig


def fig_forest(vs: pd.DataFrame, unit: Unit, baseline: str = "uniform"):
    """A forest plot of ``tables.vs_baseline`` at its largest budget: per schedule panel (shared
    rows), each condition's difference from the baseline (mean with its 95 % CI), zero dashed;
    None without a difference."""
    if vs.empty:
        return None
    d = vs[vs["budget"] == vs["budget"].max()].dropna(subset=["diff"])
    if d.empty:
        return None
    scheds = _schedules(d)
    conds = list(dict.fromkeys(d["condition"]))
    sty = styles(conds)
    fig, axes = _figure(len(scheds), w=3.4, h=1.0 + 0.32 * len(conds), sharey=True)
    fig.set_figwidth(fig.get_figwidth() + 0.075 * max(map(len, conds)))   # the row labels
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
        ax.set_yticks(range(len(conds)), conds if j == 0 else [])
        ax.set_ylim(len(conds) - 0.5, -0.5)
        better = "negative" if unit.lower_is_better else "positive"
        u = metric_unit(unit.metric)
        ax.set(title=f"{sched} schedule",
               xlabel=f"Δ {unit.metric}{f' ({u})' if u else ''} vs {baseline} "
                      f"({better} = better)")
        ax.xaxis.set_major_locator(_nice_ticks(5))
        ax.grid(alpha=0.3, axis="x")
    budget = int(d["budget"].iloc[0])
    _titles(fig, f"{unit.metric}: difference from {baseline} at ≤ {step_text(budget)} "
                 f"iterations — {unit.setting}",
            f"{_protocol(unit)}; mean and 95 % CI over seeds, paired by seed where possible")
    return fig


PROFILE_BANDS = 5


def fig_profiles(profiles: pd.DataFrame, baseline: str = "uniform"):
    """Performance profiles (Agarwal et al. 2021, rliable): per strategy, the fraction of runs
    over every condition whose normalised score exceeds τ, with its stratified-bootstrap 95 %
    band (drawn for up to PROFILE_BANDS strategies: more would hide the curves); columns of
    ``profiles``: condition, tau, fraction, lo, hi."""
    if profiles.empty:
        return None
    fig, axes = _figure(1, w=5.2, h=3.6)
    ax = axes[0, 0]
    bands = profiles["condition"].nunique() <= PROFILE_BANDS
    sty = styles(profiles["condition"])
    for cond, g in profiles.groupby("condition", sort=False):
        st = sty[cond]
        ax.plot(g["tau"], g["fraction"], label=cond, color=st.color, ls=st.linestyle, lw=1.4,
                drawstyle="steps-post")
        if bands:
            ax.fill_between(g["tau"], g["lo"], g["hi"], color=st.color, alpha=0.12, lw=0,
                            step="post")
    ax.axvline(0.0, color="0.3", ls=":", lw=1)
    ax.set(xlabel=f"τ: relative improvement over {baseline}'s mean (0 = equal)",
           ylabel="fraction of runs with score > τ", ylim=(0, 1))
    ax.grid(alpha=0.3)
    _legend(fig, axes)
    _titles(fig, "performance profiles across every condition",
            "score = (baseline mean − value) / |baseline mean| per condition (sign flipped for "
            "higher-is-better metrics)" + ("; stratified-bootstrap 95 % bands" if bands else
                                            "; bands in the table (too many curves)"))
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
    fig, axes = _figure(len(scheds), sharey=True)
    sty = styles(ordered_conditions(d, baseline))
    for j, (ax, sched) in enumerate(zip(axes[0], scheds)):
        s = d[d["schedule"] == sched]
        for cond in ordered_conditions(s, baseline):
            st = sty[cond]
            for i, (_, r) in enumerate(s[s["condition"] == cond].groupby("run", sort=True)):
                r = r.sort_values("step")
                ax.plot(r["step"], r["tv_uniform"], color=st.color, lw=1.1, alpha=0.8)
                ax.plot(r["step"], r["drawn_tv"], color=st.color, lw=1.6, ls="--")
            ax.plot([], [], label=cond, lw=1.6, **st.line())     # the legend's entry
        ax.axhline(threshold, color="0.3", ls=":", lw=1)
        ax.set(title=f"{sched} schedule", xlabel="training iteration", ylim=(0, 1))
        if j == 0:
            ax.set_ylabel("total variation from uniform")
        ax.xaxis.set_major_locator(_nice_ticks(6))
        ax.xaxis.set_major_formatter(step_formatter())
        ax.grid(alpha=0.3)
    _legend(fig, axes)
    _titles(fig, f"adaptation of the learned strategies — {setting}",
            f"thin solid: p(t) at each update; thick dashed: the t drawn so far (what the "
            f"verdict uses); dotted: the 'did not adapt' threshold {threshold:g}; one pair of "
            f"curves per seed")
    return fig


def fig_train_loss(metrics: pd.DataFrame, setting: str, baseline: str = "uniform",
                   level: float = 0.95):
    """Training loss (the logged per-example ε-MSE, unweighted, averaged over the log interval)
    vs iteration, one panel per schedule (shared log y), mean over seeds with a 95 % band."""
    data = metrics[(metrics["setting"] == setting) & metrics["status"].isin(COUNTED)]
    data = data.dropna(subset=["loss"])
    if data.empty:
        return None
    fig, axes, panels = _schedule_panels(data, "loss", metric_label("loss"), baseline, level,
                                         valid_range("loss"))
    for ax, _ in panels:
        ax.xaxis.set_major_formatter(step_formatter())
    if (data["loss"] > 0).all():
        ax = axes[0, 0]
        ax.set_yscale("log")      # the y-range follows the curves and the positive band edges
        lo, hi = [], []
        for _, g in data.groupby(["condition", "schedule"]):
            c = curve(g, "loss").dropna(subset=["mean"])
            edge = c["mean"] - c["ci95"].fillna(0)
            lo.append(np.where(edge > 0, edge, c["mean"]).min())
            hi.append((c["mean"] + c["ci95"].fillna(0)).max())
        ax.set_ylim(min(lo) / 1.2, max(hi) * 1.2)
        plain_log_axis(ax)
    _legend(fig, axes)
    _titles(fig, f"training loss — {setting}", "the logged per-example ε-MSE (unweighted), "
                 "averaged over each log interval; mean over seeds, 95 % band; a non-uniform "
                 "sampler averages other timesteps, so this is no figure of merit across "
                 "strategies")
    return fig


def _nice_ticks(n: int):
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(nbins=n, steps=[1, 2, 2.5, 5, 10])


def _first_run(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of the run with the lowest seed (then run name) among ``df``'s runs."""
    first = df.sort_values(["seed", "run"]).iloc[0]["run"]
    return df[df["run"] == first]


def _snapshots(fig, axes, steps: Iterable[float]):
    """Colours of training snapshots: one discrete sequential colour per step with a legend of
    iterations (up to LEGEND_SNAPSHOTS snapshots), else a continuous colourbar."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import ListedColormap, Normalize
    from matplotlib.lines import Line2D

    colors = snapshot_colors(steps)
    if len(colors) <= LEGEND_SNAPSHOTS:
        fig.legend([Line2D([], [], color=c, lw=2) for c in colors.values()],
                   [step_text(s) for s in colors], title="iteration", fontsize="small",
                   loc="outside right center")
    else:
        lo, hi = min(colors), max(colors)
        cmap = ListedColormap(colormaps[SNAPSHOT_CMAP](np.linspace(*SNAPSHOT_RANGE, 256)))
        sm = ScalarMappable(norm=Normalize(lo, hi if hi > lo else lo + 1), cmap=cmap)
        fig.colorbar(sm, ax=axes, label="training iteration", shrink=0.9,
                     format=step_formatter())
    return lambda s: colors[float(s)]


def fig_timestep_diagnostics(diag: pd.DataFrame, setting: str, condition: str,
                             weighting: str = "ddpm"):
    """Kim et al. Fig. 2 (``ddpm`` weighting) / Fig. 6 (``vlb``): gradient variance (top) and loss
    (bottom) per timestep bin at each diagnostics snapshot, sequential colours from early (dark)
    to late (light); one column per schedule, the run with the lowest seed of each."""
    d = diag[(diag["setting"] == setting) & (diag["condition"] == condition)
             & (diag["weighting"] == weighting) & diag["status"].isin(COUNTED)]
    if d.empty:
        return None
    scheds = _schedules(d)
    rows = [(col, text) for col, text in (("grad_var", "gradient variance"),
                                          ("loss", f"loss ({weighting} weighting)"))
            if pd.to_numeric(d[col], errors="coerce").notna().any()]
    if not rows:
        return None
    fig, axes = _figure(len(scheds), len(rows), h=2.8, sharey=True)
    color = _snapshots(fig, axes, d["step"])
    for j, sched in enumerate(scheds):
        r = _first_run(d[d["schedule"] == sched])
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
    _titles(fig, f"per-timestep {what} across training — {condition}",
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
    fig, axes = _figure(ncols, nrows, w=3.6, h=2.9)
    steps = pd.concat([s["step"] for s in sel])
    color = _snapshots(fig, axes, steps)
    quantity = "T·p(t)·w(t) / Σ p·w" if weighted else "T·p(t)"
    for ax, cond in zip(axes.flat, conds):
        p, h = (s[s["condition"] == cond] for s in sel)
        src = _first_run(p if len(p) else h)
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
        ax.set_title(wrap_label(f"{cond} (seed {src['seed'].iloc[0]}, {what})", 34),
                     fontsize="medium")
        ax.set(xlabel="timestep t", ylim=(0, top * 1.05))
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel(f"{quantity}  (1 = uniform)")
    for ax in list(axes.flat)[len(conds):]:
        ax.set_visible(False)
    extra = " with the loss weights" if weighted else ""
    _titles(fig, f"timestep distributions across training{extra} — {schedule} schedule, "
                 f"{setting}",
            f"{quantity} from the strategy's p(t) where it has one, else from the histogram of the "
            "t it drew between snapshots" + ("; fixed loss weights w folded in (Kim et al. "
                                             "Fig. 5's convention)" if weighted else ""))
    return fig
