"""Tables (DataFrames) over the tidy evaluation frame, per evaluation unit (setting × metric ×
protocol): ``table1`` — the best value of a metric reached up to each iteration budget per
strategy × schedule (Kim et al. 2025, Table 1), mean ± 95 % t-interval over seeds;
``time_to_target`` — the counted training cost (forward-equivalents, the ``cost`` column of the
evaluation frame: bench.analysis.cost), iterations and measured training wall-clock to reach the
baseline's final value (AlgoPerf-style) and the speed-ups; ``pair_table`` — two strategies side
by side with their difference (Table 4 style)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd

from bench.analysis.adaptation import mark_of
from bench.analysis.load import COUNTED, schedule_key, sort_runs
from bench.analysis.stats import diff_ci, lower_is_better, mean_ci
from bench.rundir.runstate import REPORT_WORDS, RunState

# ---------------------------------------------------------------------------- evaluation units
@dataclass(frozen=True)
class Unit:
    """One table/figure family: a setting and an evaluation protocol (metric × sampler × n)."""

    setting: str
    metric: str
    sampler: str
    n_samples: int          # -1 when unknown
    slug: str               # file-name stem
    title: str

    def select(self, ev: pd.DataFrame) -> pd.DataFrame:
        n = ev["n_samples"].fillna(-1).astype(int)
        return ev[(ev["setting"] == self.setting) & (ev["metric"] == self.metric)
                  & (ev["sampler"] == self.sampler) & (n == self.n_samples)]

    @property
    def lower_is_better(self) -> bool:
        return lower_is_better(self.metric)


def setting_slug(setting: str) -> str:
    """A setting's file-name part: its pieces without their parameters (``digits_mlp``,
    ``digits_mlp_flow``)."""
    return slugify("_".join(p.strip().split("(")[0] for p in setting.split("·")))


def slugify(text: str, limit: int = 80) -> str:
    """A file-name part for ``text``; beyond ``limit`` characters (a setting that names many
    protocol keys) its start and a hash of the whole, so names stay unique and short enough."""
    import hashlib
    import re

    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"
    if len(slug) <= limit:
        return slug
    return f"{slug[:limit - 11]}_{hashlib.sha1(text.encode()).hexdigest()[:10]}"


def units(ev: pd.DataFrame, metrics: Iterable[str] | None = None) -> list[Unit]:
    """The evaluation units present (optionally only ``metrics``), in a stable order. File names
    (``slug``) do not depend on the ``metrics`` filter."""
    settings = sorted(set(ev["setting"]))
    if metrics is not None:
        ev = ev[ev["metric"].isin(list(metrics))]
    keys = ev.assign(_n=ev["n_samples"].fillna(-1).astype(int))[
        ["setting", "metric", "sampler", "_n", "dataset", "backbone"]].drop_duplicates()
    keys = keys.sort_values(["setting", "metric", "sampler", "_n"])
    out, used = [], set()
    for r in keys.itertuples(index=False):
        protocols = keys[(keys["setting"] == r.setting) & (keys["metric"] == r.metric)]
        parts = [r.metric]
        if len(protocols) > 1:
            parts.append(f"{r.sampler}_n{r._3}")
        if len(settings) > 1:
            parts.append(setting_slug(r.setting))
        slug = base = slugify("_".join(parts))
        i = 2
        while slug in used:
            slug, i = f"{base}_{i}", i + 1
        used.add(slug)
        n = f", n={r._3}" if r._3 >= 0 else ""
        title = f"{r.metric} ({r.sampler or 'sampler ?'}{n})"
        if len(settings) > 1:
            title += f" — {r.setting}"
        out.append(Unit(r.setting, r.metric, r.sampler, int(r._3), slug, title))
    return out


# ---------------------------------------------------------------------------- Table 1
COND_COLUMNS = ["setting", "schedule", "variant", "condition", "strategy"]


def default_budgets(ev: pd.DataFrame) -> list[int]:
    """The evaluated steps (> 0; the initial model alone is no budget)."""
    steps = sorted({int(s) for s in ev["step"]})
    return [s for s in steps if s > 0] or steps


def best_up_to(ev: pd.DataFrame, budgets: Iterable[int]) -> pd.DataFrame:
    """Per run × budget b: the best (lowest, or highest for higher-is-better metrics) value over
    the run's evaluations at steps ≤ b. NaN when the run has no evaluation at or after b yet
    (a partial run that has not got there) or none up to b."""
    rows = []
    for run, g in ev.groupby("run", sort=False):
        lower, last, first = lower_is_better(g["metric"].iloc[0]), g["step"].max(), g.iloc[0]
        for b in budgets:
            sub = g.loc[g["step"] <= b, "value"].dropna()
            val = (sub.min() if lower else sub.max()) if (last >= b and len(sub)) else math.nan
            rows.append({**{c: first[c] for c in COND_COLUMNS}, "run": run,
                         "seed": first["seed"], "budget": int(b), "value": float(val)})
    return pd.DataFrame(rows, columns=[*COND_COLUMNS, "run", "seed", "budget", "value"])


def _aggregate(per_run: pd.DataFrame, level: float) -> pd.DataFrame:
    rows = []
    for key, g in per_run.groupby([*COND_COLUMNS, "budget"], sort=False):
        ok = g.dropna(subset=["value"])
        m, half, sd, n = mean_ci(ok["value"], level)
        rows.append({**dict(zip([*COND_COLUMNS, "budget"], key)), "n": n,
                     "n_runs": g["run"].nunique(), "mean": m, "ci95": half, "std": sd,
                     "seeds": tuple(ok["seed"]), "values": tuple(ok["value"])})
    return pd.DataFrame(rows)


def _separated(a: dict, b: dict, level: float) -> bool | None:
    """True when the CI of the difference of two {seed: value} conditions excludes 0, False when
    it contains 0, None without an interval (a side with one value)."""
    d, half, _ = diff_ci(a, b, level)
    return None if not np.isfinite(half) else bool(abs(d) > half)


def _mark_best(df: pd.DataFrame, lower: bool, level: float = 0.95) -> pd.DataFrame:
    """Per (setting, schedule, budget) column, among the conditions whose every seed has a value
    there (a partial condition is never marked): ``best`` where the best mean is separated from
    every other condition (the 95 % CI of their difference, paired by seed where possible,
    excludes 0), else ``tied`` on the best and on every condition whose interval contains 0;
    nothing where a comparison has no interval (one seed)."""
    out = pd.DataFrame(False, index=df.index, columns=["best", "tied"])
    for _, g in df.groupby(["setting", "schedule", "budget"], sort=False):
        ok = g[(g["n"] == g["n_runs"]) & g["mean"].notna()]
        if ok.empty:
            continue
        top = ok["mean"].idxmin() if lower else ok["mean"].idxmax()
        per = {i: dict(zip(r["seeds"], r["values"])) for i, r in ok.iterrows()}
        sep = {i: _separated(per[top], per[i], level) for i in ok.index if i != top}
        if None in sep.values():
            continue
        ties = [i for i, s in sep.items() if not s]
        if ties:
            out.loc[[top, *ties], "tied"] = True
        else:
            out.loc[top, "best"] = True
    return out


def table1(ev: pd.DataFrame, unit: Unit, budgets: Iterable[int] | None = None,
           level: float = 0.95, baseline: str = "uniform") -> pd.DataFrame:
    """Kim et al. Table 1: the best value of ``unit.metric`` reached up to each budget, per
    condition (strategy × schedule [× variant]), mean ± CI half-width over seeds with the
    per-seed values; ``best`` marks a best mean separated from the runner-up, ``tied`` the
    conditions not separated from the best, per schedule and budget (``_mark_best``). Only
    done and partial runs count; ``n`` = seeds with a value, ``n_runs`` = seeds in the
    condition."""
    data = unit.select(ev)
    data = data[data["status"].isin(COUNTED)]
    budgets = list(budgets) if budgets is not None else default_budgets(data)
    if data.empty or not budgets:
        return pd.DataFrame()
    out = _aggregate(best_up_to(data, budgets), level)
    out = out.sort_values(["budget"], kind="stable")
    out = sort_runs(out.assign(seed=0), baseline).drop(columns="seed").reset_index(drop=True)
    out[["best", "tied"]] = _mark_best(out, unit.lower_is_better, level)
    out.insert(1, "metric", unit.metric)
    out["lower_is_better"] = unit.lower_is_better
    return out


# ---------------------------------------------------------------------------- time to target
AXES = ("iter", "wall", "cost")      # iterations, measured wall-clock, counted cost
AXIS_COLUMN = {"iter": "step", "wall": "wall_s_train", "cost": "cost"}


def _at(row: pd.Series) -> tuple[float, ...]:
    return tuple(float(row[AXIS_COLUMN[a]]) if AXIS_COLUMN[a] in row else math.nan for a in AXES)


def _reaches(g: pd.DataFrame, target: float, lower: bool) -> tuple[float, ...]:
    """(step, wall_s_train, cost) of the run's first evaluation at or past ``target``; NaN if
    none."""
    g = g.sort_values("step")
    hit = g[(g["value"] <= target) if lower else (g["value"] >= target)]
    if hit.empty:
        return (math.nan,) * len(AXES)
    return _at(hit.iloc[0])


def _mean_if_all(x: np.ndarray) -> float:
    """The mean when every seed has a value on this axis (never a mean over a subset)."""
    return float(x.mean()) if len(x) and np.isfinite(x).all() else math.nan


def baseline_reference(ev: pd.DataFrame, lower: bool) -> dict | None:
    """From the done baseline runs of one schedule: the target (mean over seeds of the value at
    each run's final evaluation) and "1D" = mean step, training wall-clock and counted cost of
    that final evaluation (the time the baseline takes to converge, Kim et al. Fig. 1). None
    without runs."""
    finals = []
    done = ev[ev["status"] == REPORT_WORDS[RunState.DONE]]
    for _, g in sorted(done.groupby("run"), key=lambda kv: (kv[1]["seed"].iloc[0], kv[0])):
        last = g[g["step"] == g["step"].max()].iloc[-1]    # seed order: sums independent of ids
        finals.append((last["value"], *_at(last)))
    if not finals:
        return None
    v, s, w, c = (np.array(x, dtype=float) for x in zip(*finals))
    return {"target": float(np.nanmean(v)), "ref_iter": float(s.mean()),
            "ref_wall": _mean_if_all(w), "ref_cost": _mean_if_all(c), "n_baseline": len(finals)}


def _final(g: pd.DataFrame) -> tuple[float, ...]:
    return _at(g[g["step"] == g["step"].max()].iloc[-1])


def time_to_target(ev: pd.DataFrame, unit: Unit, baseline: str = "uniform",
                   level: float = 0.95) -> pd.DataFrame:
    """Per condition: iterations, measured training wall-clock (s) and counted cost
    (forward-equivalents; ``ev["cost"]``, NaN where absent) at the first evaluation reaching the
    baseline's final value (per seed; mean ± CI when every seed reached it, else NaN) and the
    speed-up = baseline 1D / mean time-to-target on each axis. The baseline's own row is its 1D,
    the time of its final evaluation per seed (the target is defined there), with speed-up 1."""
    data = unit.select(ev)
    data = data[data["status"].isin(COUNTED)]
    rows = []
    for (setting, schedule, variant), g in data.groupby(["setting", "schedule", "variant"],
                                                          sort=False):
        ref = baseline_reference(g[g["strategy"] == baseline], unit.lower_is_better)
        if ref is None:
            continue
        for cond, c in g.groupby("condition", sort=False):
            is_base = c["strategy"].iloc[0] == baseline
            if is_base:
                c = c[c["status"] == REPORT_WORDS[RunState.DONE]]
            per = {r["seed"].iloc[0]: _final(r) if is_base else
                   _reaches(r, ref["target"], unit.lower_is_better) for _, r in c.groupby("run")}
            per = dict(sorted(per.items()))       # by seed, whatever the run ids
            k = int(np.isfinite([p[0] for p in per.values()]).sum())
            row = {"setting": setting, "schedule": schedule, "variant": variant,
                   "condition": cond, "strategy": c["strategy"].iloc[0], **ref,
                   "n_runs": len(per), "reached": k, "seeds": tuple(per)}
            for i, axis in enumerate(AXES):
                vals = [p[i] for p in per.values()]
                complete = k == len(per) and bool(np.isfinite(vals).all())
                m, ci, _, _ = mean_ci(vals, level) if complete else (math.nan,) * 4
                row.update({f"{axis}_values": tuple(vals), f"{axis}_mean": m,
                            f"{axis}_ci95": ci,
                            f"speedup_{axis}": 1.0 if is_base else ref[f"ref_{axis}"] / m})
            rows.append({**row, "is_baseline": is_base})
    if not rows:
        return pd.DataFrame()
    out = pd.DataFrame(rows).assign(seed=0)
    return sort_runs(out, baseline).drop(columns="seed").reset_index(drop=True)


# ---------------------------------------------------------------------------- vs the baseline
VERDICTS = ("better", "worse", "tie", "no interval")


def verdict(diff: float, half: float, lower: bool) -> str:
    """"better" / "worse" when the CI of (condition − baseline) excludes 0 (in the metric's
    direction), "tie" when it contains 0, "no interval" below 2 values a side."""
    if not (math.isfinite(diff) and math.isfinite(half)):
        return "no interval"
    if abs(diff) <= half:
        return "tie"
    return "better" if (diff < 0) == lower else "worse"


def vs_baseline(ev: pd.DataFrame, unit: Unit, baseline: str = "uniform",
                budgets: Iterable[int] | None = None, level: float = 0.95) -> pd.DataFrame:
    """Every condition against the baseline of its (setting, schedule, variant), per budget: the
    best-up-to-budget means, Δ = condition − baseline with its 95 % CI (``diff_ci``: paired by
    seed where ≥ 2 seeds are common, else Welch), n, and the verdict (``verdict``)."""
    data = unit.select(ev)
    data = data[data["status"].isin(COUNTED)]
    budgets = list(budgets) if budgets is not None else default_budgets(data)
    if data.empty or not budgets or baseline not in set(data["strategy"]):
        return pd.DataFrame()
    per = best_up_to(data, budgets).dropna(subset=["value"])
    rows = []
    for (setting, schedule, variant, budget), g in per.groupby(
            ["setting", "schedule", "variant", "budget"], sort=False):
        base = g[g["strategy"] == baseline]
        if base.empty:
            continue
        vb = dict(zip(base["seed"], base["value"]))
        mb = mean_ci(vb.values(), level)[0]
        for cond, c in g[g["strategy"] != baseline].groupby("condition", sort=False):
            vc = dict(zip(c["seed"], c["value"]))
            d, half, test = diff_ci(vb, vc, level)
            rows.append({"setting": setting, "schedule": schedule, "variant": variant,
                         "condition": cond, "strategy": c["strategy"].iloc[0],
                         "budget": int(budget), "baseline_mean": mb,
                         "mean": mean_ci(vc.values(), level)[0], "diff": d, "diff_ci95": half,
                         "diff_lo": d - half, "diff_hi": d + half, "n": len(vc),
                         "n_baseline": len(vb), "test": test,
                         "verdict": verdict(d, half, unit.lower_is_better), "seed": 0})
    if not rows:
        return pd.DataFrame()
    out = sort_runs(pd.DataFrame(rows), baseline).drop(columns="seed")
    key = pd.Series([(st, schedule_key(sc), b) for st, sc, b in
                     zip(out["setting"], out["schedule"], out["budget"])], index=out.index)
    return out.loc[sorted(out.index, key=lambda i: key[i])].reset_index(drop=True)


# ---------------------------------------------------------------------------- Table 4: a pair
def _mark_of(conditions: pd.Series) -> str:
    """The mark of the first marked condition label among ``conditions`` ('' if none)."""
    return next((mark_of(c) for c in conditions if mark_of(c)), "")


def pair_table(ev: pd.DataFrame, unit: Unit, a: str, b: str,
               budgets: Iterable[int] | None = None, level: float = 0.95) -> pd.DataFrame:
    """Kim et al. Table 4 for strategies ``a`` and ``b`` (labels): per schedule [× variant] and
    budget, each one's best-up-to-budget mean ± CI (``a_n`` seeds with a value of ``a_runs``),
    the difference b − a with its CI (``diff_ci``), and which one is better (``best``: "a" or "b"
    when the CI of the difference excludes 0 (``verdict``), "tie" when it does not or there is
    no interval, "" when a side lacks seeds at that budget)."""
    data = unit.select(ev)
    data = data[data["status"].isin(COUNTED) & data["strategy"].isin([a, b])]
    budgets = list(budgets) if budgets is not None else default_budgets(data)
    if data.empty or not budgets:
        return pd.DataFrame()
    per = best_up_to(data, budgets)
    rows = []
    for (setting, schedule, variant, budget), g in per.groupby(
            ["setting", "schedule", "variant", "budget"], sort=False):
        ok = g.dropna(subset=["value"])
        va = dict(zip(ok.loc[ok["strategy"] == a, "seed"], ok.loc[ok["strategy"] == a, "value"]))
        vb = dict(zip(ok.loc[ok["strategy"] == b, "seed"], ok.loc[ok["strategy"] == b, "value"]))
        ra, rb = (int((g["strategy"] == x).sum()) for x in (a, b))
        ma, ha, _, na = mean_ci(va.values(), level)
        mb, hb, _, nb = mean_ci(vb.values(), level)
        d, hd, test = diff_ci(va, vb, level)
        v = verdict(d, hd, unit.lower_is_better)          # b relative to a
        best = "" if na == 0 or nb == 0 or na < ra or nb < rb else (
            {"better": "b", "worse": "a"}.get(v, "tie"))
        label = {x: x + _mark_of(g.loc[g["strategy"] == x, "condition"]) for x in (a, b)}
        rows.append({"setting": setting, "schedule": schedule, "variant": variant,
                     "budget": int(budget), "a": a, "a_label": label[a],
                     "b_label": label[b], "a_mean": ma, "a_ci95": ha, "a_n": na,
                     "a_runs": ra, "b": b, "b_mean": mb, "b_ci95": hb, "b_n": nb, "b_runs": rb,
                     "diff": d, "diff_ci95": hd,
                     "test": test, "best": best})
    out = pd.DataFrame(rows)
    key = [(schedule_key(s), v, bu) for s, v, bu in zip(out["schedule"], out["variant"],
                                                         out["budget"])]
    return out.iloc[sorted(range(len(out)), key=lambda i: (out["setting"].iloc[i], key[i]))
                    ].reset_index(drop=True)


