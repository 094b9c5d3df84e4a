"""The report, built in memory from a loaded results tree (pure: ``build`` returns the tables
and figures, ``index_md`` the index text); ``python -m bench.report`` (bench.report.__main__)
writes them. The command's usage and outputs are described in bench/report/__main__.py and
docs/report.md.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from bench import analysis as A
from bench import rundir
from bench.core.cost import BWD_FACTOR

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


@dataclass
class Report:
    tables: list[Item] = field(default_factory=list)
    figures: list[Item] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------- number formatting
def decimals(values) -> int:
    """Decimals that give the smallest |value| three significant digits (0 to 6)."""
    vals = [abs(v) for v in values if v is not None and math.isfinite(v) and v != 0]
    if not vals:
        return 2
    return max(0, min(6, 2 - math.floor(math.log10(min(vals)))))


def num(x: float, d: int) -> str:
    """``x`` with ``d`` decimals and a true minus sign (no "−0.00")."""
    if x is None or not math.isfinite(x):
        return "—"
    return f"{x + 0.0 if round(x, d) != 0 else 0.0:.{d}f}".replace("-", "−")


def budget_label(b: int) -> str:
    return f"{b // 1000}k" if b >= 1000 and b % 1000 == 0 else str(b)


def _per_seed(values, d: int) -> str:
    return ", ".join(num(v, d) for v in values)


def tex_escape(s: str) -> str:
    rep = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
           "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}",
           "·": r"$\cdot$", "−": r"$-$", "—": "--", "±": r"$\pm$", "≤": r"$\le$",
           "×": r"$\times$", "≈": r"$\approx$", "Δ": r"$\Delta$", "↓": r"$\downarrow$",
           "↑": r"$\uparrow$"}
    return "".join(rep.get(ch, ch) for ch in s)


_NUMBER = r"[−-]?\d+(?:\.\d+)?(?:e[+−-]?\d+)?"
_VALUE = re.compile(rf"(?<![\w.])({_NUMBER})(?: ± ({_NUMBER}))?(?![\w.])")


def tex_cell(md_cell: str) -> str:
    """A Markdown value cell as LaTeX: every number as siunitx's ``\\num{}`` (``a ± b`` as
    ``\\num{a +- b}``: a true minus sign, aligned digits), the rest escaped, ``**x**`` →
    ``\\textbf{x}``."""
    out, pos = [], 0
    for m in _VALUE.finditer(md_cell):
        out.append(tex_escape(md_cell[pos:m.start()]))
        a, b = (x.replace("−", "-") if x else x for x in m.groups())
        out.append(rf"\num{{{a} +- {b}}}" if b else rf"\num{{{a}}}")
        pos = m.end()
    out.append(tex_escape(md_cell[pos:]))
    return re.sub(r"\*\*(.+?)\*\*", r"\\textbf{\1}", "".join(out))


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    def line(cells):
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), "|" + "|".join("---" for _ in header) + "|",
                      *(line(r) for r in rows)]) + "\n"


def latex_table(header: list[str], rows: list[list[str]], caption: str,
                labels: int = 2) -> str:
    """A booktabs tabular of Markdown ``rows``: the first ``labels`` columns are text
    (escaped), the others values (``tex_cell``: siunitx numbers)."""
    cols = "l" * labels + "r" * (len(header) - labels)
    body = [[tex_escape(c) if i < labels else tex_cell(c) for i, c in enumerate(r)]
            for r in rows]
    return "\n".join([
        f"% {caption}", "% needs \\usepackage{booktabs} and \\usepackage{siunitx}",
        f"\\begin{{tabular}}{{{cols}}}", "\\toprule",
        " & ".join(tex_escape(h) for h in header) + r" \\", "\\midrule",
        *(" & ".join(r) + r" \\" for r in body), "\\bottomrule", "\\end{tabular}", ""])


def _group_first(rows: list[list[str]], col: int = 0) -> list[list[str]]:
    """Blank repeated group labels in column ``col`` (the paper's grouped rows)."""
    out, prev = [], None
    for r in rows:
        out.append([("" if r[col] == prev else r[col]), *r[1:]] if col == 0 else r)
        prev = r[col]
    return out


# ---------------------------------------------------------------------------- Table 1
def table1_cell(r, d: int) -> str:
    """``mean ± ci (per-seed values)``: bold when the best is separated from every other
    condition, ``≈`` when tied for best; ``[k/n seeds]`` when some seeds have no value at that
    budget yet; ``—`` when none has."""
    if r["n"] == 0:
        return "—" + (f" (0/{r['n_runs']} seeds)" if r["n_runs"] else "")
    core = num(r["mean"], d) + (" ± " + num(r["ci95"], d) if r["n"] >= 2 else "")
    if r["best"]:
        core = f"**{core}**"
    elif r.get("tied"):
        core = f"≈ {core}"
    extra = f" ({_per_seed(r['values'], d)})" if r["n"] >= 2 else ""
    if r["n"] < r["n_runs"]:
        extra += f" [{r['n']}/{r['n_runs']} seeds]"
    return core + extra


def _seeds_text(seeds, values) -> str:
    return ";".join(f"{s}:{v:.10g}" for s, v in zip(seeds, values))


def render_table1(t: pd.DataFrame, unit: A.Unit) -> tuple[str, str, pd.DataFrame]:
    """(Markdown, LaTeX, CSV frame) of a ``table1`` result."""
    d = decimals(t["mean"])
    budgets = sorted(t["budget"].unique())
    rows = []
    for (sched, cond), g in t.groupby(["schedule", "condition"], sort=False):
        cells = {b: r for b, r in zip(g["budget"], g.to_dict("records"))}
        rows.append([sched, cond, *(table1_cell(cells[b], d) if b in cells else ""
                                    for b in budgets)])
    word = "lowest" if unit.lower_is_better else "highest"
    header = ["schedule", "strategy", *(f"≤ {budget_label(b)} it" for b in budgets)]
    md = markdown_table(header, _group_first(rows))
    tex = latex_table(header, _group_first(rows),
                      f"{word} {unit.title} reached up to each iteration budget")
    csv = t.assign(seeds=[_seeds_text(s, v) for s, v in zip(t["seeds"], t["values"])])
    return md, tex, csv.drop(columns=["values"])


# ---------------------------------------------------------------------------- time to target
def _ttt_cell(mean: float, ci: float, values, reached: int, n: int, d: int) -> str:
    if reached < n:
        return f"not reached by all seeds ({reached}/{n}): {_per_seed(values, d)}"
    out = num(mean, d) + (f" ± {num(ci, d)}" if n >= 2 else "")
    return out + (f" ({_per_seed(values, d)})" if n >= 2 else "")


def _relative_cost(r: dict) -> tuple[tuple, float, float]:
    """The cost axis in units of the baseline's 1D: (per-seed values, mean, CI half-width)."""
    ref = r["ref_cost"]
    ok = ref is not None and math.isfinite(ref) and ref > 0
    rel = tuple(v / ref if ok else math.nan for v in r["cost_values"])
    scale = 1.0 / ref if ok else math.nan
    return rel, r["cost_mean"] * scale, r["cost_ci95"] * scale


def render_time_to_target(t: pd.DataFrame, unit: A.Unit, baseline: str
                          ) -> tuple[str, str, pd.DataFrame]:
    dv = decimals(t["target"])
    dw = decimals([*t["ref_wall"], *(w for ws in t["wall_values"] for w in ws)])
    rows = []
    for r in t.to_dict("records"):
        sched = f"{r['schedule']} (target {num(r['target'], dv)})"
        it = _ttt_cell(r["iter_mean"], r["iter_ci95"], r["iter_values"], r["reached"],
                       r["n_runs"], 0)
        wall = _ttt_cell(r["wall_mean"], r["wall_ci95"], r["wall_values"], r["reached"],
                         r["n_runs"], dw)
        rel, rel_mean, rel_ci = _relative_cost(r)
        cost = _ttt_cell(rel_mean, rel_ci, rel, r["reached"], r["n_runs"], 2)
        if r["is_baseline"]:
            it = (f"1D = {num(r['ref_iter'], 0)} (final evaluation: "
                  f"{_per_seed(r['iter_values'], 0)})")
            wall = (f"1D = {num(r['ref_wall'], dw)} (final evaluation: "
                    f"{_per_seed(r['wall_values'], dw)})")
            cost = f"1D = {num(r['ref_cost'], 0)} forward-equivalents"
            sp_c = sp_i = sp_w = "1× (reference)"
        else:
            sp_c, sp_i, sp_w = (f"{num(r[k], 2)}×" if math.isfinite(r[k]) else "—"
                                for k in ("speedup_cost", "speedup_iter", "speedup_wall"))
        rows.append([sched, r["condition"], f"{r['reached']}/{r['n_runs']}", cost, sp_c, it,
                     sp_i, wall, sp_w])
    header = ["schedule", "strategy", "reached", "compute to target (× 1D)",
              "speed-up (compute)", "iterations to target", "speed-up (iterations)",
              "wall-clock to target (s, measured)", "speed-up (wall-clock, measured)"]
    md = markdown_table(header, _group_first(rows))
    tex = latex_table(header, _group_first(rows),
                      f"time to the {baseline} baseline's final {unit.title}")
    csv = t.assign(**{k: [";".join(f"{x:.10g}" for x in v) for v in t[k]]
                      for k in ("seeds", "iter_values", "wall_values", "cost_values")})
    return md, tex, csv


# ---------------------------------------------------------------------------- Table 4
def _pair_cell(mean: float, ci: float, n: int, runs: int, d: int, bold: bool) -> str:
    if n == 0:
        return "—" + (f" (0/{runs} seeds)" if runs else "")
    core = num(mean, d) + (f" ± {num(ci, d)}" if n >= 2 else "")
    return (f"**{core}**" if bold else core) + (f" [{n}/{runs} seeds]" if n < runs else "")


def render_pair(t: pd.DataFrame, a: str, b: str, unit: A.Unit
                ) -> tuple[str, str, pd.DataFrame]:
    d = decimals([*t["a_mean"], *t["b_mean"]])
    budgets = sorted(t["budget"].unique())
    rows = []
    for (sched, variant), g in t.groupby(["schedule", "variant"], sort=False):
        cells = {bu: r for bu, r in zip(g["budget"], g.to_dict("records"))}
        label = sched + (f" [{variant}]" if variant else "")
        for side in ("a", "b"):
            name = g[f"{side}_label"].iloc[0]
            rows.append([label, name, *(_pair_cell(cells[bu][f"{side}_mean"],
                                                   cells[bu][f"{side}_ci95"],
                                                   cells[bu][f"{side}_n"],
                                                   cells[bu][f"{side}_runs"], d,
                                                   cells[bu]["best"] in (side, "tie"))
                                        if bu in cells else "" for bu in budgets)])
        diff = []
        for bu in budgets:
            r = cells.get(bu)
            if r is None or not math.isfinite(r["diff"]):
                diff.append("—")
                continue
            ci = f" ± {num(r['diff_ci95'], d)}" if math.isfinite(r["diff_ci95"]) else ""
            diff.append(f"{num(r['diff'], d)}{ci} ({r['test']})")
        rows.append([label, "difference (2nd − 1st)", *diff])
    header = ["schedule", "strategy", *(f"≤ {budget_label(bu)} it" for bu in budgets)]
    md = markdown_table(header, _group_first(rows))
    tex = latex_table(header, _group_first(rows), f"{a} vs {b}: {unit.title}")
    return md, tex, t


# ---------------------------------------------------------------------------- vs the baseline
VS_HEADER = ["schedule", "budget", "strategy", "baseline mean", "mean", "Δ vs baseline",
             "95 % CI of Δ", "n", "test", "verdict"]


def render_vs_baseline(t: pd.DataFrame, unit: A.Unit, baseline: str
                       ) -> tuple[str, str, pd.DataFrame]:
    d = decimals([*t["baseline_mean"], *t["mean"]])
    rows = []
    for r in t.to_dict("records"):
        ci = (f"[{num(r['diff_lo'], d)}, {num(r['diff_hi'], d)}]"
              if math.isfinite(r["diff_ci95"]) else "—")
        rows.append([r["schedule"] + (f" [{r['variant']}]" if r["variant"] else ""),
                     f"≤ {budget_label(r['budget'])} it", r["condition"],
                     num(r["baseline_mean"], d), num(r["mean"], d), num(r["diff"], d), ci,
                     f"{r['n']} vs {r['n_baseline']}", r["test"].split(",")[0] or "—",
                     r["verdict"]])
    md = markdown_table(VS_HEADER, _group_first(rows))
    tex = latex_table(VS_HEADER, _group_first(rows),
                      f"{unit.title}: every strategy vs {baseline}", labels=3)
    return md, tex, t


# ---------------------------------------------------------------------------- ranking
RANK_HEADER = ["strategy", "tasks", "runs per task", "IQM of score [95 % CI]",
               "mean score [95 % CI]", "P(better than baseline) [95 % CI]"]


def render_ranking(t: pd.DataFrame) -> tuple[str, str, pd.DataFrame, dict[str, str]]:
    """(Markdown, LaTeX, CSV frame, condition → label with its "did not adapt" mark)."""
    def iv(r, k, d=3):
        if not math.isfinite(r[k]):
            return "—"
        return f"{num(r[k], d)} [{num(r[k + '_lo'], d)}, {num(r[k + '_hi'], d)}]"

    labels = {r["condition"]: r["condition"] + (
        f" [{A.MARK}: {r['marked_tasks']}/{r['tasks']} tasks]" if r["marked_tasks"] else "")
        for r in t.to_dict("records")}
    rows = [[labels[r["condition"]], str(r["tasks"]), str(r["runs"]), iv(r, "iqm"),
             iv(r, "mean"), iv(r, "p_improve", 2)] for r in t.to_dict("records")]
    md = markdown_table(RANK_HEADER, rows)
    tex = latex_table(RANK_HEADER, rows, "strategies ranked across conditions (rliable)",
                      labels=1)
    return md, tex, t, labels


def _ranking(rep: Report, ev: pd.DataFrame, us: list[A.Unit], baseline: str,
             figures: bool) -> None:
    """rliable's aggregates across every task (unit × schedule × variant) with a baseline."""
    scores = A.ranking.task_scores(ev, us, baseline)
    n_tasks = scores["task"].nunique() if len(scores) else 0
    left = sorted({u.metric for u in us if not A.ranking.rankable(u.metric)})
    if left:
        rep.notes.append(f"not ranked across conditions: {', '.join(left)} (a score relative to "
                         f"the baseline's mean needs a metric bounded below by 0 whose estimates "
                         f"are too; unbiased MMD²/KID estimates lie near 0 with either sign)")
    if n_tasks < 2:
        rep.skipped.append(f"ranking across conditions (rliable): {n_tasks} task(s) with a "
                           f"'{baseline}' baseline; it needs 2 or more")
        return
    table, profiles = A.ranking.aggregate(scores, baseline)
    md, tex, csv, labels = render_ranking(table)
    rep.tables.append(Item(
        "ranking_across_conditions", "Strategies ranked across every condition (rliable)",
        f"Every strategy across the {n_tasks} tasks (metric × protocol × setting × schedule "
        f"[× variant]) it shares with '{baseline}': the score of a run is its best value up to "
        f"the task's largest budget relative to the baseline's mean there, (b̄ − x)/|b̄| "
        f"(sign flipped for higher-is-better metrics; 0 = the baseline, 0.1 = 10 % better). "
        f"IQM: interquartile mean over runs × tasks; P(better): the probability that a run "
        f"beats a baseline run of the same task, averaged over tasks; 95 % stratified-"
        f"bootstrap intervals ({A.ranking.REPS} replicates, fixed seed; Agarwal et al. 2021's "
        f"rliable estimators).", csv, md, tex))
    if figures:
        rep.figures.append(Item(
            "performance_profiles", "Performance profiles across every condition (rliable)",
            "Fraction of runs (over every task) whose normalised score exceeds τ, per "
            "strategy, with stratified-bootstrap 95 % bands; a curve to the right of another "
            "dominates it.", figure=A.fig_profiles(
                profiles.assign(condition=profiles["condition"].map(labels)), baseline)))


# ---------------------------------------------------------------------------- building
def _check_request(ev: pd.DataFrame, metrics: list[str] | None, pairs: list[tuple[str, str]],
                   budgets: list[int] | None, baseline: str | None) -> None:
    bad = [b for b in budgets or [] if b <= 0]
    if bad:
        raise A.ReportError(f"--budgets must be positive iteration counts, got "
                            f"{', '.join(map(str, bad))}")
    have = sorted(set(ev["metric"]))
    for m in metrics or []:
        if m not in have:
            raise A.ReportError(f"--metric {m!r}: not in the results; metrics present: "
                                f"{', '.join(have) or f'none (no {rundir.EVALS} rows)'}")
    labels = sorted(set(ev["strategy"]))
    if baseline is not None and labels and baseline not in labels:
        raise A.ReportError(f"--baseline {baseline!r}: no evaluated run has this strategy; "
                            f"strategies present: {', '.join(labels)}")
    for pair in pairs:
        for s in pair:
            if s not in labels:
                raise A.ReportError(f"--pair {s!r}: no evaluated run has this strategy; "
                                    f"strategies present: {', '.join(labels) or 'none'}")


def _where(u: A.Unit) -> str:
    return f"{u.setting}; {A.protocol_text(u.sampler, u.n_samples, u.metric)}"


def _unit_tables(rep: Report, ev: pd.DataFrame, u: A.Unit, budgets, baseline: str,
                 pairs: list[tuple[str, str]] | None, level: float, bwd_factor: float,
                 figures: bool) -> None:
    word = "lowest" if u.lower_is_better else "highest"
    t = A.table1(ev, u, budgets, level, baseline)
    if t.empty:
        rep.skipped.append(f"Table 1 for {u.title}: no evaluation of a counted run")
        return
    md, tex, csv = render_table1(t, u)
    rep.tables.append(Item(f"table1_{u.slug}", f"Best {u.metric} up to each budget "
                           f"(Table 1 style) — {_where(u)}", f"The {word} {u.metric} reached "
                           f"up to each iteration budget; mean ± 95 % CI over seeds (t) and the "
                           f"per-seed values. **Bold**: the best, separated from every other "
                           f"strategy (the 95 % CI of their difference, paired by seed where "
                           f"possible, excludes 0); ≈: tied for best (not separated from it).",
                           csv, md, tex))
    ttt = A.time_to_target(ev, u, baseline, level)
    if ttt.empty:
        rep.skipped.append(f"time-to-target for {u.title}: no done '{baseline}' baseline run")
    else:
        md, tex, csv = render_time_to_target(ttt, u, baseline)
        rep.tables.append(Item(f"time_to_target_{u.slug}", f"Time to {baseline}'s final "
                               f"{u.metric} — {_where(u)}", f"Time to target — until "
                               f"{u.metric} reaches the '{baseline}' baseline's final value "
                               f"(mean over its seeds): counted training compute in "
                               f"forward-equivalents (forward + {bwd_factor:g}·backward passes "
                               f"through the network, the strategy's own included) relative to "
                               f"the baseline's 1D, iterations, and measured wall-clock (subject "
                               f"to machine load); speed-up = baseline 1D / mean time on each "
                               f"axis.", csv, md, tex))
    vs = A.vs_baseline(ev, u, baseline, budgets, level)
    if vs.empty:
        rep.skipped.append(f"differences from '{baseline}' for {u.title}: no '{baseline}' run "
                           f"beside another strategy")
    else:
        md, tex, csv = render_vs_baseline(vs, u, baseline)
        rep.tables.append(Item(f"vs_{A.slugify(baseline)}_{u.slug}", f"Every strategy vs "
                               f"{baseline} — {_where(u)}", f"Each strategy's best {u.metric} up "
                               f"to each budget minus {baseline}'s (Δ; "
                               f"{'negative' if u.lower_is_better else 'positive'} = better), "
                               f"with the 95 % CI of Δ: paired by seed where both have ≥ 2 "
                               f"common seeds, else Welch. Verdict: better / worse when the CI "
                               f"excludes 0, tie when it contains 0.", csv, md, tex))
        fig = A.fig_forest(vs, u, baseline) if figures else None
        if fig is not None:
            rep.figures.append(Item(f"forest_{u.slug}", f"Difference from {baseline} (forest "
                                    f"plot) — {_where(u)}", f"Each strategy's difference from "
                                    f"{baseline} in {u.metric} at the largest budget, mean and "
                                    f"95 % CI (the table above), per schedule.", figure=fig))
    present = set(u.select(ev)["strategy"])
    for a, b in pairs or []:
        p = A.pair_table(ev, u, a, b, budgets, level)
        if p.empty or not {a, b} <= present:
            rep.skipped.append(f"Table 4 {a} vs {b} for {u.title}: not both evaluated")
            continue
        md, tex, csv = render_pair(p, a, b, u)
        rep.tables.append(Item(f"table4_{u.slug}_{A.slugify(a)}_vs_{A.slugify(b)}",
                               f"{a} vs {b} (Table 4 style) — {_where(u)}",
                               f"{a} vs {b}, {word} {u.metric} up to each budget; difference "
                               f"(2nd − 1st) with 95 % CI, paired by seed where both have ≥ 2 "
                               f"common seeds, else Welch.", csv, md, tex))


def _unit_figures(rep: Report, ev: pd.DataFrame, u: A.Unit, baseline: str, level: float
                  ) -> None:
    fig = A.fig_metric_vs_iteration(ev, u, baseline, level)
    if fig is not None:
        rep.figures.append(Item(f"{u.slug}_vs_iteration", f"{u.metric} vs training iteration "
                                f"— {_where(u)}", "Mean over seeds with a 95 % CI band "
                                "(clipped to the metric's range), per schedule.", figure=fig))
    for axis, slug, what in (("cost", "compute", "counted training compute"),
                             ("wall", "wallclock", "measured training wall-clock")):
        fig = A.fig_metric_vs_relative(ev, u, axis, baseline, level)
        if fig is None:
            rep.skipped.append(f"figure {u.title} vs relative {what} (Fig. 1/7): no done "
                               f"'{baseline}' run with it to define 1D")
            continue
        rep.figures.append(Item(f"{u.slug}_vs_{slug}", f"{u.metric} vs {what} (Fig. 1/7 "
                                f"style) — {_where(u)}", f"{u.metric} vs {what} relative to "
                                f"1D, the '{baseline}' baseline's cost to its final evaluation"
                                + (" (forward-equivalents)." if axis == "cost" else
                                   " (machine load included)."), figure=fig))


def _setting_slugs(settings: list[str]) -> dict[str, str]:
    if len(settings) <= 1:
        return {s: "" for s in settings}
    out, used = {}, set()
    for s in settings:
        base = "_" + A.slugify("_".join(p.strip().split("(")[0] for p in s.split("·")))
        slug, i = base, 2
        while slug in used:
            slug, i = f"{base}_{i}", i + 1
        used.add(slug)
        out[s] = slug
    return out


def _setting_figures(rep: Report, R: A.Results, baseline: str, level: float) -> None:
    counted = R.runs[R.runs["status"].isin(A.COUNTED)]
    settings = list(dict.fromkeys(counted["setting"]))
    slugs = _setting_slugs(settings)
    diag, p_t, t_hist = (R.timesteps[k] for k in ("diagnostics", "p_t", "t_hist"))
    for st in settings:
        sfx, where = slugs[st], f" — {st}" if len(settings) > 1 else ""
        fig = A.fig_train_loss(R.metrics, st, baseline, level)
        if fig is None:
            rep.skipped.append(f"training-loss figure{where}: no {rundir.METRICS} rows")
        else:
            rep.figures.append(Item(f"train_loss{sfx}", f"Training loss{where}",
                                    "Training loss (the logged per-example "
                                    f"ε-MSE, unweighted) vs iteration, mean over seeds with a "
                                    f"95 % band{where}.", figure=fig))
        d = diag[diag["setting"] == st]
        if d.empty:
            rep.skipped.append(f"Fig. 2/6 (per-timestep loss and gradient variance){where}: "
                               f"no {rundir.TIMESTEPS_DIR}/"
                               f"{rundir.TIMESTEP_FILES['diagnostics']} in a counted run")
        for cond in A.ordered_conditions(d, baseline) if len(d) else []:
            for w in sorted(set(d.loc[d["condition"] == cond, "weighting"])):
                fig = A.fig_timestep_diagnostics(diag, st, cond, w)
                fig_n = "2" if w == "ddpm" else "6"
                rep.figures.append(Item(
                    f"timesteps_{A.slugify(A.unmarked(cond))}_{w}{sfx}", f"Gradient variance "
                    f"and loss per timestep (Fig. {fig_n} style) — {cond}, {w} weighting{where}",
                    f"Gradient variance (top) and loss (bottom) per timestep across training "
                    f"(dark early → light late), {cond}, {w} weighting (Fig. {fig_n} "
                    f"style){where}.", figure=fig))
        scheds = sorted(set(p_t.loc[p_t["setting"] == st, "schedule"])
                        | set(t_hist.loc[t_hist["setting"] == st, "schedule"]), key=A.schedule_key)
        if not scheds:
            rep.skipped.append(f"Fig. 5 (p(t) across training){where}: no "
                               f"{rundir.TIMESTEPS_DIR}/{rundir.TIMESTEP_FILES['p_t']} or "
                               f"{rundir.TIMESTEP_FILES['t_hist']} in a counted run")
        weights = A.fixed_loss_weights(R.runs[R.runs["setting"] == st]) if scheds else {}
        for sched in scheds:
            rep.figures.append(Item(
                f"p_t_{sched}{sfx}", f"Timestep distributions (Fig. 5 style) — {sched} "
                f"schedule{where}", f"Each strategy's timestep distribution across training "
                f"as T·p(t) (1 = uniform; dark early → light late), {sched} schedule{where}.",
                figure=A.fig_p_t(p_t, t_hist, st, sched, baseline)))
            if weights:
                rep.figures.append(Item(
                    f"p_t_weighted_{sched}{sfx}", f"Timestep distributions with the loss "
                    f"weights folded in — {sched} schedule{where}", f"As the previous figure, "
                    f"with each fixed "
                    f"loss weighting converted to probabilities, p(t)·w(t)/Σ (Kim et al. "
                    f"Fig. 5's convention for Min-SNR and P2), {sched} schedule{where}.",
                    figure=A.fig_p_t(A.effective_p_t(p_t, weights), t_hist, st, sched,
                                     baseline, weighted=True)))


def _check_options(bwd_factor: float, adapt_threshold: float, load_tolerance: float) -> None:
    try:
        A.check_threshold(adapt_threshold)
    except ValueError as e:
        raise A.ReportError(str(e)) from None
    for name, v, rule in (("--bwd-factor", bwd_factor, ">= 0 (forwards per backward pass)"),
                          ("--load-tolerance", load_tolerance, ">= 0 (e.g. 0.2 = 20 %)")):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
            raise A.ReportError(f"{name} must be {rule}, got {v!r}")


ADAPT_HEADER = ["schedule", "strategy", "seed", "rows", "TV drawn t vs uniform",
                "TV drawn t vs initial", "TV p(t) mean", "TV p(t) final",
                "TV p·w vs initial (median)", "reward std (mean)", "reward–t corr. (mean)",
                "verdict"]


def render_adaptation(summ: pd.DataFrame, threshold: float) -> tuple[str, str]:
    rows = []
    for r in summ.to_dict("records"):
        verdict = "adapted" if r["adapted"] else A.MARK
        rows.append([r["schedule"], r["condition"], str(r["seed"]), str(r["rows"]),
                     *(num(r[k], 3) for k in ("drawn_tv", "drawn_tv_initial", "tv_uniform_mean",
                                              "tv_uniform_final", "eff_tv_median")),
                     *(num(r[k], d) for k, d in (("reward_std_mean", 6),
                                                 ("reward_t_corr_mean", 3))), verdict])
    md = markdown_table(ADAPT_HEADER, _group_first(rows))
    tex = latex_table(ADAPT_HEADER, _group_first(rows),
                      f"adaptation of the learned strategies (threshold {threshold:g})",
                      labels=3)
    return md, tex


def _adaptation(rep: Report, R: A.Results, summ: pd.DataFrame, threshold: float,
                baseline: str, figures: bool) -> None:
    """The adaptation table (per setting) and the TV-vs-iteration figure of learned runs."""
    if summ.empty:
        rep.skipped.append(f"adaptation table and figure: no {rundir.TIMESTEPS_DIR}/"
                           f"{rundir.TIMESTEP_FILES['adaptation']} (no learned strategy) in a "
                           f"counted run")
        return
    settings = list(dict.fromkeys(summ["setting"]))
    slugs = _setting_slugs(settings)
    for st in settings:
        s = summ[summ["setting"] == st]
        where = f" — {st}" if len(settings) > 1 else ""
        md, tex = render_adaptation(s, threshold)
        rep.tables.append(Item(
            f"adaptation{slugs[st]}", f"Adaptation of the learned strategies{where}",
            f"Adaptation of the learned strategies{where}: total "
            f"variation (TV) of the histogram of every t drawn from uniform and from the "
            f"strategy's initial p(t), of its p(t) from uniform at its updates (rows: one per "
            f"update, per log tick for every-step updaters), of the effective p(t)·w(t) from its "
            f"initial form, and for adaptive_beta the KL reward's std and its correlation with "
            f"the distance of t to S. A run whose drawn-t TV from its initial p(t) and median p·w "
            f"TV both stay below {threshold:g} is marked '{A.MARK}' here and in every table and "
            f"legend.", s, md, tex))
        if figures:
            fig = A.fig_adaptation(R.timesteps["adaptation"], st, threshold, baseline)
            if fig is not None:
                rep.figures.append(Item(f"adaptation{slugs[st]}", f"Adaptation of the learned "
                                        f"strategies vs iteration{where}",
                                        f"Total variation from uniform "
                                        f"of each learned run's p(t) at its updates (solid) and "
                                        f"of the t it drew so far (dashed) vs iteration{where}.",
                                        figure=fig))


def _marked(R: A.Results, m: dict) -> A.Results:
    """``R`` with "[did not adapt]" on the condition labels of the runs' frames (so every table
    row and legend carries it)."""
    if not m:
        return R
    return dataclasses.replace(
        R, runs=A.mark_conditions(R.runs, m), evals=A.mark_conditions(R.evals, m),
        metrics=A.mark_conditions(R.metrics, m),
        timesteps={k: A.mark_conditions(v, m) for k, v in R.timesteps.items()})


def build(R: A.Results, *, metrics: list[str] | None = None, budgets: list[int] | None = None,
          baseline: str | None = None, pairs: list[tuple[str, str]] | None = None,
          figures: bool = True, level: float = 0.95, bwd_factor: float = BWD_FACTOR,
          adapt_threshold: float = A.THRESHOLD,
          load_tolerance: float = A.LOAD_TOLERANCE) -> Report:
    """All tables and figures of a loaded results tree (pure: nothing is written). ``baseline``:
    the reference strategy label (an error if no run has it); None: uniform, where present.
    ``bwd_factor``: the cost of a backward pass in forwards (the compute axis);
    ``adapt_threshold``: the TV below which a learned run "did not adapt";
    ``load_tolerance``: the wall-clock disagreement among equal-cost runs that is warned of."""
    _check_request(R.counted(R.evals), metrics, pairs or [], budgets, baseline)
    _check_options(bwd_factor, adapt_threshold, load_tolerance)
    summ = A.summaries(R.counted(R.timesteps["adaptation"]), adapt_threshold)
    m = A.marks(summ)
    R, summ = _marked(R, m), A.mark_conditions(summ, m)
    ev = R.counted(R.evals)
    ev = ev.assign(cost=A.training_cost(ev, bwd_factor))
    baseline = baseline or "uniform"
    rep = Report(notes=list(R.notes))
    rep.notes += A.load_warnings(R.counted(R.metrics), load_tolerance, bwd_factor)
    _adaptation(rep, R, summ, adapt_threshold, baseline, figures)
    us = A.units(ev, metrics)
    if not us:
        rep.skipped.append(f"all tables and metric figures: no evaluation ({rundir.EVALS} row) "
                           "in a done or partial run")
    for u in us:
        _unit_tables(rep, ev, u, budgets, baseline, pairs, level, bwd_factor, figures)
        if figures:
            _unit_figures(rep, ev, u, baseline, level)
        if not A.known_direction(u.metric):
            rep.notes.append(f"metric {u.metric!r} has no known direction; treated as "
                             f"lower-is-better")
    if us:
        _ranking(rep, ev, us, baseline, figures)
    if figures:
        _setting_figures(rep, R, baseline, level)
    else:
        rep.skipped.append("all figures: --no-figures")
    return rep


# ---------------------------------------------------------------------------- the runs section
STATUS_TEXT = {"done": "done", "partial": f"partial (no {rundir.DONE}: running or stopped)",
               "failed": f"failed (diverged or stopped by an error: its {rundir.FAILED} file; "
                         f"not counted)",
               "not_started": "not started (config only)",
               "missing": f"missing (expected by {rundir.SWEEP}, no run directory)",
               "duplicate": "duplicate (same condition and seed as another run; not counted)"}


def seed_gaps(runs: pd.DataFrame) -> list[str]:
    """Lines for conditions whose seed set is not fully done, against the union of seeds of their
    setting × schedule (every status): which seeds are partial, missing, not started or absent."""
    lines = []
    runs = runs[runs["status"] != "duplicate"]
    multi = runs["setting"].nunique() > 1
    for (st, sched), g in runs.groupby(["setting", "schedule"], sort=False):
        seeds = sorted(set(g["seed"]))
        for cond, c in g.groupby("condition", sort=False):
            by_seed = dict(zip(c["seed"], c["status"]))
            gaps = [f"seed {s} {by_seed.get(s, 'absent')}" for s in seeds
                    if by_seed.get(s) != "done"]
            if gaps:
                where = f"{sched}" + (f", {st}" if multi else "")
                lines.append(f"{cond} ({where}): {len(seeds) - len(gaps)}/{len(seeds)} seeds "
                             f"done; " + ", ".join(gaps))
    return lines


def runs_section(R: A.Results) -> str:
    runs = R.runs
    counts = runs["status"].value_counts()
    out = ["## Runs", "", f"{len(runs)} runs: " + ", ".join(
        f"{counts[s]} {s}" for s in STATUS_TEXT if s in counts) + ". Tables and figures use "
        "done and partial runs (a partial run counts for the budgets its evaluations reached).",
        ""]
    for status in ("failed", "partial", "not_started", "missing", "duplicate"):
        sel = runs[runs["status"] == status]
        if len(sel):
            out += [f"**{STATUS_TEXT[status]}: {len(sel)}**", ""]
            out += [f"- `{r.run}` — {r.condition}, {r.schedule}, seed {r.seed}"
                    + (f": {r.note}" if r.note else "") for r in sel.itertuples()]
            out.append("")
    gaps = seed_gaps(runs)
    if gaps:
        out += ["**Incomplete seed sets** (table cells with fewer seeds say `[k/n seeds]`):", ""]
        out += [f"- {g}" for g in gaps] + [""]
    n_ev = R.evals.groupby("run")["step"].nunique()
    rows = [[r.sweep, f"`{r.run_id}`", r.condition, r.schedule, str(r.seed), r.status,
             f"{r.last_step}/{r.iterations}", str(int(n_ev.get(r.run, 0))), r.note]
            for r in runs.itertuples()]
    out += ["### All runs", "", markdown_table(
        ["sweep", "run", "strategy", "schedule", "seed", "status", "step/budget",
         "eval steps", "note"], rows)]
    return "\n".join(out)


# ---------------------------------------------------------------------------- index and files
STATS_TEXT = (
    "Statistics: a table cell is the mean over seeds of each run's best value up to the budget, "
    "± the half-width of the 95 % Student-t interval t₀.₉₇₅,ₙ₋₁·s/√n (s: sample standard "
    "deviation), followed by the per-seed values. Differences from the baseline are paired by "
    "seed when both strategies share ≥ 2 seeds, else Welch. Across conditions, rliable's "
    "stratified-bootstrap intervals. See docs/report.md.")


def index_md(rep: Report, R: A.Results, formats: list[str], command: str) -> str:
    out = [f"# Report: `{R.root}`", "", f"Generated by `{command}`.", "", STATS_TEXT, ""]
    if rep.notes:
        out += ["**Notes**", "", *(f"- {n}" for n in rep.notes), ""]
    out += ["## Tables", ""]
    for t in rep.tables:
        files = " · ".join(f"[{f}](tables/{t.slug}.{f})" for f in formats)
        out += [f"### {t.title}", "", t.caption, "", t.md, f"Files (`{t.slug}`): {files}", ""]
    if not rep.tables:
        out += ["No table (see Skipped).", ""]
    out += ["## Figures", ""]
    for f in rep.figures:
        out += [f"### {f.title}", "", f.caption, "",
                f"![{f.caption}](figures/{f.slug}.png)", "",
                f"Files (`{f.slug}`): [PNG](figures/{f.slug}.png) · "
                f"[PDF](figures/{f.slug}.pdf)", ""]
    if not rep.figures:
        out += ["No figure (see Skipped).", ""]
    out += ["## Skipped", ""]
    out += [f"- {s}" for s in rep.skipped] or ["Nothing was skipped."]
    out += ["", runs_section(R)]
    return "\n".join(out).rstrip() + "\n"
