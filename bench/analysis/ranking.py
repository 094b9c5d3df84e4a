"""Ranking the strategies across conditions (datasets × schedules × backbones × metrics) the
way rliable does (Agarwal et al., NeurIPS 2021, *Deep RL at the Edge of the Statistical
Precipice*): the interquartile mean (IQM) of normalised scores, the probability of improvement
over the baseline, and performance profiles, each with a stratified-bootstrap 95 % interval
(percentile method, runs resampled within each task). The estimators are rliable's
definitions, vectorised over bootstrap resamples here and checked equal to ``rliable.metrics``
in tests/test_report.py (rliable is a test dependency); the bootstrap is
``scipy.stats.bootstrap`` with one sample per task, which resamples each task's runs on their own
— stratified. (rliable's own bootstrap wrapper, ``rliable.library``, goes through arch, and no
arch release imports with both rliable 1.2 and pandas 3: arch < 8 fails under pandas 3, arch 8
rejects rliable's ``random_state``; and its estimators, one call per resample, made a report
60× slower.)
Per-condition intervals stay the tables' t-intervals over seeds.

A *task* is one (evaluation unit, schedule, variant) with a baseline — one protocol per setting
and metric, the one evaluated on the most runs; a run's score on it is its
best value up to the task's largest budget, normalised by the baseline's mean b̄ there:
``(b̄ − x) / |b̄|`` for lower-is-better metrics, ``(x − b̄) / |b̄|`` otherwise — 0 is the
baseline, 0.1 is 10 % better. A strategy is scored over the tasks it shares with the baseline,
with as many seeds per task as its smallest seed set (rliable needs runs × tasks matrices).
Bootstraps use a fixed seed, so a report is reproducible. A task with a single run per
strategy has no bootstrap interval (NaN).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

from bench.analysis.adaptation import mark_of, unmarked
from bench.analysis.load import COUNTED
from bench.analysis.stats import SIGNED_ESTIMATES, valid_range
from bench.analysis.tables import Unit, best_up_to, default_budgets

REPS = 2000          # bootstrap replicates
SEED = 0             # the bootstrap's random state
TAUS = 41            # points of a performance profile


def rankable(metric: str) -> bool:
    """Scores are relative to the baseline's mean: only metrics bounded below by 0 whose
    estimates are too (an unbiased MMD² or KID, near 0 with either sign, makes the ratio
    meaningless)."""
    return valid_range(metric)[0] == 0.0 and not metric.startswith(SIGNED_ESTIMATES)


def _one_protocol(ev: pd.DataFrame, units: list[Unit]) -> list[Unit]:
    """One unit per (setting, metric): the protocol evaluated on the most runs (a later
    re-evaluation of some runs with other samples must not count those runs twice)."""
    best: dict[tuple, tuple[int, Unit]] = {}
    for u in units:
        n = u.select(ev)["run"].nunique()
        key = (u.setting, u.metric)
        if key not in best or n > best[key][0]:
            best[key] = (n, u)
    return [u for _, u in best.values()]


def task_scores(ev: pd.DataFrame, units: Iterable[Unit], baseline: str = "uniform"
                ) -> pd.DataFrame:
    """One row per run and task (units of ``rankable`` metrics): task, condition (its label
    without the "did not adapt" mark), marked (whether it carried the mark), strategy, seed,
    value, score (normalised as in the module docstring)."""
    rows = []
    for u in _one_protocol(ev, [u for u in units if rankable(u.metric)]):
        data = u.select(ev)
        data = data[data["status"].isin(COUNTED)]
        if data.empty:
            continue
        budget = max(default_budgets(data))
        per = best_up_to(data, [budget]).dropna(subset=["value"])
        for (sched, variant), g in per.groupby(["schedule", "variant"], sort=False):
            base = g.loc[g["strategy"] == baseline, "value"]
            ref = float(base.mean()) if len(base) else np.nan
            if not np.isfinite(ref) or ref == 0:
                continue
            sign = 1.0 if u.lower_is_better else -1.0
            task = f"{u.slug}/{sched}" + (f"/{variant}" if variant else "")
            for r in g.itertuples(index=False):
                rows.append({"task": task, "condition": unmarked(r.condition),
                             "marked": bool(mark_of(r.condition)), "strategy": r.strategy,
                             "seed": r.seed, "value": r.value,
                             "score": sign * (ref - r.value) / abs(ref)})
    return pd.DataFrame(rows, columns=["task", "condition", "marked", "strategy", "seed",
                                       "value", "score"])


def _matrix(s: pd.DataFrame, tasks: list[str]) -> np.ndarray:
    """runs × tasks scores of one condition on ``tasks``: the first k seeds (by seed) of each
    task, k the smallest seed count."""
    cols = [s[s["task"] == t].sort_values("seed")["score"].to_numpy() for t in tasks]
    k = min(len(c) for c in cols)
    return np.stack([c[:k] for c in cols], axis=1)


def matrices(scores: pd.DataFrame, baseline: str = "uniform"
             ) -> dict[str, tuple[np.ndarray, np.ndarray, list[str]]]:
    """condition → (its runs × tasks matrix, the baseline's on the same tasks, the tasks)."""
    base_cond = scores.loc[scores["strategy"] == baseline, "condition"]
    if base_cond.empty:
        return {}
    out = {}
    for cond, s in scores.groupby("condition", sort=False):
        tasks = [t for t in dict.fromkeys(s["task"])
                 if (scores[(scores["task"] == t)]["strategy"] == baseline).any()]
        if not tasks:
            continue
        b = scores[(scores["strategy"] == baseline) & scores["task"].isin(tasks)]
        out[cond] = (_matrix(s, tasks), _matrix(b, tasks), tasks)
    return out


# The statistics, vectorised over bootstrap resamples (leading axes; the matrices are
# runs × tasks in the last two axes). Each equals rliable's estimator on one matrix
# (tests/test_report.py checks it): aggregate_iqm, aggregate_mean, probability_of_improvement.
def iqm(m: np.ndarray) -> np.ndarray:
    from scipy.stats import trim_mean

    return trim_mean(m.reshape(*m.shape[:-2], -1), 0.25, axis=-1)


def mean(m: np.ndarray) -> np.ndarray:
    return m.mean(axis=(-2, -1))


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) + ½ P(X = Y) per task over every pair of runs (the Mann–Whitney U / (n_x·n_y)
    that rliable computes), averaged over tasks."""
    a, b = x[..., :, None, :], y[..., None, :, :]
    return ((a > b) + 0.5 * (a == b)).mean(axis=(-3, -2)).mean(axis=-1)


def profile(m: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """The fraction of runs × tasks with a score above each τ: [..., len(taus)]."""
    return (m[..., None] > taus).mean(axis=(-3, -2))


def _interval(samples: list[np.ndarray], statistic, reps: int, rng):
    """(point, low, high) of ``statistic(columns)`` — columns: the ``samples``, one per task
    (and side), each [..., n]; returns [..., k] — with the stratified percentile bootstrap
    (each sample resampled on its own); NaN intervals when a sample has a single run."""
    from scipy.stats import bootstrap

    point = np.atleast_1d(statistic(samples))
    if min(len(x) for x in samples) < 2:
        return point, np.full(point.shape, np.nan), np.full(point.shape, np.nan)

    def stat(*cols, axis=-1):           # scipy passes [..., n] resamples and wants [k, ...]
        return np.moveaxis(statistic(list(cols)), -1, 0)

    ci = bootstrap(tuple(samples), stat, n_resamples=reps, method="percentile",
                   vectorized=True, rng=rng).confidence_interval
    return point, np.asarray(ci.low, dtype=float), np.asarray(ci.high, dtype=float)


def aggregate(scores: pd.DataFrame, baseline: str = "uniform", reps: int = REPS
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-condition table, performance profiles) from ``task_scores``. Table columns:
    condition, strategy, tasks, runs, marked_tasks (tasks where it "did not adapt"), iqm
    (+ _lo/_hi), mean (+ _lo/_hi), p_improve (+ _lo/_hi:
    P(a run of the condition beats a baseline run of the same task), averaged over tasks; NaN
    for the baseline). Profiles: condition, tau, fraction, lo, hi."""
    mats = matrices(scores, baseline)
    if not mats:
        return pd.DataFrame(), pd.DataFrame()
    rng = np.random.default_rng(SEED)
    every = np.concatenate([m.ravel() for m, _, _ in mats.values()])
    taus = np.linspace(min(every.min(), -0.05), max(every.max(), 0.05), TAUS)

    def agg(cols):
        m = np.stack(cols, axis=-1)
        return np.concatenate([iqm(m)[..., None], mean(m)[..., None], profile(m, taus)], -1)

    rows, prof = [], []
    for c, (m, b, tasks) in mats.items():
        strategy = scores.loc[scores["condition"] == c, "strategy"].iloc[0]
        point, lo, hi = _interval(list(m.T), agg, reps, rng)
        marked = scores[(scores["condition"] == c) & scores["marked"]]["task"].nunique()
        r = {"condition": c, "strategy": strategy, "tasks": len(tasks), "runs": m.shape[0],
             "marked_tasks": marked}
        for i, k in enumerate(("iqm", "mean")):
            r.update({k: float(point[i]), f"{k}_lo": lo[i], f"{k}_hi": hi[i]})
        p = (np.nan,) * 3
        if strategy != baseline:          # both sides' runs resampled within each task
            k = len(tasks)

            def poi(cols, k=k):
                return probability_of_improvement(np.stack(cols[:k], axis=-1),
                                                  np.stack(cols[k:], axis=-1))[..., None]
            p = tuple(float(v[0]) for v in _interval([*m.T, *b.T], poi, reps, rng))
        r.update(zip(("p_improve", "p_improve_lo", "p_improve_hi"), p))
        rows.append(r)
        prof += [{"condition": c, "tau": t, "fraction": f, "lo": a, "hi": z}
                 for t, f, a, z in zip(taus, point[2:], lo[2:], hi[2:])]
    return pd.DataFrame(rows), pd.DataFrame(prof)
