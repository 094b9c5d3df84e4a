"""The figures' common toolkit (matplotlib ``Figure`` objects, no pyplot state): a blank figure
of panels, one-line titles, the shared legend, mean-over-seeds curves with their clipped
CI bands, schedule and condition order, and the sequential colours of training snapshots. The
figures themselves are bench.analysis.metric_figures' and bench.analysis.timestep_figures'.

Every figure function returns a matplotlib Figure (or None when its data is absent) and keeps no
pyplot state; bench.report saves them. Styles (colour, marker, line) are fixed per strategy by
bench.analysis.style, the same in every figure."""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np
import pandas as pd

from bench.analysis.load import schedule_key
from bench.analysis.stats import mean_ci
from bench.analysis.style import (LEGEND_SNAPSHOTS, SNAPSHOT_CMAP, SNAPSHOT_RANGE, Style,
                                  legend_key, protocol_text, short_labels, snapshot_colors,
                                  step_formatter, step_text)
from bench.analysis.tables import Unit


def figure(ncols: int, nrows: int = 1, w: float = 4.2, h: float = 3.3, sharey: bool = False):
    """A constrained-layout Figure of ``nrows`` × ``ncols`` panels (``w`` × ``h`` inches each):
    (fig, axes as a 2-D array); ``sharey``: the panels of a row share their y axis."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w * ncols + 0.6, h * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey="row" if sharey else False)
    return fig, axes


def titles(fig, title: str, subtitle: str = "") -> None:
    """A one-line figure title (a smaller font when it is long); the plain-language
    ``subtitle`` (the protocol, what the bands are) goes to the figure's caption instead — it is
    kept as the figure's label, which ``bench.report`` appends to the caption in index.md."""
    width = max(int(fig.get_figwidth() * 10), 60)
    fig.suptitle(title, fontsize="medium" if len(title) <= width else "small")
    fig.set_label("; ".join(x for x in (subtitle, fig.get_label()) if x))


def schedules(df: pd.DataFrame) -> list[str]:
    """The schedules of ``df`` in the paper's order (linear, cosine, quad, then the others)."""
    return sorted(set(df["schedule"]), key=schedule_key)


def ordered_conditions(df: pd.DataFrame, baseline: str) -> list[str]:
    """The conditions of ``df``: the baseline strategy's first, then by label."""
    pairs = df[["condition", "strategy"]].drop_duplicates()
    return [c for _, c in sorted((s != baseline, c) for c, s in pairs.itertuples(index=False))]


def curve(df: pd.DataFrame, y: str, x: str = "step", level: float = 0.95,
          log: bool = False) -> pd.DataFrame:
    """Per ``step``: mean of ``x`` and of ``y`` over the runs (seeds), the CI half-width of ``y``
    (NaN below 2 runs), the band's edges ``lo``/``hi`` and n. ``log`` (a log axis): the mean and
    interval of log y, exponentiated — a geometric mean with a band that stays positive."""
    rows = []
    for step, g in df.groupby("step", sort=True):
        v = np.log(g[y].astype(float)) if log else g[y]
        m, half, _, n = mean_ci(v, level)
        lo, hi = m - half, m + half
        if log:
            m, lo, hi = math.exp(m), math.exp(lo), math.exp(hi)
        rows.append({"step": step, "x": float(g[x].mean()), "mean": m, "ci95": half, "n": n,
                     "lo": lo, "hi": hi})
    return pd.DataFrame(rows, columns=["step", "x", "mean", "ci95", "n", "lo", "hi"])


def band(c: pd.DataFrame, valid: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """The (lower, upper) edges of a curve's CI band, clipped to the metric's valid range."""
    return np.clip(c["lo"], *valid).to_numpy(), np.clip(c["hi"], *valid).to_numpy()


BAND_MIN_SEEDS = 3          # fewer seeds: their points, not a t-band


def plot_curve(ax, c: pd.DataFrame, st: Style, label: str,
               valid: tuple[float, float] = (-math.inf, math.inf)) -> None:
    c = c.dropna(subset=["mean"])
    ax.plot(c["x"], c["mean"], ms=3.5, lw=1.3, label=label, **st.line())
    b = c[c["n"] >= BAND_MIN_SEEDS]
    if len(b):
        lo, hi = band(b, valid)
        ax.fill_between(b["x"], lo, hi, color=st.color, alpha=0.15, linewidth=0)


def add_note(fig, text: str) -> None:
    """Append ``text`` to the figure's caption note (``titles``)."""
    if text:
        fig.set_label("; ".join(x for x in (fig.get_label(), text) if x))


def legend(fig, axes) -> None:
    """One legend for every panel's labelled lines (each label once), each label shortened
    (``style.short_labels``) with the key to the full ones in the caption note."""
    handles, full = {}, []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in handles and not lab.startswith("_"):
                handles[lab] = h
                full.append(lab)
    short = short_labels(full)
    add_note(fig, legend_key(full))
    handles = {short[k]: h for k, h in handles.items()}
    labels = [short[k] for k in full]
    if handles:
        # Short legends go below the panels; long ones to the right, one column, so the panels
        # keep their height (the CLI saves with bbox_inches="tight").
        below = len(labels) <= 4 and max(map(len, labels)) <= 24
        if not below:  # widen the figure by the legend's width (small font ≈ 0.075 in a char)
            fig.set_figwidth(fig.get_figwidth() + 0.6 + 0.075 * max(map(len, labels)))
        fig.legend([handles[lab] for lab in labels], labels,
                   loc="outside lower center" if below else "outside right center",
                   ncols=len(labels) if below else 1, fontsize="small")


def plot_conditions(ax, d: pd.DataFrame, y: str, x: str, sty: dict[str, Style],
                    baseline: str, level: float,
                    valid: tuple[float, float] = (-math.inf, math.inf),
                    log: bool = False) -> None:
    """One mean curve (with its band where ≥ BAND_MIN_SEEDS seeds have a value) of ``y`` vs
    ``x`` per condition of ``d``, baseline first, in the figure's styles ``sty``; with fewer
    seeds the seeds' own values as points instead (a 2-seed t-interval spans ±12.7 s.d.);
    ``log``: mean and band of log y (``curve``), for a log axis."""
    for cond in ordered_conditions(d, baseline):
        rows = d[d["condition"] == cond]
        c = curve(rows, y, x, level, log)
        plot_curve(ax, c, sty[cond], cond, valid)
        few = c["n"] < BAND_MIN_SEEDS
        if few.any():
            pts = rows[rows["step"].isin(c.loc[few, "step"])]
            ax.plot(pd.to_numeric(pts[x], errors="coerce"), pts[y], ls="none",
                    marker=sty[cond].marker, ms=3, color=sty[cond].color, alpha=0.5)


def protocol(unit: Unit) -> str:
    """The unit's evaluation protocol in words (sampler, steps, samples)."""
    return protocol_text(unit.sampler, unit.n_samples, unit.metric)


def nice_ticks(n: int):
    """A tick locator of at most ``n`` ticks at round values."""
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(nbins=n, steps=[1, 2, 2.5, 5, 10])


def first_run(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of the run with the lowest seed (then run name) among ``df``'s runs."""
    first = df.sort_values(["seed", "run"]).iloc[0]["run"]
    return df[df["run"] == first]


def snapshots(fig, axes, steps: Iterable[float]):
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

