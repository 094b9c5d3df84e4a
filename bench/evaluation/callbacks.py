"""Evaluation during training (trainer callbacks): sample metrics, test NLL, timestep diagnostics.

``callbacks(cfg)`` returns the callbacks ``cfg.eval`` asks for (``bench.experiment`` hands them
to the trainer):

* ``Evaluator`` — at ``eval.every`` / ``eval.at`` / the last iteration (``eval.final``), on rank 0,
  with the EMA weights: ``fd_cnn`` or ``fid_inception`` (bench.evaluation.fid), on request
  (``kid`` in eval.metrics) ``kid_cnn`` / ``kid_inception`` from the same sample features,
  ``nll_bpd`` (bench.evaluation.nll), and for vector data ``swd`` and ``mmd2_rbf``
  (bench.evaluation.toy_metrics). One row per metric is appended to ``RUN/evals.csv``
  (bench.rundir.runtables.EVAL_COLUMNS):

      step, nimg, metric, value, n_samples, sampler, wall_s_train, wall_s_eval, fwd_eval,
      bwd_eval, fwd_train, bwd_train, fwd_strategy, bwd_strategy

  ``sampler`` says how the value was produced: ``ddpm_T1000`` / ``ddim100_eta0`` / ``euler50`` /
  ``heun50`` for sample metrics, ``full_T1000`` / ``stratified_K50`` (the NLL estimator) for
  ``nll_bpd``, ``ode_heun20_hutch1`` for flow's ``nll_ode_bpd``; ``bwd_eval`` counts the backward
  passes (flow's Hutchinson probes; 0 elsewhere, empty in files older than it). ``wall_s_train`` is the
  trainer's training clock at that step (evaluation excluded); ``wall_s_eval`` the seconds spent on
  that row: sampling + features (+ the one-off reference statistics/extractor training the first
  time) for sample metrics, which share one batch of samples — each of those rows carries the whole
  group's time —, the bound's network calls for ``nll_bpd``. ``fwd_eval`` counts the same way the
  per-example forward passes through the diffusion network that the row cost (n·k for DDIM-k
  sampling of n samples, n·T for DDPM; the bound's calls for ``nll_bpd``; feature extractors are
  other networks and not counted); the last four are the run's cumulative training cost at that
  step (bench.core.cost).
* ``Adaptation`` — for learned strategies, ``timesteps/adaptation.csv`` and ``t_drawn.csv``
  (bench.evaluation.adaptation).
* ``Diagnostics`` — at ``eval.diagnostics.every`` / ``.at``: per-timestep loss and gradient
  variance, p(t) and the histogram of drawn t (from the trainer's ``t_counts``) under
  ``RUN/timesteps/`` (bench.evaluation.diagnostics).

Resume: the trainer resumes from its checkpoint step and drops the rows of evals.csv and
timesteps/*.csv with a larger step (left by a hard kill); a row for an existing (step, metric,
sampler) replaces the old one, so re-evaluating is idempotent.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from bench.rundir import runtables
from bench.config.sections import Config
from bench.core.cost import EVAL_BWD, EVAL_COUNTER, TRAIN_COUNTERS
from bench.core.counted import Counted
from bench.core.process import Process
from bench.core.io import default_cache_dir
from bench.core.rng import derive_seed, generator
from bench.data import datasets
from bench.evaluation import diagnostics, fid, nll, toy_metrics
from bench.evaluation.adaptation import Adaptation
from bench.evaluation.extractor import Extractor
from bench.evaluation.inception import inception_extractor
from bench.evaluation.reference import RefStats, load_ref_feats, load_ref_stats, reference_stats
from bench.evaluation.sampling import decode, generate, sampler_name, weights_suffix
from bench.evaluation.small_cnn import cnn_extractor

IMAGE_METRICS, VECTOR_METRICS = ("fid", "nll"), ("swd", "mmd", "nll")   # what ``auto`` means
FEATURE_METRICS = ("fid", "kid")        # from the extractor's features of one batch of samples


# ---------------------------------------------------------------------------- the evaluator
def check_samples(metrics: list[str], n_samples: int) -> None:
    """ValueError when a resolved metric cannot be computed from ``n_samples`` samples."""
    if "kid" in metrics and n_samples < 2:
        raise ValueError(f"eval.metrics: kid (an unbiased MMD²) needs eval.n_samples >= 2, got "
                         f"{n_samples}")


def resolve_metrics(metrics: list[str], is_image: bool, latent: bool = False) -> list[str]:
    """``auto`` expanded (fid, nll for images; fid alone for latents; swd, mmd, nll for toys);
    ``kid`` only when asked for. ``nll`` is the process's likelihood (DDPM: the VLB; flow: the
    ODE bound)."""
    if latent and "nll" in metrics:
        raise ValueError("eval.metrics: nll (bits/dim) is defined on pixels, not on a latent "
                         "dataset's latents; use fid")
    if latent:
        metrics = ["fid" if m == "auto" else m for m in metrics]
    out: list[str] = []
    for m in metrics:
        for x in ((IMAGE_METRICS if is_image else VECTOR_METRICS) if m == "auto" else (m,)):
            if x not in out:
                out.append(x)
    if is_image and {"swd", "mmd"} & set(out):
        raise ValueError("eval.metrics: swd and mmd are 2-D toy metrics; use fid and nll for "
                         "images")
    for m in FEATURE_METRICS:
        if not is_image and m in out:
            raise ValueError(f"eval.metrics: {m} needs image data; use swd, mmd and nll for 2-D "
                             f"toys")
    return out


def cache_dir(e) -> Path:
    return Path(e.cache_dir).expanduser() if e.cache_dir else default_cache_dir()


def stamp(rows: list[dict], nimg: int, wall_s_train: float, cost: dict | None) -> None:
    """Complete evaluation rows with the training state they were made at: images seen, the
    training clock and the cumulative training counts (NaN where unknown: an older checkpoint)."""
    for r in rows:
        r.update(nimg=nimg, wall_s_train=round(wall_s_train, 4),
                 **{k: (cost or {}).get(k, math.nan) for k in TRAIN_COUNTERS})


class Evaluator:
    """Computes eval rows for a model; as a trainer callback it follows eval.every/at/final."""

    def __init__(self, cfg: Mapping | Config):
        self.cfg = Config.of(cfg)
        self.e = self.cfg.eval
        self.seed = self.cfg.seed
        self._extractor: Extractor | None = None
        self._ref: RefStats | None = None
        self._true: Tensor | None = None
        self.evaluated: set[int] = set()

    # --- schedule ---------------------------------------------------------------------
    def due(self, step: int) -> bool:
        e = self.e
        return (e.every > 0 and step % e.every == 0) or step in e.at

    def on_start(self, tr) -> None:
        if tr.rank != 0:
            return
        if tr.step == 0 and 0 in self.e.at:
            self.run_eval(tr)

    def on_step_end(self, tr) -> None:
        if tr.rank == 0 and self.due(tr.step):
            self.run_eval(tr)

    def on_end(self, tr) -> None:
        if tr.rank != 0 or not self.e.final or tr.step in self.evaluated:
            return
        if runtables.has_evals_at(tr.run_dir, tr.step):
            return
        self.run_eval(tr)

    def run_eval(self, tr) -> list[dict]:
        model = tr.ema if self.e.use_ema else tr.model
        rows = self.evaluate(model, tr.process, tr.data, tr.step, tr.device,
                             progress=getattr(tr, "progress", False))
        stamp(rows, tr.step * tr.cfg.train.batch_size, tr.wall_s_train, tr.cost)
        runtables.append_evals(tr.run_dir, rows)
        self.evaluated.add(tr.step)
        note = getattr(tr, "note_eval", None)       # the job log (bench.train.trainer)
        if note is not None:
            note(rows)
        return rows

    # --- the metrics ------------------------------------------------------------------
    def evaluate(self, model, process: Process, data, step: int, device: torch.device,
                 progress: bool = False) -> list[dict]:
        """Rows {step, metric, value, n_samples, sampler, wall_s_eval, fwd_eval} of the configured
        metrics."""
        e = self.e
        model = Counted(model)
        metrics = resolve_metrics(e.metrics, data.is_image, data.decode is not None)
        rows: list[dict] = []
        sample_metrics = [m for m in metrics if m != "nll"]
        if sample_metrics:
            t0 = time.perf_counter()
            check_samples(sample_metrics, e.n_samples)
            if set(FEATURE_METRICS) & set(sample_metrics):  # reference first: fail early
                self.reference(data, device, progress, feats="kid" in sample_metrics)
            x = generate(model, process, data.shape, e.n_samples, sampler=e.sampler,
                         steps=e.sampler_steps, eta=float(e.eta),
                         batch_size=e.batch_size, seed=self.seed, device=device,
                         clip=data.clip, progress=progress)
            if data.decode is not None:
                x = decode(data, x, e.batch_size, device)
            vals = self.sample_metrics(x, sample_metrics, data, device, progress)
            wall, fwd = time.perf_counter() - t0, model.fwd
            for name, v in vals.items():
                rows.append({"step": step, "metric": name, "value": v, "n_samples": e.n_samples,
                             "sampler": sampler_name(e, process.grid.size),
                             "wall_s_eval": round(wall, 4), EVAL_COUNTER: fwd, EVAL_BWD: 0})
        if "nll" in metrics:
            t0, fwd0, bwd0 = time.perf_counter(), model.fwd, model.bwd
            r = self.nll(model, process, data, device, progress)
            rows.append({"step": step, "metric": r["metric"], "value": r["bpd"],
                         "n_samples": r["n"], "sampler": r["estimator"] + weights_suffix(e),
                         "wall_s_eval": round(time.perf_counter() - t0, 4),
                         EVAL_COUNTER: model.fwd - fwd0, EVAL_BWD: model.bwd - bwd0})
        return rows

    def extractor(self, data, device: torch.device, progress: bool = False) -> Extractor:
        if self._extractor is None:
            e, (name, params) = self.e, datasets.pixel_config(self.cfg.dataset.to_dict())
            if e.extractor == "inception":
                self._extractor = inception_extractor(e.inception_weights, cache_dir(e),
                                                      e.inception_download, device)
            else:
                px = data.pixels or data
                x_train = px.train.get(torch.arange(len(px.train)))
                self._extractor = cnn_extractor(name, params, x_train, cache_dir(e), device,
                                                progress)
        return self._extractor

    def reference(self, data, device: torch.device, progress: bool = False,
                  feats: bool = False) -> RefStats:
        """The reference statistics (eval.ref_stats file, else the cache), shape-checked; with
        ``feats`` also the reference features (for KID: the file's ``_feats.npz`` companion, else
        the cache's)."""
        if self._ref is None or (feats and self._ref.feats is None):
            e, (name, params) = self.e, datasets.pixel_config(self.cfg.dataset.to_dict())
            ex, px = self.extractor(data, device, progress), data.pixels or data
            if e.ref_stats:
                ref = load_ref_stats(Path(e.ref_stats).expanduser())
            else:
                split = px.train if e.ref_split == "train" else px.test
                ref = reference_stats(split, name, params, e.ref_split, ex, cache_dir(e),
                                      e.ref_n, e.batch_size, progress, with_feats=feats)
            ref.check(tuple(px.shape), ex)
            if feats and ref.feats is None:         # an explicit file: its _feats.npz companion
                ref.feats = load_ref_feats(ref)
            self._ref = ref
        return self._ref

    def sample_metrics(self, x: Tensor, names: list[str], data, device: torch.device,
                       progress: bool) -> dict[str, float]:
        out: dict[str, float] = {}
        e, toy = self.e, self.e.toy
        kinds = tuple(m for m in FEATURE_METRICS if m in names)
        if kinds:                                 # one set of sample features for FD and KID
            ex = self.extractor(data, device, progress)
            ref = self.reference(data, device, progress, feats="kid" in kinds)
            for kind, v in fid.distances(ref, ex, x, kinds, derive_seed(self.seed, "eval_kid"),
                                         e.batch_size, progress).items():
                out[fid.metric_name(ex.name, kind)] = v
        if "swd" in names or "mmd" in names:
            y = self.true_points(data, max(x.shape[0], toy.mmd_n))
            if "swd" in names:
                out["swd"] = toy_metrics.sliced_wasserstein(
                    x, y[:x.shape[0]], toy.n_proj, generator(self.seed, "eval_swd"))
            if "mmd" in names:
                n = min(toy.mmd_n, x.shape[0])
                h = toy.mmd_bandwidth or toy_metrics.median_bandwidth(y[:toy.mmd_n])
                out["mmd2_rbf"] = toy_metrics.mmd2_rbf(x[:n], y[:toy.mmd_n], h)
        return out

    def true_points(self, data, n: int) -> Tensor:
        """Fresh points of the true toy distribution (fixed per run seed; not train/test data)."""
        if self._true is None or self._true.shape[0] < n:
            ds = self.cfg.dataset
            if ds.name != "toy2d":
                raise ValueError(f"swd/mmd need a distribution to sample from; dataset "
                                 f"{ds.name!r} has none (use toy2d)")
            kind = ds.params.get("kind",
                                 inspect.signature(datasets.toy2d).parameters["kind"].default)
            self._true = datasets.toy_points(kind, n, generator(self.seed, "eval_true"))
        return self._true[:n]

    def nll(self, model, process: Process, data, device: torch.device, progress: bool) -> dict:
        c = self.e.nll
        clip = data.is_image if c.clip == "auto" else bool(c.clip)
        return nll.evaluate_nll(model, process, data.test, c.n_images,
                                generator(self.seed, "eval_nll"), device, c.timesteps,
                                c.batch_size, nll.resolve_decoder(c.decoder, data.is_image),
                                clip, progress, c.ode_steps, c.probes)


# ---------------------------------------------------------------------------- diagnostics callback
class Diagnostics:
    """Per-timestep diagnostics at eval.diagnostics.every/at (see bench.evaluation.diagnostics)."""

    def __init__(self, cfg: Mapping | Config):
        self.cfg = Config.of(cfg)
        self.d = self.cfg.eval.diagnostics
        self.seed = self.cfg.seed
        self.counts_since: Tensor | None = None     # the trainer's t_counts at ``since``
        self.since = 0                              # (both from the checkpoint on a resume)

    def due(self, step: int) -> bool:
        return (self.d.every > 0 and step % self.d.every == 0) or step in self.d.at

    def state_dict(self) -> dict:
        """The last snapshot's step and drawn-t counts: a resumed run's next histogram counts
        from there, as an uninterrupted run's does."""
        return {"since": self.since, "counts_since": self.counts_since}

    def load_state_dict(self, state: dict) -> None:
        self.since = int(state["since"])
        counts = state["counts_since"]
        self.counts_since = None if counts is None else counts.cpu().long().clone()

    def on_start(self, tr) -> None:
        if tr.rank != 0:
            return
        if self.counts_since is None:               # a fresh start (not a resume)
            self.since, self.counts_since = tr.step, tr.t_counts.clone()
        if tr.step == 0 and 0 in self.d.at:
            self.snapshot(tr)

    def on_step_end(self, tr) -> None:
        if tr.rank == 0 and self.due(tr.step):
            self.snapshot(tr)

    def snapshot(self, tr) -> None:
        d, step = self.d, tr.step
        nimg = step * tr.cfg.train.batch_size
        g = generator(self.seed, "diag_pool", step)
        n = len(tr.data.train)
        idx = torch.randperm(n, generator=g)[:d.pool]
        x0 = tr.data.train.get(idx, generator=generator(self.seed, "diag_latent", step))
        x0 = x0.to(tr.device)
        df = diagnostics.snapshot(tr.model, tr.process, x0, seed=self.seed, step=step,
                                  bins=d.bins, loss_per_bin=d.loss_per_bin,
                                  per_bin=d.per_bin, estimator=d.estimator,
                                  param_subset=d.param_subset)
        df.insert(1, "nimg", nimg)
        runtables.append_timesteps(tr.run_dir, "diagnostics", df)
        if d.p_t:
            p = tr.strategy.probabilities()
            if p is not None:
                runtables.append_timesteps(tr.run_dir, "p_t", diagnostics.p_t_frame(step, p))
        if d.hist_bins > 0 and step > self.since:
            drawn = diagnostics.binned(tr.t_counts - self.counts_since, d.hist_bins)
            runtables.append_timesteps(tr.run_dir, "t_hist", diagnostics.hist_frame(
                step, self.since, drawn, tr.process.grid.size))
        self.since, self.counts_since = step, tr.t_counts.clone()


def callbacks(cfg: Mapping | Config) -> list:
    """The trainer callbacks cfg.eval asks for, and ``Adaptation`` (active only for a learned
    strategy)."""
    cfg = Config.of(cfg)
    e, d = cfg.eval, cfg.eval.diagnostics
    out: list = [Adaptation()]
    if e.enabled:
        out.append(Evaluator(cfg))
    if d.every > 0 or d.at:
        out.append(Diagnostics(cfg))
    return out


