"""The compute axis: a run's training cost in forward-equivalents (bench.core.cost) at each
evaluation, and the warning that wall-clock is machine load when runs of equal counted cost per
iteration ran at different speeds."""

from __future__ import annotations

import math

import pandas as pd

from bench.core.cost import BWD_FACTOR, TRAIN_COUNTERS, forward_equivalents

LOAD_TOLERANCE = 0.2    # wall-clock per iteration may differ by 20 % among equal-cost runs


def training_cost(df: pd.DataFrame, bwd_factor: float = BWD_FACTOR) -> pd.Series:
    """Forward-equivalents of training (the trainer's step + the strategy's passes) per row of a
    frame with the cumulative counters (evals or metrics); NaN where a row predates them."""
    if not set(TRAIN_COUNTERS) <= set(df.columns):
        return pd.Series(math.nan, index=df.index, dtype=float)
    c = {k: pd.to_numeric(df[k], errors="coerce") for k in TRAIN_COUNTERS}
    return forward_equivalents(c["fwd_train"] + c["fwd_strategy"],
                               c["bwd_train"] + c["bwd_strategy"], bwd_factor)


def per_iteration(metrics: pd.DataFrame, bwd_factor: float = BWD_FACTOR) -> pd.DataFrame:
    """Per run, from its last training-log row: counted cost and measured wall-clock per
    iteration (columns run, setting, condition, seed, fe_per_it, ms_per_it)."""
    rows = []
    m = metrics.dropna(subset=["step"])
    for run, g in m.groupby("run", sort=False):
        last = g.loc[g["step"].idxmax()]
        steps = float(last["step"])
        if steps <= 0:
            continue
        fe = float(training_cost(last.to_frame().T, bwd_factor).iloc[0])
        wall = pd.to_numeric(pd.Series([last["wall_s_train"]]), errors="coerce").iloc[0]
        rows.append({"run": run, "setting": last["setting"], "condition": last["condition"],
                     "seed": last["seed"], "fe_per_it": fe / steps,
                     "ms_per_it": 1000.0 * float(wall) / steps})
    return pd.DataFrame(rows, columns=["run", "setting", "condition", "seed", "fe_per_it",
                                       "ms_per_it"])


def load_warnings(metrics: pd.DataFrame, tolerance: float = LOAD_TOLERANCE,
                  bwd_factor: float = BWD_FACTOR) -> list[str]:
    """One line per setting × counted cost per iteration whose runs' measured wall-clock per
    iteration differs by more than ``tolerance`` (max/min − 1): the same work ran at different
    speeds, so wall-clock differences there are load noise, not the strategies."""
    per = per_iteration(metrics, bwd_factor).dropna(subset=["fe_per_it", "ms_per_it"])
    out = []
    for (setting, fe), g in per.groupby(["setting", per["fe_per_it"].round(6)], sort=False):
        if len(g) < 2 or g["ms_per_it"].min() <= 0:
            continue
        lo, hi = g.loc[g["ms_per_it"].idxmin()], g.loc[g["ms_per_it"].idxmax()]
        ratio = hi["ms_per_it"] / lo["ms_per_it"]
        if ratio - 1 > tolerance:
            conds = sorted(set(g["condition"]))
            out.append(f"load noise — {setting}: {len(g)} runs of {len(conds)} condition(s) "
                       f"({', '.join(conds)}) count the same cost per iteration "
                       f"({fe:.6g} forward-equivalents) but their measured wall-clock per "
                       f"iteration differs {ratio:.2f}× ({lo['condition']} seed {lo['seed']}: "
                       f"{lo['ms_per_it']:.3g} ms/it, {hi['condition']} seed {hi['seed']}: "
                       f"{hi['ms_per_it']:.3g} ms/it); wall-clock speed-ups here are machine "
                       f"load, compare on the compute axis")
    return out

