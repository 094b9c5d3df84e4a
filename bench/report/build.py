"""The report's assembly: which tables and figures a loaded results tree gives, in which order,
under which file names (pure: ``build`` returns a ``Report`` of ``Item``s and writes nothing).
The numbers come from bench.analysis, the table text from bench.report.renderers, the words from
bench.report.captions; bench.report.index lays out index.md and ``python -m bench.report``
(bench.report.__main__) writes the files. Usage and outputs: bench/report/__main__.py and
docs/report.md.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from bench.analysis import adaptation, cost, ranking, stats, tables
from bench.analysis.load import COUNTED, ReportError, Results, fixed_loss_weights, schedule_key
from bench.analysis.metric_figures import (fig_forest, fig_metric_vs_iteration,
                                           fig_metric_vs_relative, fig_profiles, fig_train_loss)
from bench.analysis.plotting import ordered_conditions
from bench.analysis.style import set_display_labels
from bench.analysis.tables import Unit
from bench.analysis.timestep_figures import (effective_p_t, fig_adaptation, fig_p_t,
                                             fig_timestep_diagnostics)
from bench.core.cost import BWD_FACTOR
from bench.report import captions
from bench.report.renderers import (render_adaptation, render_pair, render_ranking,
                                    render_table1, render_time_to_target, render_vs_baseline)
from bench.rundir import runpaths

FORMATS = ("md", "csv", "tex")


@dataclass
class Item:
    """A table or figure of the report: its file stem, its caption and its content."""

    slug: str
    title: str                              # the index heading: what it shows, in words
    caption: str
    table: pd.DataFrame | None = None       # the CSV form
    md: str = ""
    tex: str = ""
    figure: Any = None                      # a matplotlib Figure

    def __post_init__(self):
        note = self.figure.get_label() if self.figure is not None else ""
        if note:                            # the figure's protocol line (plotting.titles)
            self.caption = f"{self.caption} {note[0].upper()}{note[1:]}."


@dataclass
class Report:
    tables: list[Item] = field(default_factory=list)
    figures: list[Item] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------- the request
def _check_request(ev: pd.DataFrame, metrics: list[str] | None, pairs: list[tuple[str, str]],
                   budgets: list[int] | None, baseline: str | None) -> None:
    bad = [b for b in budgets or [] if b <= 0]
    if bad:
        raise ReportError(f"--budgets must be positive iteration counts, got "
                          f"{', '.join(map(str, bad))}")
    have = sorted(set(ev["metric"]))
    for m in metrics or []:
        if m not in have:
            raise ReportError(f"--metric {m!r}: not in the results; metrics present: "
                              f"{', '.join(have) or f'none (no {runpaths.EVALS} rows)'}")
    labels = sorted(set(ev["strategy"]))
    if baseline is not None and labels and baseline not in labels:
        raise ReportError(f"--baseline {baseline!r}: no evaluated run has this strategy; "
                          f"strategies present: {', '.join(labels)}")
    for pair in pairs:
        for s in pair:
            if s not in labels:
                raise ReportError(f"--pair {s!r}: no evaluated run has this strategy; "
                                  f"strategies present: {', '.join(labels) or 'none'}")


def _check_options(bwd_factor: float, adapt_threshold: float, load_tolerance: float) -> None:
    try:
        adaptation.check_threshold(adapt_threshold)
    except ValueError as e:
        raise ReportError(str(e)) from None
    for name, v, rule in (("--bwd-factor", bwd_factor, ">= 0 (forwards per backward pass)"),
                          ("--load-tolerance", load_tolerance, ">= 0 (e.g. 0.2 = 20 %)")):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
            raise ReportError(f"{name} must be {rule}, got {v!r}")


# ---------------------------------------------------------------------------- per unit
def _unit_tables(rep: Report, ev: pd.DataFrame, u: Unit, budgets, baseline: str,
                 pairs: list[tuple[str, str]] | None, level: float, bwd_factor: float,
                 figures: bool) -> None:
    t = tables.table1(ev, u, budgets, level, baseline)
    if t.empty:
        rep.skipped.append(captions.skip_table1(u))
        return
    md, tex, csv = render_table1(t, u)
    rep.tables.append(Item(f"table1_{u.slug}", *captions.table1(u), csv, md, tex))
    ttt = tables.time_to_target(ev, u, baseline, level)
    if ttt.empty:
        rep.skipped.append(captions.skip_time_to_target(u, baseline))
    else:
        md, tex, csv = render_time_to_target(ttt, u, baseline)
        rep.tables.append(Item(f"time_to_target_{u.slug}",
                               *captions.time_to_target(u, baseline, bwd_factor), csv, md, tex))
    vs = tables.vs_baseline(ev, u, baseline, budgets, level)
    if vs.empty:
        rep.skipped.append(captions.skip_vs_baseline(u, baseline))
    else:
        md, tex, csv = render_vs_baseline(vs, u, baseline)
        rep.tables.append(Item(f"vs_{tables.slugify(baseline)}_{u.slug}",
                               *captions.vs_baseline(u, baseline), csv, md, tex))
        fig = fig_forest(vs, u, baseline) if figures else None
        if fig is not None:
            rep.figures.append(Item(f"forest_{u.slug}", *captions.forest(u, baseline),
                                    figure=fig))
    present = set(u.select(ev)["strategy"])
    for a, b in pairs or []:
        p = tables.pair_table(ev, u, a, b, budgets, level)
        if p.empty or not {a, b} <= present:
            rep.skipped.append(captions.skip_pair(u, a, b))
            continue
        md, tex, csv = render_pair(p, a, b, u)
        rep.tables.append(Item(f"table4_{u.slug}_{tables.slugify(a)}_vs_{tables.slugify(b)}",
                               *captions.pair(u, a, b), csv, md, tex))


RELATIVE_SLUGS = (("cost", "compute"), ("wall", "wallclock"))   # axis, file-name part


def _unit_figures(rep: Report, ev: pd.DataFrame, u: Unit, baseline: str, level: float
                  ) -> None:
    fig = fig_metric_vs_iteration(ev, u, baseline, level)
    if fig is not None:
        rep.figures.append(Item(f"{u.slug}_vs_iteration", *captions.metric_vs_iteration(u),
                                figure=fig))
    for axis, slug in RELATIVE_SLUGS:
        fig = fig_metric_vs_relative(ev, u, axis, baseline, level)
        if fig is None:
            rep.skipped.append(captions.skip_relative(u, axis, baseline))
            continue
        rep.figures.append(Item(f"{u.slug}_vs_{slug}",
                                *captions.metric_vs_relative(u, axis, baseline), figure=fig))


def _ranking(rep: Report, ev: pd.DataFrame, us: list[Unit], baseline: str,
             figures: bool) -> None:
    """rliable's aggregates across every task (unit × schedule × variant) with a baseline."""
    scores = ranking.task_scores(ev, us, baseline)
    n_tasks = scores["task"].nunique() if len(scores) else 0
    left = sorted({u.metric for u in us if not ranking.rankable(u.metric)})
    if left:
        rep.notes.append(captions.not_ranked(left))
    if n_tasks < 2:
        rep.skipped.append(captions.skip_ranking(n_tasks, baseline))
        return
    table, profiles = ranking.aggregate(scores, baseline)
    md, tex, csv, labels = render_ranking(table)
    rep.tables.append(Item("ranking_across_conditions",
                           *captions.ranking(n_tasks, baseline, ranking.REPS), csv, md, tex))
    if figures:
        rep.figures.append(Item(
            "performance_profiles", *captions.PROFILES, figure=fig_profiles(
                profiles.assign(condition=profiles["condition"].map(labels)), baseline)))


# ---------------------------------------------------------------------------- per setting
def _setting_slugs(settings: list[str]) -> dict[str, str]:
    if len(settings) <= 1:
        return {s: "" for s in settings}
    out, used = {}, set()
    for s in settings:
        base = "_" + tables.setting_slug(s)
        slug, i = base, 2
        while slug in used:
            slug, i = f"{base}_{i}", i + 1
        used.add(slug)
        out[s] = slug
    return out


def _diagnostics_figures(rep: Report, diag: pd.DataFrame, st: str, sfx: str, where: str,
                         baseline: str) -> None:
    """Fig. 2/6 of one setting: one figure per condition and loss weighting."""
    d = diag[diag["setting"] == st]
    if d.empty:
        rep.skipped.append(captions.skip_diagnostics(where))
    for cond in ordered_conditions(d, baseline) if len(d) else []:
        for w in sorted(set(d.loc[d["condition"] == cond, "weighting"])):
            fig = fig_timestep_diagnostics(diag, st, cond, w)
            rep.figures.append(Item(
                f"timesteps_{tables.slugify(adaptation.unmarked(cond))}_{w}{sfx}",
                *captions.timestep_diagnostics(cond, w, where), figure=fig))


def _p_t_figures(rep: Report, R: Results, st: str, sfx: str, where: str,
                 baseline: str) -> None:
    """Fig. 5 of one setting: p(t) per schedule, and with the fixed loss weights folded in."""
    p_t, t_hist = R.timesteps["p_t"], R.timesteps["t_hist"]
    scheds = sorted(set(p_t.loc[p_t["setting"] == st, "schedule"])
                    | set(t_hist.loc[t_hist["setting"] == st, "schedule"]), key=schedule_key)
    if not scheds:
        rep.skipped.append(captions.skip_p_t(where))
    weights = fixed_loss_weights(R.runs[R.runs["setting"] == st]) if scheds else {}
    for sched in scheds:
        rep.figures.append(Item(f"p_t_{sched}{sfx}", *captions.p_t(sched, where),
                                figure=fig_p_t(p_t, t_hist, st, sched, baseline)))
        if weights:
            rep.figures.append(Item(
                f"p_t_weighted_{sched}{sfx}", *captions.p_t_weighted(sched, where),
                figure=fig_p_t(effective_p_t(p_t, weights), t_hist, st, sched, baseline,
                               weighted=True)))


def _setting_figures(rep: Report, R: Results, baseline: str, level: float) -> None:
    counted = R.runs[R.runs["status"].isin(COUNTED)]
    settings = list(dict.fromkeys(counted["setting"]))
    slugs = _setting_slugs(settings)
    for st in settings:
        sfx, where = slugs[st], captions.setting_suffix(st, len(settings))
        fig = fig_train_loss(R.metrics, st, baseline, level)
        if fig is None:
            rep.skipped.append(captions.skip_train_loss(where))
        else:
            rep.figures.append(Item(f"train_loss{sfx}", *captions.train_loss(where),
                                    figure=fig))
        _diagnostics_figures(rep, R.timesteps["diagnostics"], st, sfx, where, baseline)
        _p_t_figures(rep, R, st, sfx, where, baseline)


def _adaptation(rep: Report, R: Results, summ: pd.DataFrame, threshold: float,
                baseline: str, figures: bool) -> None:
    """The adaptation table (per setting) and the TV-vs-iteration figure of learned runs."""
    if summ.empty:
        rep.skipped.append(captions.SKIP_ADAPTATION)
        return
    settings = list(dict.fromkeys(summ["setting"]))
    slugs = _setting_slugs(settings)
    for st in settings:
        s = summ[summ["setting"] == st]
        where = captions.setting_suffix(st, len(settings))
        md, tex = render_adaptation(s, threshold)
        rep.tables.append(Item(f"adaptation{slugs[st]}", *captions.adaptation(where, threshold),
                               s, md, tex))
        if figures:
            fig = fig_adaptation(R.timesteps["adaptation"], st, threshold, baseline)
            if fig is not None:
                rep.figures.append(Item(f"adaptation{slugs[st]}",
                                        *captions.adaptation_figure(where), figure=fig))


# ---------------------------------------------------------------------------- the report
def _marked(R: Results, m: dict) -> Results:
    """``R`` with "[did not adapt]" on the condition labels of the runs' frames (so every table
    row and legend carries it)."""
    if not m:
        return R
    mark = adaptation.mark_conditions
    return dataclasses.replace(
        R, runs=mark(R.runs, m), evals=mark(R.evals, m), metrics=mark(R.metrics, m),
        timesteps={k: mark(v, m) for k, v in R.timesteps.items()})


def build(R: Results, *, metrics: list[str] | None = None, budgets: list[int] | None = None,
          baseline: str | None = None, pairs: list[tuple[str, str]] | None = None,
          figures: bool = True, level: float = 0.95, bwd_factor: float = BWD_FACTOR,
          adapt_threshold: float = adaptation.THRESHOLD,
          load_tolerance: float = cost.LOAD_TOLERANCE) -> Report:
    """All tables and figures of a loaded results tree (pure: nothing is written). ``baseline``:
    the reference strategy label (an error if no run has it); None: uniform, where present.
    ``bwd_factor``: the cost of a backward pass in forwards (the compute axis);
    ``adapt_threshold``: the TV below which a learned run "did not adapt";
    ``load_tolerance``: the wall-clock disagreement among equal-cost runs that is warned of."""
    _check_request(R.counted(R.evals), metrics, pairs or [], budgets, baseline)
    _check_options(bwd_factor, adapt_threshold, load_tolerance)
    set_display_labels(R.displays)          # the sweep files' label: in the figures' legends
    try:
        return _build(R, metrics, budgets, baseline, pairs, figures, level, bwd_factor,
                      adapt_threshold, load_tolerance)
    finally:
        set_display_labels({})              # for these results only


def _build(R: Results, metrics, budgets, baseline, pairs, figures, level, bwd_factor,
           adapt_threshold, load_tolerance) -> Report:
    summ = adaptation.summaries(R.counted(R.timesteps["adaptation"]), adapt_threshold)
    m = adaptation.marks(summ)
    R, summ = _marked(R, m), adaptation.mark_conditions(summ, m)
    ev = R.counted(R.evals)
    ev = ev.assign(cost=cost.training_cost(ev, bwd_factor))
    baseline = baseline or "uniform"
    rep = Report(notes=list(R.notes))
    rep.notes += cost.load_warnings(R.counted(R.metrics), load_tolerance, bwd_factor)
    _adaptation(rep, R, summ, adapt_threshold, baseline, figures)
    us = tables.units(ev, metrics)
    if not us:
        rep.skipped.append(captions.SKIP_NO_EVALUATION)
    for u in us:
        _unit_tables(rep, ev, u, budgets, baseline, pairs, level, bwd_factor, figures)
        if figures:
            _unit_figures(rep, ev, u, baseline, level)
        if not stats.known_direction(u.metric):
            rep.notes.append(captions.unknown_direction(u.metric))
    if us:
        _ranking(rep, ev, us, baseline, figures)
    if figures:
        _setting_figures(rep, R, baseline, level)
    else:
        rep.skipped.append(captions.SKIP_NO_FIGURES)
    return rep
