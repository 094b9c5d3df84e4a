"""Adaptation diagnostics of learned strategies: did the sampler leave where it started?

For a strategy with ``learned = True`` (adaptive_beta, grad_variance, loss_second_moment,
edm2_uncertainty, a compose whose sampler is learned) the ``Adaptation`` callback writes, at each
update of its distribution (``StepContext.adapted``), one row of ``timesteps/adaptation.csv``:

    step            the iteration after the update (as metrics.jsonl's step)
    event           "update", or "end" for a closing row at the last iteration (written only
                    when no update row has that step)
    tv_uniform      total variation ½Σ|p(t) − 1/T| of the current batch-marginal p(t) from uniform
    tv_initial      ... from the strategy's initial p(t) (a fresh strategy's ``probabilities()``)
    entropy         −Σ p log p in nats (uniform: log T)
    q1 … q4         the mass of p on each quarter of [0, T)
    eff_tv_initial  TV of the effective distribution p(t)·w(t)/Σ (w: the loss weight) from its
                    initial form: it moves when a learned weighting (edm2_uncertainty) adapts
    drawn_tv        TV from uniform of the histogram of every t drawn so far (the trainer's
                    ``t_counts``, in DRAWN_BINS equal bins): what the model trained on
    drawn_tv_initial  ... from the initial p(t) binned the same way (the verdict's measure:
                    a sampler that starts away from uniform and stays there did not adapt)
    …               the strategy's own columns (adaptive_beta: s_set, reward_mean, reward_std,
                    reward_t_corr, alpha_/beta_ mean/min/max; see strategies/adaptive_beta.py)

and at the end ``timesteps/t_drawn.csv`` (step, t_bin, t_lo, t_hi, count): that histogram.

A strategy that updates at every step (``updates_every_step``: loss_second_moment,
edm2_uncertainty) gets a row after its first update and at each log tick (``train.log_every``),
not at every step. Each row is written when it is recorded (an
atomic rewrite); a resumed run drops the rows after its checkpoint, so its file holds the same rows
as an uninterrupted run's.

The report's verdict on these rows is ``bench.analysis.adaptation``.
"""

from __future__ import annotations

import math

import pandas as pd
import torch
from torch import Tensor

import strategies
from bench.rundir import runtables
from bench.evaluation.diagnostics import bin_edges, binned

DRAWN_BINS = 20


# ---------------------------------------------------------------------------- pure functions
def tv(p: Tensor, q: Tensor) -> float:
    """Total variation ½Σ|p − q| of two distributions on the same support."""
    p, q = p.double().cpu(), q.double().cpu()
    return 0.5 * float((p / p.sum() - q / q.sum()).abs().sum())


def entropy(p: Tensor) -> float:
    p = p.double().cpu()
    p = p / p.sum()
    nz = p[p > 0]
    return float(-(nz * nz.log()).sum())


def quarters(p: Tensor) -> list[float]:
    b = binned(p.double().cpu() / p.double().sum(), 4)
    return [float(x) for x in b]


def drawn_tv(t_counts: Tensor, ref: Tensor | None = None, k: int = DRAWN_BINS) -> float:
    """TV of the drawn-t histogram in ``k`` bins from ``ref`` (a per-t distribution, binned the
    same way; None: uniform). NaN before any draw."""
    c = t_counts.double().cpu()
    if c.sum() <= 0:
        return math.nan
    r = torch.ones_like(c) if ref is None else ref.double().cpu()
    return tv(binned(c, k), binned(r, k))


def distribution_row(p: Tensor | None, p0: Tensor | None, w: Tensor, w0: Tensor,
                     t_counts: Tensor) -> dict:
    """The strategy-independent columns of an adaptation row."""
    T = t_counts.shape[0]
    row = dict.fromkeys(("tv_uniform", "tv_initial", "entropy", "q1", "q2", "q3", "q4",
                         "eff_tv_initial", "drawn_tv_initial"), math.nan)
    if p is not None:
        uni = torch.full((T,), 1.0 / T, dtype=torch.float64)
        row.update(tv_uniform=tv(p, uni), entropy=entropy(p),
                   **dict(zip(("q1", "q2", "q3", "q4"), quarters(p))))
        if p0 is not None:
            row.update(tv_initial=tv(p, p0), eff_tv_initial=tv(p * w, p0 * w0),
                       drawn_tv_initial=drawn_tv(t_counts, p0))
    row["drawn_tv"] = drawn_tv(t_counts)
    return row


# ---------------------------------------------------------------------------- the callback
class Adaptation:
    """Trainer callback writing timesteps/adaptation.csv and t_drawn.csv for learned
    strategies (a no-op for the others)."""

    def __init__(self):
        self.active = False
        self.p0: Tensor | None = None
        self.w0: Tensor | None = None

    def on_start(self, tr) -> None:
        self.active = tr.rank == 0 and bool(tr.strategy.learned)
        if not self.active:
            return
        s = tr.cfg.strategy
        fresh = strategies.build(s.name, tr.process, s.params)
        self.p0, self.w0 = fresh.probabilities(), fresh.loss_weights()

    def due_adapt(self, tr) -> bool:
        """Whether an update at this step is recorded: every update, but for every-step
        updaters the first and one per log tick."""
        return self.active and not (tr.strategy.updates_every_step
                                    and tr.step % tr.tr.log_every and tr.step != 1)

    def on_adapt(self, tr, ctx) -> None:
        if self.due_adapt(tr):
            self._record(tr, "update", ctx.adapted)

    def _record(self, tr, event: str, extra: dict) -> None:
        st = tr.strategy
        row = {"step": tr.step, "event": event,
               **distribution_row(st.probabilities(), self.p0, st.loss_weights(), self.w0,
                                  tr.t_counts), **(extra or {})}
        runtables.append_timesteps(tr.run_dir, "adaptation", pd.DataFrame([row]))
        track = getattr(tr, "log_scalars", None)      # the trackers (bench.train.trainer)
        if track is not None:
            track(tr.step, {f"adapt/{k}": v for k, v in row.items() if k not in ("step", "event")})

    def on_end(self, tr) -> None:
        if not self.active:
            return
        if not runtables.has_timesteps_at(tr.run_dir, "adaptation", tr.step):
            self._record(tr, "end", {})
        e = bin_edges(tr.process.grid.size, DRAWN_BINS)
        runtables.append_timesteps(tr.run_dir, "t_drawn", pd.DataFrame({
            "step": tr.step, "t_bin": range(len(e) - 1), "t_lo": e[:-1].numpy(),
            "t_hi": e[1:].numpy(), "count": binned(tr.t_counts, DRAWN_BINS).numpy()}))
