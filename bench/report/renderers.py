"""The table renderers: each analysis frame (bench.analysis.tables, .ranking, .adaptation) as
its Markdown and LaTeX text and its CSV frame — the cells (mean ± CI with per-seed values, bold
best, ≈ ties, seed counts), the headers and the rows. Formatting is bench.report.formatting's;
the words are bench.report.captions'."""

from __future__ import annotations

import math

import pandas as pd

from bench.analysis.adaptation import MARK
from bench.analysis.tables import Unit
from bench.report import captions
from bench.report.formatting import (both_tables, budget_label, decimals, latex_table,
                                     markdown_table, num, per_seed, seeds_text)


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
    extra = f" ({per_seed(r['values'], d)})" if r["n"] >= 2 else ""
    if r["n"] < r["n_runs"]:
        extra += f" [{r['n']}/{r['n_runs']} seeds]"
    return core + extra


def render_table1(t: pd.DataFrame, unit: Unit) -> tuple[str, str, pd.DataFrame]:
    """(Markdown, LaTeX, CSV frame) of a ``table1`` result."""
    d = decimals(t["mean"])
    budgets = sorted(t["budget"].unique())
    rows = []
    for (sched, cond), g in t.groupby(["schedule", "condition"], sort=False):
        cells = {b: r for b, r in zip(g["budget"], g.to_dict("records"))}
        rows.append([sched, cond, *(table1_cell(cells[b], d) if b in cells else ""
                                    for b in budgets)])
    header = ["schedule", "strategy", *(f"≤ {budget_label(b)} it" for b in budgets)]
    md, tex = both_tables(header, rows, captions.table1_tex(unit))
    csv = t.assign(seeds=[seeds_text(s, v) for s, v in zip(t["seeds"], t["values"])])
    return md, tex, csv.drop(columns=["values"])


# ---------------------------------------------------------------------------- time to target
TTT_HEADER = ["schedule", "strategy", "reached", "compute to target (× 1D)",
              "speed-up (compute)", "iterations to target", "speed-up (iterations)",
              "wall-clock to target (s, measured)", "speed-up (wall-clock, measured)"]
REFERENCE = "1× (reference)"


def _ttt_cell(mean: float, ci: float, values, reached: int, n: int, d: int) -> str:
    if reached < n:
        return f"not reached by all seeds ({reached}/{n}): {per_seed(values, d)}"
    out = num(mean, d) + (f" ± {num(ci, d)}" if n >= 2 else "")
    return out + (f" ({per_seed(values, d)})" if n >= 2 else "")


def _relative_cost(r: dict) -> tuple[tuple, float, float]:
    """The cost axis in units of the baseline's 1D: (per-seed values, mean, CI half-width)."""
    ref = r["ref_cost"]
    ok = ref is not None and math.isfinite(ref) and ref > 0
    rel = tuple(v / ref if ok else math.nan for v in r["cost_values"])
    scale = 1.0 / ref if ok else math.nan
    return rel, r["cost_mean"] * scale, r["cost_ci95"] * scale


def _ttt_row(r: dict, dv: int, dw: int) -> list[str]:
    sched = f"{r['schedule']} (target {num(r['target'], dv)})"
    it = _ttt_cell(r["iter_mean"], r["iter_ci95"], r["iter_values"], r["reached"],
                   r["n_runs"], 0)
    wall = _ttt_cell(r["wall_mean"], r["wall_ci95"], r["wall_values"], r["reached"],
                     r["n_runs"], dw)
    rel, rel_mean, rel_ci = _relative_cost(r)
    cost = _ttt_cell(rel_mean, rel_ci, rel, r["reached"], r["n_runs"], 2)
    if r["is_baseline"]:
        it = (f"1D = {num(r['ref_iter'], 0)} (final evaluation: "
              f"{per_seed(r['iter_values'], 0)})")
        wall = (f"1D = {num(r['ref_wall'], dw)} (final evaluation: "
                f"{per_seed(r['wall_values'], dw)})")
        cost = f"1D = {num(r['ref_cost'], 0)} forward-equivalents"
        sp_c = sp_i = sp_w = REFERENCE
    else:
        sp_c, sp_i, sp_w = (f"{num(r[k], 2)}×" if math.isfinite(r[k]) else "—"
                            for k in ("speedup_cost", "speedup_iter", "speedup_wall"))
    return [sched, r["condition"], f"{r['reached']}/{r['n_runs']}", cost, sp_c, it, sp_i, wall,
            sp_w]


def render_time_to_target(t: pd.DataFrame, unit: Unit, baseline: str
                          ) -> tuple[str, str, pd.DataFrame]:
    dv = decimals(t["target"])
    dw = decimals([*t["ref_wall"], *(w for ws in t["wall_values"] for w in ws)])
    rows = [_ttt_row(r, dv, dw) for r in t.to_dict("records")]
    md, tex = both_tables(TTT_HEADER, rows, captions.time_to_target_tex(unit, baseline))
    csv = t.assign(**{k: [";".join(f"{x:.10g}" for x in v) for v in t[k]]
                      for k in ("seeds", "iter_values", "wall_values", "cost_values")})
    return md, tex, csv


# ---------------------------------------------------------------------------- Table 4
def _pair_cell(mean: float, ci: float, n: int, runs: int, d: int, bold: bool) -> str:
    if n == 0:
        return "—" + (f" (0/{runs} seeds)" if runs else "")
    core = num(mean, d) + (f" ± {num(ci, d)}" if n >= 2 else "")
    return (f"**{core}**" if bold else core) + (f" [{n}/{runs} seeds]" if n < runs else "")


def _diff_cell(r: dict | None, d: int) -> str:
    if r is None or not math.isfinite(r["diff"]):
        return "—"
    ci = f" ± {num(r['diff_ci95'], d)}" if math.isfinite(r["diff_ci95"]) else ""
    return f"{num(r['diff'], d)}{ci} ({r['test']})"


def render_pair(t: pd.DataFrame, a: str, b: str, unit: Unit
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
        rows.append([label, "difference (2nd − 1st)",
                     *(_diff_cell(cells.get(bu), d) for bu in budgets)])
    header = ["schedule", "strategy", *(f"≤ {budget_label(bu)} it" for bu in budgets)]
    md, tex = both_tables(header, rows, captions.pair_tex(unit, a, b))
    return md, tex, t


# ---------------------------------------------------------------------------- vs the baseline
VS_HEADER = ["schedule", "budget", "strategy", "baseline mean", "mean", "Δ vs baseline",
             "95 % CI of Δ", "n", "test", "verdict"]


def render_vs_baseline(t: pd.DataFrame, unit: Unit, baseline: str
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
    md, tex = both_tables(VS_HEADER, rows, captions.vs_baseline_tex(unit, baseline), labels=3)
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

    labels = {r["condition"]: captions.ranking_label(r["condition"], r["marked_tasks"],
                                                     r["tasks"])
              for r in t.to_dict("records")}
    rows = [[labels[r["condition"]], str(r["tasks"]), str(r["runs"]), iv(r, "iqm"),
             iv(r, "mean"), iv(r, "p_improve", 2)] for r in t.to_dict("records")]
    md = markdown_table(RANK_HEADER, rows)
    tex = latex_table(RANK_HEADER, rows, captions.RANKING_TEX, labels=1)
    return md, tex, t, labels


# ---------------------------------------------------------------------------- adaptation
ADAPT_HEADER = ["schedule", "strategy", "seed", "rows", "TV drawn t vs uniform",
                "TV drawn t vs initial", "TV p(t) mean", "TV p(t) final",
                "TV p·w vs initial (median)", "reward std (mean)", "reward–t corr. (mean)",
                "verdict"]
ADAPTED = "adapted"


def render_adaptation(summ: pd.DataFrame, threshold: float) -> tuple[str, str]:
    rows = []
    for r in summ.to_dict("records"):
        verdict = ADAPTED if r["adapted"] else MARK
        rows.append([r["schedule"], r["condition"], str(r["seed"]), str(r["rows"]),
                     *(num(r[k], 3) for k in ("drawn_tv", "drawn_tv_initial", "tv_uniform_mean",
                                              "tv_uniform_final", "eff_tv_median")),
                     *(num(r[k], d) for k, d in (("reward_std_mean", 6),
                                                 ("reward_t_corr_mean", 3))), verdict])
    return both_tables(ADAPT_HEADER, rows, captions.adaptation_tex(threshold), labels=3)
