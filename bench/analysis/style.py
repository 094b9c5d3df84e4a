"""How the figures draw things (the one owner of presentation): a fixed colour, marker and line
style per strategy, metric axis labels with direction and unit, evaluation protocols in words,
iteration ticks, and the sequential colours of training snapshots.

A condition's style depends on its label only, never on which other conditions a figure holds,
so one strategy looks the same in every figure of a report and across reports:

* the colour and marker come from the strategy's place in the registry (registration order,
  ``strategies.registered()``): uniform is always blue circles; names the registry does not know
  get a place from a hash of the name;
* a condition that is the strategy with other parameters or a variant (``min_snr(gamma=1)``,
  ``uniform [train.lr=0.001]``) keeps the strategy's hue, in a darker or lighter shade, with a
  dashed/dotted line style and another, open marker. ``styles(labels)`` gives the variants of
  one strategy among ``labels`` distinct shades, lines and markers in label order (so five
  variants of adaptive_beta in one figure are told apart); ``style(label)`` alone picks them by
  a hash of the label.
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass

import strategies
from bench.analysis.adaptation import unmarked
from bench.analysis.stats import lower_is_better

# tab10, then black and mustard (the first 12 registered strategies), then ten more distinct
# hues for the next ones: 22 in all; a 23rd strategy repeats them dashed. Within one figure
# ``styles`` gives every strategy a colour no other strategy there has.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf", "#000000", "#e6ab02",
           "#393b79", "#ad494a", "#637939", "#7b4173", "#31a354", "#e7969c", "#6b6ecf",
           "#843c39", "#a55194", "#c51b7d")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p", "d")
VARIANT_LINES = ("--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)))
VARIANT_SHADES = (-0.45, 0.45, -0.2, 0.25, -0.65, 0.65)   # < 0: towards black, > 0: white


@dataclass(frozen=True)
class Style:
    color: str
    marker: str
    linestyle: object = "-"
    filled: bool = True

    def line(self) -> dict:
        """Keyword arguments of ``Axes.plot`` for this style."""
        kw = {"color": self.color, "marker": self.marker, "linestyle": self.linestyle}
        if not self.filled:
            kw["markerfacecolor"] = "white"
        return kw


def strategy_name(label: str) -> str:
    """The registered name a condition label starts with (``min_snr(gamma=1) [x]`` → min_snr)."""
    m = re.match(r"[A-Za-z_][A-Za-z0-9_]*", unmarked(label).strip())
    return m.group(0) if m else unmarked(label).strip()


def _hash(text: str) -> int:
    return zlib.crc32(text.encode())          # stable across processes (unlike hash())


def style(label: str, k: int | None = None, color: str | None = None) -> Style:
    """The fixed style of the condition ``label`` (see the module docstring); ``k``: the
    variant's place among its strategy's variants in a figure (None: from a hash); ``color``:
    the strategy's hue when a figure gave it another (``styles``)."""
    label = unmarked(label).strip()
    name = strategy_name(label)
    order = strategies.registered()
    i = order.index(name) if name in order else len(order) + _hash(name) % len(PALETTE)
    marker = MARKERS[i % len(MARKERS)]
    repeat = (i // len(PALETTE)) % 2 == 1 and color is None
    color = color or PALETTE[i % len(PALETTE)]
    if label == name:
        return Style(color, marker, "--" if repeat else "-")
    k = _hash(label) if k is None else k
    return Style(_shade(color, VARIANT_SHADES[k % len(VARIANT_SHADES)]),
                 MARKERS[(i + 1 + k % (len(MARKERS) - 1)) % len(MARKERS)],
                 VARIANT_LINES[k % len(VARIANT_LINES)], filled=False)


def styles(labels) -> dict[str, Style]:
    """The style of each of ``labels``: strategies as ``style``; the variants of one strategy
    numbered in label order, so no two of them look alike; and a strategy whose fixed colour
    another strategy of the figure already has (a plug-in's hashed place, a 23rd strategy)
    takes the first palette colour no strategy there has — in registration order, so the
    registered strategies keep theirs."""
    labels = list(dict.fromkeys(labels))
    names = list(dict.fromkeys(strategy_name(c) for c in labels))
    order = strategies.registered()
    fixed = {n: style(n).color for n in names}
    taken, hue = set(), {}
    for n in sorted(names, key=lambda n: (order.index(n) if n in order else len(order), n)):
        if fixed[n] in taken:
            hue[n] = next((c for c in PALETTE if c not in taken and c not in fixed.values()),
                          fixed[n])
        taken.add(hue.get(n, fixed[n]))
    out, seen = {}, {}
    for c in sorted(labels, key=lambda c: unmarked(c).strip()):
        u, name = unmarked(c).strip(), strategy_name(c)
        if u != name and u not in seen:
            seen[u] = sum(1 for v in seen if strategy_name(v) == name)
        out[c] = style(c, seen.get(u), hue.get(name))
    return {c: out[c] for c in labels}


SHORT = 24                     # a legend label longer than this is shortened
DISPLAY: dict[str, str] = {}   # condition -> the sweep file's ``label:`` (set_display_labels)


def set_display_labels(labels: dict[str, str]) -> None:
    """The sweep files' ``label:`` per condition for the figures drawn next (``bench.report``
    sets them from the results it reads; they replace any earlier ones)."""
    DISPLAY.clear()
    DISPLAY.update(labels)


def _short(label: str) -> str:
    """``name(k=v,variant=x)`` → ``name x*`` (the variant kept, ``*`` for the other parameters),
    recursively through ``compose(a+b)``."""
    m = re.fullmatch(r"compose\((.*)\)", label)
    if m:
        depth, cut = 0, None
        for i, ch in enumerate(m.group(1)):
            depth += (ch == "(") - (ch == ")")
            if ch == "+" and depth == 0:
                cut = i
        if cut is not None:
            return f"{_short(m.group(1)[:cut])}+{_short(m.group(1)[cut + 1:])}"
    parsed = _params(label)
    if parsed is None:
        return label
    name, params = parsed
    variant = params.pop("variant", None)
    return f"{name}{' ' + variant if variant else ''}{'*' if params else ''}"


def short_labels(labels) -> dict[str, str]:
    """A legend's label for each condition label: the sweep file's ``label:`` for it where one
    is set (``set_display_labels``), else itself when it is short, else the strategy with its
    variant (``*``: other parameters); ``†`` for a "did not adapt" mark; labels that would read
    alike show the parameters that tell them apart (``#2``, ``#3`` where they cannot) — the full
    label stays in the tables and the caption."""
    out: dict[str, str] = {}
    for c in dict.fromkeys(labels):
        u = unmarked(c).strip()
        dagger = " †" if u != c.strip() else ""
        out[c] = (DISPLAY.get(c) or DISPLAY.get(u) or (u if len(u) <= SHORT else _short(u))
                  ) + dagger
    groups: dict[str, list[str]] = {}
    for c, s in out.items():
        groups.setdefault(s, []).append(c)
    for s, cs in groups.items():               # labels that read alike: what tells them apart
        if len(cs) > 1:
            for k, c in enumerate(cs, 1):
                out[c] = _distinct(unmarked(c).strip(), [unmarked(x).strip() for x in cs]) \
                    or f"{s} #{k}"
                out[c] += " †" if unmarked(c).strip() != c.strip() and "†" not in out[c] else ""
    return out


def _params(label: str) -> tuple[str, dict[str, str]] | None:
    """``name(k=v,...)`` → (name, {k: v}); None for another shape (a composition)."""
    m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)(?:\(([^()]*)\))?", label)
    if not m:
        return None
    pairs = [p.split("=", 1) for p in (m.group(2) or "").split(",") if "=" in p]
    return m.group(1), dict(pairs)


def _distinct(label: str, group: list[str]) -> str:
    """``label`` as its name and the parameters whose values differ within ``group`` (``name``
    alone when it has none of them); '' when a label of the group has another shape."""
    parsed = [_params(x) for x in group]
    mine = _params(label)
    if mine is None or any(p is None for p in parsed):
        return ""
    keys = sorted({k for _, ps in parsed for k in ps
                   if len({q.get(k, "-") for _, q in parsed}) > 1})
    shown = [f"{k}={mine[1][k]}" for k in keys if k in mine[1]]
    return f"{mine[0]} {','.join(shown)}" if shown else mine[0]


def legend_key(labels) -> str:
    """The caption's key to shortened legend labels: ``short = full; ...`` ('' if none)."""
    sl = short_labels(labels)
    key = [f"{s} = {c}" for c, s in sl.items() if s != c]
    return ("legend: " + "; ".join(key) + ("; † did not adapt in some seeds"
                                           if any("†" in s for s in sl.values()) else "")
            if key else "")


def _shade(color: str, f: float) -> str:
    """``color`` mixed towards black (f < 0) or white (f > 0) by |f|."""
    from matplotlib.colors import to_hex, to_rgb

    target = 0.0 if f < 0 else 1.0
    return to_hex([c + abs(f) * (target - c) for c in to_rgb(color)])


# ---------------------------------------------------------------------------- metrics and protocols
METRIC_TEXT = {"nll_bpd": ("NLL", "bits/dim"), "fid_inception": ("FID (Inception)", ""),
               "swd": ("SWD", ""), "mmd2_rbf": ("MMD² (RBF kernel)", ""),
               "loss": ("training loss (ε-MSE)", "")}
NO_DIRECTION = ("loss",)      # not a figure of merit across strategies (different t mixes)


def metric_label(metric: str) -> str:
    """``NLL (bits/dim) ↓``, ``fd_cnn ↓``: the axis label of a metric with its unit and
    direction."""
    name, unit = METRIC_TEXT.get(metric, (metric, ""))
    text = f"{name}{f' ({unit})' if unit else ''}"
    if metric in NO_DIRECTION:
        return text
    return f"{text} {'↓' if lower_is_better(metric) else '↑'}"


def metric_unit(metric: str) -> str:
    """The unit of a metric ('' when it has none): ``bits/dim`` for the NLL."""
    return METRIC_TEXT.get(metric, (metric, ""))[1]


def protocol_text(sampler: str, n_samples: int, metric: str = "") -> str:
    """An evaluation protocol in words: ``ddim10_eta0`` with n 100 → "DDIM sampler, 10 steps,
    η = 0; 100 samples"."""
    n = "" if n_samples is None or n_samples < 0 else (
        f"; {n_samples} test examples" if metric.startswith("nll") else f"; {n_samples} samples")
    if sampler and sampler.endswith("_live"):       # eval.use_ema=false (the default: EMA)
        return protocol_text(sampler[:-len("_live")], n_samples, metric) + "; live weights"
    if m := re.fullmatch(r"ddim(\d+)_eta([0-9.eE+-]+)", sampler or ""):
        return f"DDIM sampler, {m[1]} steps, η = {m[2]}{n}"
    if m := re.fullmatch(r"ddpm_T(\d+)", sampler or ""):
        return f"DDPM ancestral sampler, {m[1]} steps{n}"
    if m := re.fullmatch(r"(euler|heun)(\d+)", sampler or ""):
        return f"flow ODE, {m[1].capitalize()}, {m[2]} steps{n}"
    if m := re.fullmatch(r"ode_heun(\d+)_hutch(\d+)", sampler or ""):
        return f"ODE likelihood, Heun {m[1]} steps, {m[2]} Hutchinson probe(s){n}"
    if m := re.fullmatch(r"full_T(\d+)", sampler or ""):
        return f"variational bound over all {m[1]} timesteps{n}"
    if m := re.fullmatch(r"stratified_K(\d+)", sampler or ""):
        return f"variational bound, {m[1]} stratified timesteps{n}"
    return f"{sampler or 'sampler unknown'}{n}"


# ---------------------------------------------------------------------------- iteration axis
def step_text(step: float) -> str:
    """400, 2k, 2.5k, 20k, 0.2M, 1M."""
    s = float(step)
    if abs(s) >= 1e5:
        return f"{s / 1e6:g}M"
    if abs(s) >= 1e3:
        return f"{s / 1e3:g}k"
    return f"{s:g}"


def tick_steps(steps, max_ticks: int = 7) -> list[float]:
    """At most ``max_ticks`` of the evaluated ``steps``, evenly spread, first and last kept."""
    s = sorted({float(x) for x in steps})
    if len(s) <= max_ticks:
        return s
    idx = sorted({round(i * (len(s) - 1) / (max_ticks - 1)) for i in range(max_ticks)})
    return [s[i] for i in idx]


def step_formatter():
    """A matplotlib formatter writing iterations as ``step_text`` does (400 / 2k / 0.2M)."""
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda x, _: step_text(x))


def step_axis(ax, steps, max_ticks: int = 7) -> None:
    """x ticks at (a subset of) the evaluated steps, labelled 400 / 2k / 0.2M, no minor ticks."""
    from matplotlib.ticker import FixedLocator, NullLocator

    ticks = tick_steps(steps, max_ticks)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(step_formatter())


def plain_log_axis(ax, axis: str = "y") -> None:
    """A log axis without crowded minor labels: decades only when it spans a decade or more,
    else also the 2× and 5× minor ticks (so a narrow axis keeps a readable scale)."""
    from matplotlib.ticker import Formatter

    class SparseMinor(Formatter):
        def __call__(self, x, pos=None):
            lo, hi = sorted(self.axis.get_view_interval())
            if lo <= 0 or hi / lo >= 10 or x <= 0:
                return ""
            mantissa = round(x / 10 ** math.floor(math.log10(x)), 6)
            return f"{x:g}" if mantissa in (2.0, 5.0) else ""

    getattr(ax, f"{axis}axis").set_minor_formatter(SparseMinor())


# ---------------------------------------------------------------------------- training snapshots
SNAPSHOT_CMAP = "viridis"      # sequential: early snapshots dark, late ones light
SNAPSHOT_RANGE = (0.0, 0.85)   # the colormap's yellow end is unreadable on white
LEGEND_SNAPSHOTS = 8           # up to this many snapshots: discrete colours and a legend


def snapshot_colors(steps) -> dict[float, tuple]:
    """One sequential colour per snapshot step, early → late."""
    from matplotlib import colormaps

    s = sorted({float(x) for x in steps})
    cmap, (lo, hi) = colormaps[SNAPSHOT_CMAP], SNAPSHOT_RANGE
    return {x: cmap(lo + (hi - lo) * (i / max(len(s) - 1, 1))) for i, x in enumerate(s)}
