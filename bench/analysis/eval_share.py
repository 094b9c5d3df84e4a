"""The share of a results tree's wall-clock spent evaluating (``python -m bench.perf
--eval-share RESULTS_DIR``): evaluation, per-timestep diagnostics and training seconds from the
runs' own files (bench.analysis.load)."""

from __future__ import annotations

from pathlib import Path

from bench.analysis import load as results_tree


def eval_share(root: str | Path) -> dict:
    """Share of a sweep's wall-clock spent evaluating: Σ wall_s_eval / (Σ wall_s_eval + Σ final
    wall_s_train), over the runs of a results tree (bench.analysis.load). Sample metrics computed
    from one batch of samples carry the whole group's time on each of their rows, so those rows
    count once per (run, step, sampler)."""
    res = results_tree.load(root)
    ev, mt = res.evals, res.metrics
    eval_s = 0.0
    if len(ev):
        ev = ev.dropna(subset=["wall_s_eval"])
        nll = ev["metric"].str.startswith("nll")      # nll_bpd, nll_ode_bpd
        eval_s += float(ev.loc[nll, "wall_s_eval"].sum())
        groups = ev.loc[~nll].groupby(["run", "step", "sampler"])["wall_s_eval"].max()
        eval_s += float(groups.sum())
    diag = res.timesteps.get("diagnostics")
    diag_s = 0.0
    if diag is not None and len(diag) and "wall_s_eval" in diag.columns:
        # per-timestep diagnostics (bench.evaluation.diagnostics): one snapshot's time on each of its rows
        diag_s = float(diag.dropna(subset=["wall_s_eval"]).groupby(["run", "step"])
                       ["wall_s_eval"].max().sum())
    eval_s += diag_s
    train_s = 0.0
    if len(mt):
        train_s = float(mt.dropna(subset=["wall_s_train"]).groupby("run")["wall_s_train"]
                        .max().sum())
    total = eval_s + train_s
    return {"runs": int(len(res.runs)), "eval_s": eval_s, "diagnostics_s": diag_s,
            "train_s": train_s,
            "eval_share": eval_s / total if total > 0 else float("nan")}
