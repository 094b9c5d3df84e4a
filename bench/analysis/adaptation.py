"""Did a learned strategy adapt? Per-run summaries of timesteps/adaptation.csv
(bench.evaluation.adaptation) and the "did not adapt" mark on condition labels.

A run *adapted* when the TV of the histogram of every t it drew from its initial p(t) (both in the
same 20 bins; cumulative over the run, so one transient jump of the policy is diluted by the steps
around it; from the last adaptation row) or the median over updates of ``eff_tv_initial`` (the
effective p(t)·w(t) against its initial form: what a learned weighting moves; a median, so one
transient jump does not count either) reaches ``threshold`` (0.1 by default,
``--adapt-threshold``). Rows written before ``drawn_tv_initial`` existed use ``drawn_tv`` (from
uniform; the same for a sampler that starts uniform).
"""

from __future__ import annotations

import math

import pandas as pd

THRESHOLD = 0.1
MARK = "did not adapt"
SUMMARY_COLUMNS = ["run", "setting", "condition", "schedule", "seed", "rows", "drawn_tv",
                   "drawn_tv_initial", "tv_uniform_mean", "tv_uniform_final", "eff_tv_median",
                   "reward_std_mean", "reward_t_corr_mean", "adapted"]


def check_threshold(x: float, name: str = "--adapt-threshold") -> None:
    if not (isinstance(x, (int, float)) and 0 <= x <= 1):
        raise ValueError(f"{name} must be in [0, 1] (a total variation), got {x!r}")


def _num(x) -> float:
    return float(x) if x is not None and pd.notna(x) else math.nan


def summary(rows: pd.DataFrame, threshold: float = THRESHOLD) -> dict:
    """One run's adaptation rows → rows (update rows: one per update, or per log tick for an
    every-step updater), drawn_tv and drawn_tv_initial (the last row's), mean and final
    tv_uniform, median eff_tv_initial, mean reward std / reward–t correlation (adaptive_beta;
    NaN otherwise) and ``adapted``."""
    rows = rows.sort_values("step", kind="stable")
    upd = rows[rows["event"] == "update"]
    last = rows.iloc[-1] if len(rows) else None

    def mean(col: str, how: str = "mean") -> float:
        if col not in upd or not len(upd):
            return math.nan
        return _num(getattr(pd.to_numeric(upd[col], errors="coerce"), how)())

    def median(col: str) -> float:
        return mean(col, "median")

    drawn = _num(None if last is None else last["drawn_tv"])
    initial = _num(last.get("drawn_tv_initial") if last is not None else None)
    out = {"rows": len(upd), "drawn_tv": drawn, "drawn_tv_initial": initial,
           "tv_uniform_mean": mean("tv_uniform"),
           "tv_uniform_final": _num(None if last is None else last["tv_uniform"]),
           "eff_tv_median": median("eff_tv_initial"),
           "reward_std_mean": mean("reward_std"), "reward_t_corr_mean": mean("reward_t_corr")}
    moved = initial if math.isfinite(initial) else drawn
    measures = [v for v in (moved, out["eff_tv_median"]) if math.isfinite(v)]
    out["adapted"] = bool(measures) and max(measures) >= threshold
    return out


def summaries(adaptation: pd.DataFrame, threshold: float = THRESHOLD) -> pd.DataFrame:
    """One row per run that has adaptation rows (SUMMARY_COLUMNS)."""
    rows = []
    for run, g in adaptation.groupby("run", sort=False):
        first = g.iloc[0]
        rows.append({"run": run, **{c: first[c] for c in ("setting", "condition", "schedule",
                                                          "seed")},
                     **summary(g, threshold)})
    out = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    return out.sort_values(["setting", "condition", "schedule", "seed"]).reset_index(drop=True)


def marks(summ: pd.DataFrame) -> dict[tuple[str, str], str]:
    """{(setting, condition): mark} for conditions with a run that did not adapt: "did not
    adapt" when none of its runs did, "did not adapt: k/n seeds" otherwise."""
    out = {}
    for (setting, cond), g in summ.groupby(["setting", "condition"], sort=False):
        k, n = int((~g["adapted"].astype(bool)).sum()), len(g)
        if k:
            out[(setting, cond)] = MARK if k == n else f"{MARK}: {k}/{n} seeds"
    return out


def mark_of(label: str) -> str:
    """The " [did not adapt…]" suffix of a marked condition label ('' if unmarked)."""
    i = label.find(f" [{MARK}")
    return label[i:] if i >= 0 else ""


def unmarked(label: str) -> str:
    """A condition label without its mark (file names and keys stay stable)."""
    suffix = mark_of(label)
    return label[:-len(suffix)] if suffix else label


def mark_conditions(df: pd.DataFrame, m: dict[tuple[str, str], str]) -> pd.DataFrame:
    """``df`` with "condition [mark]" where (setting, condition) is marked; unchanged if none."""
    if not m or df.empty or "condition" not in df:
        return df
    cond = [f"{c} [{m[(s, c)]}]" if (s, c) in m else c
            for s, c in zip(df["setting"], df["condition"])]
    return df.assign(condition=cond)
