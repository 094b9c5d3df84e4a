"""Analysis of a results tree: pure functions ``load → tables → figures`` (bench.report writes).

* **Load.** ``load(root)`` finds every run directory below ``root`` (a folder holding
  ``config.yaml``, as bench.train writes), reads config.yaml, metrics.jsonl, evals.csv and
  timesteps/*.csv, and returns a ``Results``: ``runs`` (one row per run, including runs a
  ``sweep.yaml`` expects but that are missing on disk), ``evals`` (the tidy frame, one row per run ×
  evaluation × metric), ``metrics`` (training log rows) and ``timesteps`` (diagnostics).
  ``load_results(root)`` returns the tidy frame alone. A corrupt file raises ``ReportError``
  naming it.
* **Tables** (DataFrames): ``table1`` — the best value of a metric reached up to each iteration
  budget per strategy × schedule (Kim et al. 2025, Table 1), mean ± 95 % t-interval over seeds;
  ``time_to_target`` — iterations and training wall-clock to reach the baseline's final value
  (AlgoPerf-style) and the speed-up; ``pair_table`` — two strategies side by side with their
  difference (Table 4 style).
* **Figures** (matplotlib ``Figure`` objects, no pyplot state): metric vs iteration, metric vs
  wall-clock relative to the baseline's time "1D" (Fig. 1/7), training loss, per-timestep loss and
  gradient variance across training (Fig. 2/6), p(t) across training (Fig. 5).

Conditions never mix: tables and figures are per *setting* (dataset × backbone) and per evaluation
*protocol* (metric × sampler × n_samples), so metrics of different extractors (``fd_cnn``,
``fid_inception``) never share a column. Within a setting, a condition is strategy × schedule ×
*variant* (any other hyperparameter that differs between runs, e.g. ``train.lr=0.001``); its runs
differ only by seed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
from scipy import stats

from bench import config as C
from bench import rundir
from bench.labels import component_label, flat, strategy_label, variant_keys
from bench.rundir import EVAL_COLUMNS, METRIC_COLUMNS, TIMESTEP_FILES, TIMESTEP_REQUIRED
from bench.sweep.spec import expand

# ---------------------------------------------------------------------------- constants
RUN_COLUMNS = ["run", "sweep", "run_id", "setting", "dataset", "backbone", "strategy",
               "strategy_name", "variant", "condition", "schedule", "seed", "iterations",
               "status", "last_step", "note", "path"]
COUNTED = ("done", "partial")          # statuses whose evaluations enter tables and figures
SCHEDULE_ORDER = ("linear", "cosine", "quad")

# Direction per metric family (prefix of the metric name): True = lower is better.
LOWER_IS_BETTER = {"fd_": True, "fid": True, "kid": True, "nll": True, "swd": True, "mmd": True,
                   "loss": True, "bpd": True, "is_": False, "inception_score": False,
                   "precision": False, "recall": False, "accuracy": False}


# A results tree the report cannot read; the message names the file and the problem.
ReportError = rundir.RunFileError


def lower_is_better(metric: str) -> bool:
    """Direction of ``metric``: FD/FID/KID/NLL/SWD/MMD are lower-is-better; IS, precision, recall
    higher-is-better. An unknown name is treated as lower-is-better (``known_direction``
    says so)."""
    for prefix, lower in LOWER_IS_BETTER.items():
        if metric.startswith(prefix):
            return lower
    return True


def known_direction(metric: str) -> bool:
    return any(metric.startswith(p) for p in LOWER_IS_BETTER)


# ---------------------------------------------------------------------------- reading files
def read_config(run_dir: Path) -> dict:
    """The run's config.yaml over bench.config.DEFAULTS (an older or hand-written config that
    lacks a key gets its default)."""
    cfg = rundir.read_config(run_dir)
    for key in ("strategy", "dataset", "backbone"):
        if key in cfg and not (isinstance(cfg[key], dict) and "name" in cfg[key]):
            raise ReportError(f"{rundir.config_path(run_dir)}: '{key}' must be a mapping with "
                              f"a 'name'")
    return C.deep_update(C.DEFAULTS, cfg)


# ---------------------------------------------------------------------------- one run
def _age(path: Path) -> str:
    s = max(time.time() - path.stat().st_mtime, 0.0)
    for unit, n in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= n:
            return f"{s / n:.0f} {unit}"
    return f"{s:.0f} s"


def _status(run_dir: Path, cfg: dict, metrics: pd.DataFrame, evals: pd.DataFrame,
            ) -> tuple[str, int, str]:
    """(status, last step, note): done (DONE exists), partial (progress, no DONE — running or
    stopped; the log's age tells which is likely) or not_started (no training row yet)."""
    last = int(max(metrics["step"].max() if len(metrics) else 0,
                   evals["step"].max() if len(evals) else 0))
    iters = int(cfg["train"]["iterations"])
    if rundir.is_done(run_dir):
        return "done", last, "" if len(evals) else "no evaluations"
    if len(metrics):
        newest = rundir.newest_write(run_dir)
        return "partial", last, (f"no DONE: at step {last} of {iters}, last write "
                                 f"{_age(newest)} ago (running or stopped)")
    return "not_started", 0, "config.yaml only: no training log yet"


def run_info(root: Path, run_dir: Path, cfg: dict) -> dict:
    """The run columns (without setting-level ``variant``/``condition``)."""
    rel = run_dir.relative_to(root) if run_dir != root else Path(run_dir.name)
    sweep = rel.parent.as_posix() if rel.parent != Path(".") else (
        root.name if run_dir != root else root.parent.name)
    dataset, backbone = component_label(cfg["dataset"]), component_label(cfg["backbone"])
    return {"run": f"{sweep}/{run_dir.name}", "sweep": sweep, "run_id": run_dir.name,
            "setting": f"{dataset} · {backbone}", "dataset": dataset, "backbone": backbone,
            "strategy": strategy_label(cfg["strategy"]), "strategy_name": cfg["strategy"]["name"],
            "schedule": str(cfg["diffusion"]["schedule"]), "seed": cfg["seed"],
            "iterations": int(cfg["train"]["iterations"]), "path": str(run_dir)}


def _expected_runs(sweep_file: Path, present: set[Path], notes: list[str]) -> list[tuple]:
    """(run dir, config) for runs that ``sweep.yaml`` (written by bench.launch) expects and that
    are absent on disk; a sweep file that no longer expands is a note, not an error."""
    try:
        runs = expand(C.load_yaml(sweep_file))
    except (ValueError, TypeError, KeyError) as e:
        notes.append(f"{sweep_file}: cannot expand the sweep to find missing runs ({e})")
        return []
    return [(sweep_file.parent / r.run_id, r.config) for r in runs
            if sweep_file.parent / r.run_id not in present]


# ---------------------------------------------------------------------------- the whole tree
@dataclass
class Results:
    """Everything ``load`` read. ``runs``: one row per run (RUN_COLUMNS), also missing and
    duplicate runs; ``evals``: tidy, one row per run × evaluation × metric; ``metrics``: training
    log rows; ``timesteps``: {"diagnostics", "p_t", "t_hist"}; all but ``runs`` carry the run
    columns. ``notes``: things the reader should know (unexpandable sweep files, ...)."""

    root: Path
    runs: pd.DataFrame
    evals: pd.DataFrame
    metrics: pd.DataFrame
    timesteps: dict[str, pd.DataFrame]
    notes: list[str] = field(default_factory=list)

    def counted(self, df: pd.DataFrame) -> pd.DataFrame:
        """Rows of runs whose data enter tables and figures (done or partial, not duplicates)."""
        return df[df["status"].isin(COUNTED)]


def _check_root(root: Path) -> None:
    if not root.exists():
        raise ReportError(f"{root}: no such directory")
    if not root.is_dir():
        raise ReportError(f"{root}: not a directory (give the results directory)")


def load(root: str | Path) -> Results:
    """Read the results tree below ``root`` (any depth, several sweeps, runs in progress)."""
    root = Path(root)
    _check_root(root)
    run_dirs, sweep_files = rundir.find_run_dirs(root)
    if not run_dirs:
        what = "is empty" if not any(root.iterdir()) else "is not a results tree"
        raise ReportError(f"{root} {what}: no run directory (a folder holding config.yaml, "
                          f"as bench.train writes) below it")
    notes: list[str] = []
    infos, evals, metrics, ts = [], [], [], {k: [] for k in TIMESTEP_FILES}
    for d in run_dirs:
        cfg = read_config(d)
        done = rundir.is_done(d)
        m, note = rundir.read_metrics(d, done)
        ev = rundir.read_evals(d)
        info = run_info(root, d, cfg)
        status, last, snote = _status(d, cfg, m, ev)
        info.update(status=status, last_step=last, note="; ".join(x for x in (snote, note) if x),
                    _config=cfg)
        infos.append(info)
        evals.append(ev.assign(run=info["run"]))
        metrics.append(m.assign(run=info["run"]))
        for kind, df in rundir.read_timesteps(d).items():
            ts[kind].append(df.assign(run=info["run"]))
    for sf in sweep_files:
        for d, cfg in _expected_runs(sf, set(run_dirs), notes):
            info = run_info(root, d, cfg)
            info.update(status="missing", last_step=0, _config=cfg,
                        note=f"expected by {sf.relative_to(root).as_posix()}, absent on disk")
            infos.append(info)
    runs = _finish_runs(pd.DataFrame(infos))
    return Results(root, runs, _with_runs(evals, runs, EVAL_COLUMNS),
                   _with_runs(metrics, runs, METRIC_COLUMNS),
                   {k: _with_runs(v, runs, TIMESTEP_REQUIRED[k]) for k, v in ts.items()}, notes)


def load_results(root: str | Path) -> pd.DataFrame:
    """The tidy frame: one row per run × evaluation × metric, run columns first."""
    return load(root).evals


def _finish_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Add variant/condition per setting, mark duplicate (condition, seed) runs, order rows."""
    runs = runs.copy()
    runs["variant"] = ""
    for _, idx in runs.groupby("setting").groups.items():
        cfgs = list(runs.loc[idx, "_config"])
        keys = variant_keys(cfgs)
        runs.loc[idx, "variant"] = [", ".join(f"{k}={flat(c).get(k, '<unset>')}" for k in keys)
                                    for c in cfgs]
    runs["condition"] = [s if not v else f"{s} [{v}]"
                         for s, v in zip(runs["strategy"], runs["variant"])]
    rank = {"done": 0, "partial": 1, "not_started": 2, "missing": 3}
    runs["_rank"] = runs["status"].map(rank)
    runs = runs.sort_values(["_rank", "run"], kind="stable")
    first: dict[tuple, str] = {}
    for i, r in runs.iterrows():
        key = (r["setting"], r["condition"], r["schedule"], r["seed"])
        if r["status"] != "missing" and key in first:
            runs.at[i, "note"] = f"same condition and seed as {first[key]}; not counted"
            runs.at[i, "status"] = "duplicate"
        elif r["status"] != "missing":
            first[key] = r["run"]
    runs = runs.drop(columns=["_config", "_rank"])
    return sort_runs(runs)[RUN_COLUMNS].reset_index(drop=True)


def schedule_key(s: str) -> tuple:
    return (SCHEDULE_ORDER.index(s) if s in SCHEDULE_ORDER else len(SCHEDULE_ORDER), s)


def sort_runs(df: pd.DataFrame, baseline: str = "uniform") -> pd.DataFrame:
    """Rows ordered by setting, schedule (linear, cosine, quad, ...), condition (baseline first),
    seed."""
    key = pd.DataFrame({
        "a": df["setting"],
        "b": [schedule_key(s) for s in df["schedule"]],
        "c": [(s != baseline, c) for s, c in zip(df["strategy"], df["condition"])],
        "d": df["seed"]}, index=df.index)
    order = sorted(df.index, key=lambda i: tuple(key.loc[i]))
    return df.loc[order]


def _with_runs(frames: list[pd.DataFrame], runs: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    data = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*cols, "run"])
    out = runs.drop(columns=["path", "note"]).merge(data, on="run", how="inner")
    if "metric" in out.columns:
        out["lower_is_better"] = [lower_is_better(m) for m in out["metric"]]
    return out.reset_index(drop=True)


# ---------------------------------------------------------------------------- statistics
def t_quantile(n: int, level: float = 0.95) -> float:
    """t_{(1+level)/2, n-1}: the two-sided Student-t critical value for n samples."""
    return float(stats.t.ppf(0.5 + level / 2.0, n - 1))


def mean_ci(values: Iterable[float], level: float = 0.95) -> tuple[float, float, float, int]:
    """(mean, CI half-width, sample std, n) of the finite values: half-width
    t_{0.975,n-1}·s/√n with s the ddof=1 standard deviation (NaN for n < 2)."""
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    n = len(x)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    if n == 1:
        return float(x[0]), math.nan, math.nan, 1
    s = float(x.std(ddof=1))
    return float(x.mean()), t_quantile(n, level) * s / math.sqrt(n), s, n


def diff_ci(a: dict, b: dict, level: float = 0.95) -> tuple[float, float, str]:
    """(mean(b) − mean(a), CI half-width, test) from {seed: value} of two conditions. With ≥ 2
    common seeds the difference is paired by seed (runs share data order and noise: common random
    numbers) — mean and t-interval of the per-seed differences; else Welch's interval with the
    Welch–Satterthwaite degrees of freedom; with fewer than 2 values on a side, no interval."""
    common = sorted(set(a) & set(b))
    if len(common) >= 2:
        m, half, _, n = mean_ci([b[s] - a[s] for s in common], level)
        return m, half, f"paired, n={n}"
    ma, _, sa, na = mean_ci(a.values(), level)
    mb, _, sb, nb = mean_ci(b.values(), level)
    if na == 0 or nb == 0:
        return math.nan, math.nan, ""
    if na < 2 or nb < 2:
        return mb - ma, math.nan, f"n={na} vs {nb}"
    va, vb = sa**2 / na, sb**2 / nb
    se = math.sqrt(va + vb)
    if se == 0:
        return mb - ma, 0.0, f"welch, n={na} vs {nb}"
    df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    return mb - ma, float(stats.t.ppf(0.5 + level / 2.0, df)) * se, f"welch, n={na} vs {nb}"


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


def slugify(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


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
            parts.append(f"{r.dataset.split('(')[0]}_{r.backbone.split('(')[0]}")
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


def _mark_best(df: pd.DataFrame, lower: bool) -> pd.Series:
    """True where the mean is the best of its (setting, schedule, budget) column (ties too),
    among the conditions whose every seed has a value there (a partial condition, with seeds
    that have not reached the budget, is never marked best)."""
    best = pd.Series(False, index=df.index)
    for _, g in df.groupby(["setting", "schedule", "budget"], sort=False):
        vals = g.loc[g["n"] == g["n_runs"], "mean"].dropna()
        if len(vals):
            target = vals.min() if lower else vals.max()
            best[vals.index[np.isclose(vals, target, rtol=1e-12, atol=0)]] = True
    return best


def table1(ev: pd.DataFrame, unit: Unit, budgets: Iterable[int] | None = None,
           level: float = 0.95, baseline: str = "uniform") -> pd.DataFrame:
    """Kim et al. Table 1: the best value of ``unit.metric`` reached up to each budget, per
    condition (strategy × schedule [× variant]), mean ± CI half-width over seeds with the
    per-seed values; ``best`` marks the best mean per schedule and budget (``_mark_best``). Only
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
    out["best"] = _mark_best(out, unit.lower_is_better)
    out.insert(1, "metric", unit.metric)
    out["lower_is_better"] = unit.lower_is_better
    return out


# ---------------------------------------------------------------------------- time to target
def _reaches(g: pd.DataFrame, target: float, lower: bool) -> tuple[float, float]:
    """(step, wall_s_train) of the run's first evaluation at or past ``target``; NaN if none."""
    g = g.sort_values("step")
    hit = g[(g["value"] <= target) if lower else (g["value"] >= target)]
    if hit.empty:
        return math.nan, math.nan
    return float(hit["step"].iloc[0]), float(hit["wall_s_train"].iloc[0])


def baseline_reference(ev: pd.DataFrame, lower: bool) -> dict | None:
    """From the done baseline runs of one schedule: the target (mean over seeds of the value at
    each run's final evaluation) and "1D" = mean step and mean training wall-clock of that final
    evaluation (the time the baseline takes to converge, Kim et al. Fig. 1). None without runs."""
    finals = []
    for _, g in ev[ev["status"] == "done"].groupby("run"):
        last = g[g["step"] == g["step"].max()].iloc[-1]
        finals.append((last["value"], last["step"], last["wall_s_train"]))
    if not finals:
        return None
    v, s, w = (np.array(x, dtype=float) for x in zip(*finals))
    return {"target": float(np.nanmean(v)), "ref_iter": float(s.mean()),
            "ref_wall": float(np.nanmean(w)) if np.isfinite(w).any() else math.nan,
            "n_baseline": len(finals)}


def _final(g: pd.DataFrame) -> tuple[float, float]:
    last = g[g["step"] == g["step"].max()].iloc[-1]
    return float(last["step"]), float(last["wall_s_train"])


def time_to_target(ev: pd.DataFrame, unit: Unit, baseline: str = "uniform",
                   level: float = 0.95) -> pd.DataFrame:
    """Per condition: iterations and training wall-clock (s) at the first evaluation reaching the
    baseline's final value (per seed; mean ± CI when every seed reached it, else NaN) and the
    speed-up = baseline 1D / mean time-to-target. The baseline's own row is its 1D, the time of
    its final evaluation per seed (the target is defined there), with speed-up 1."""
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
                c = c[c["status"] == "done"]
            per = {r["seed"].iloc[0]: _final(r) if is_base else
                   _reaches(r, ref["target"], unit.lower_is_better) for _, r in c.groupby("run")}
            steps, walls = [p[0] for p in per.values()], [p[1] for p in per.values()]
            k = int(np.isfinite(steps).sum())
            mi, ci_i, _, _ = mean_ci(steps, level) if k == len(per) else (math.nan,) * 4
            mw, ci_w, _, _ = mean_ci(walls, level) if k == len(per) else (math.nan,) * 4
            rows.append({"setting": setting, "schedule": schedule, "variant": variant,
                         "condition": cond, "strategy": c["strategy"].iloc[0], **ref,
                         "n_runs": len(per), "reached": k, "seeds": tuple(per),
                         "iter_values": tuple(steps), "iter_mean": mi, "iter_ci95": ci_i,
                         "wall_values": tuple(walls), "wall_mean": mw, "wall_ci95": ci_w,
                         "speedup_iter": 1.0 if is_base else ref["ref_iter"] / mi,
                         "speedup_wall": 1.0 if is_base else ref["ref_wall"] / mw,
                         "is_baseline": is_base})
    if not rows:
        return pd.DataFrame()
    out = pd.DataFrame(rows).assign(seed=0)
    return sort_runs(out, baseline).drop(columns="seed").reset_index(drop=True)


# ---------------------------------------------------------------------------- Table 4: a pair
def pair_table(ev: pd.DataFrame, unit: Unit, a: str, b: str,
               budgets: Iterable[int] | None = None, level: float = 0.95) -> pd.DataFrame:
    """Kim et al. Table 4 for strategies ``a`` and ``b`` (labels): per schedule [× variant] and
    budget, each one's best-up-to-budget mean ± CI (``a_n`` seeds with a value of ``a_runs``),
    the difference b − a with its CI (``diff_ci``), and which one is better (``best``: "a", "b",
    "tie", or "" when a side lacks seeds at that budget)."""
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
        best = "" if na == 0 or nb == 0 or na < ra or nb < rb else "tie" if ma == mb else (
            "a" if (ma < mb) == unit.lower_is_better else "b")
        rows.append({"setting": setting, "schedule": schedule, "variant": variant,
                     "budget": int(budget), "a": a, "a_mean": ma, "a_ci95": ha, "a_n": na,
                     "a_runs": ra, "b": b, "b_mean": mb, "b_ci95": hb, "b_n": nb, "b_runs": rb,
                     "diff": d, "diff_ci95": hd,
                     "test": test, "best": best})
    out = pd.DataFrame(rows)
    key = [(schedule_key(s), v, bu) for s, v, bu in zip(out["schedule"], out["variant"],
                                                         out["budget"])]
    return out.iloc[sorted(range(len(out)), key=lambda i: (out["setting"].iloc[i], key[i]))
                    ].reset_index(drop=True)


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
    scheds = _schedules(data)
    fig, axes = _figure(len(scheds))
    colors = _colors(ordered_conditions(data, baseline))
    for ax, sched in zip(axes[0], scheds):
        d = data[data["schedule"] == sched]
        _plot_conditions(ax, d, "value", "step", colors, baseline, level)
        ax.set(title=sched, xlabel="iteration", ylabel=_ylabel(unit.metric))
        _integer_x(ax)
        ax.grid(alpha=0.3)
    _suptitle(fig, unit.title)
    _legend(fig, axes)
    return fig


def fig_metric_vs_wallclock(ev: pd.DataFrame, unit: Unit, baseline: str = "uniform",
                            level: float = 0.95):
    """Kim et al. Fig. 1 / Fig. 7: the metric vs training wall-clock relative to "1D", the
    baseline's mean training time to its final evaluation, one panel per schedule that has a done
    baseline run. None when no schedule has one."""
    data = unit.select(ev)
    data = data[data["status"].isin(COUNTED)]
    refs = {s: baseline_reference(data[(data["schedule"] == s) & (data["strategy"] == baseline)
                                       & (data["variant"] == "")], unit.lower_is_better)
            for s in _schedules(data)}
    refs = {s: r for s, r in refs.items() if r and np.isfinite(r["ref_wall"]) and r["ref_wall"] > 0}
    if not refs:
        return None
    fig, axes = _figure(len(refs))
    colors = _colors(ordered_conditions(data, baseline))
    for ax, (sched, ref) in zip(axes[0], refs.items()):
        d = data[data["schedule"] == sched]
        d = d.assign(rel=d["wall_s_train"] / ref["ref_wall"])
        _plot_conditions(ax, d, "value", "rel", colors, baseline, level)
        ax.axvline(1.0, color="0.4", ls="--", lw=1)
        ax.text(1.0, 1.0, " 1D", transform=ax.get_xaxis_transform(), va="top", fontsize="small")
        ax.set(title=f"{sched} (1D = {ref['ref_wall']:.4g} s)", ylabel=_ylabel(unit.metric),
               xlabel=f"training wall-clock / 1D ({baseline})")
        ax.grid(alpha=0.3)
    _suptitle(fig, unit.title)
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
    scheds = _schedules(data)
    fig, axes = _figure(len(scheds))
    colors = _colors(ordered_conditions(data, baseline))
    for ax, sched in zip(axes[0], scheds):
        d = data[data["schedule"] == sched]
        _plot_conditions(ax, d, "loss", "step", colors, baseline, level)
        ax.set(title=sched, xlabel="iteration", ylabel="training loss (ε-MSE)")
        _integer_x(ax)
        if (d["loss"] > 0).all():
            ax.set_yscale("log")      # the y-range follows the curves, not the (wide) bands
            lo, hi = d.groupby(["condition", "step"])["loss"].mean().agg(["min", "max"])
            ax.set_ylim(lo / 1.5, hi * 1.5)
        ax.grid(alpha=0.3)
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
