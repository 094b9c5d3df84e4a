"""The figures' common toolkit (matplotlib ``Figure`` objects, no pyplot state): a blank figure
of panels, balanced wrapped titles, the shared legend, mean-over-seeds curves with their clipped
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
                                  protocol_text, snapshot_colors, step_formatter, step_text)
from bench.analysis.tables import Unit


def figure(ncols: int, nrows: int = 1, w: float = 4.2, h: float = 3.3, sharey: bool = False):
    """A constrained-layout Figure of ``nrows`` × ``ncols`` panels (``w`` × ``h`` inches each):
    (fig, axes as a 2-D array); ``sharey``: the panels of a row share their y axis."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w * ncols + 0.6, h * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey="row" if sharey else False)
    return fig, axes


def wrap(text: str, width: int) -> str:
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


def titles(fig, title: str, subtitle: str = "") -> None:
    """A short figure title and, below it, a plain-language subtitle, each wrapped (balanced) to
    the figure's width."""
    width = max(int(fig.get_figwidth() * 10), 60)
    text = wrap(title, width)
    if subtitle:
        text += "\n" + wrap(subtitle, int(width * 1.15))
    fig.suptitle(text, fontsize="medium")


def schedules(df: pd.DataFrame) -> list[str]:
    """The schedules of ``df`` in the paper's order (linear, cosine, quad, then the others)."""
    return sorted(set(df["schedule"]), key=schedule_key)


def ordered_conditions(df: pd.DataFrame, baseline: str) -> list[str]:
    """The conditions of ``df``: the baseline strategy's first, then by label."""
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


def plot_curve(ax, c: pd.DataFrame, st: Style, label: str,
               valid: tuple[float, float] = (-math.inf, math.inf)) -> None:
    c = c.dropna(subset=["mean"])
    ax.plot(c["x"], c["mean"], ms=3.5, lw=1.3, label=label, **st.line())
    b = c[c["n"] >= 2]
    if len(b):
        lo, hi = band(b, valid)
        ax.fill_between(b["x"], lo, hi, color=st.color, alpha=0.15, linewidth=0)


def legend(fig, axes) -> None:
    """One legend for every panel's labelled lines (each label once)."""
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


def plot_conditions(ax, d: pd.DataFrame, y: str, x: str, sty: dict[str, Style],
                    baseline: str, level: float,
                    valid: tuple[float, float] = (-math.inf, math.inf)) -> None:
    """One mean curve (with its band) of ``y`` vs ``x`` per condition of ``d``, baseline first,
    in the figure's styles ``sty``."""
    for cond in ordered_conditions(d, baseline):
        plot_curve(ax, curve(d[d["condition"] == cond], y, x, level), sty[cond], cond, valid)


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

