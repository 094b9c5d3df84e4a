"""Checkpoint I/O of the trainer: what a checkpoint holds (``state``: model, EMA, optimizer,
strategy, cost counters, drawn-t histogram, the log tally, every RNG and the state of the
callbacks that keep one), writing it atomically
(``save``), restoring it (``load``: resume = rerun the same command), and the snapshot of the
evaluated weights that ``train.keep`` asks for."""

from __future__ import annotations

import math
import random
import sys

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bench.config.identity import run_id
from bench.rundir import runfiles, runpaths, runtables
from bench.core.io import atomic_save


def state(tr) -> dict:
    """Everything a resumed run needs to continue bit-identically."""
    rng = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
           "python": random.getstate()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return {"run_id": _run_id(tr), "step": tr.step, "wall_s_train": tr.wall_s_train,
            "acc": tr.tally.state_dict(), "cost": dict(tr.cost), "t_counts": tr.t_counts.cpu(),
            "model": tr.model.state_dict(), "ema": tr.ema.state_dict(),
            "opt": tr.flat.optimizer_state(tr.opt), "strategy": tr.strategy.state_dict(),
            "rng": rng,
            "callbacks": callback_states(tr.callbacks)}


def _run_id(tr) -> str | None:
    return run_id(tr.raw_cfg) if tr.raw_cfg else None


def callback_states(callbacks: list) -> dict:
    """{class name: state} of the callbacks with a ``state_dict`` (what they carry from one
    step to a later one, e.g. the diagnostics' drawn-t counts at their last snapshot)."""
    out = {}
    for cb in callbacks:
        if hasattr(cb, "state_dict"):
            name = type(cb).__name__
            if name in out:
                raise ValueError(f"two trainer callbacks of class {name} keep a state; "
                                 f"a checkpoint can hold one")
            out[name] = cb.state_dict()
    return out


def save(tr) -> None:
    """Write ``state(tr)`` to the run's checkpoint (rank 0, atomically)."""
    if tr.rank != 0:
        return
    path = runpaths.ckpt_path(tr.run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(state(tr), path)
    tr._ckpt_step = tr.step


def load(tr) -> bool:
    """Restore the trainer from the run's checkpoint; False when there is none."""
    path = runpaths.ckpt_path(tr.run_dir)
    if not path.exists():
        return False
    try:
        st = torch.load(path, map_location=tr.device, weights_only=False)
        if not isinstance(st, dict) or not {"model", "step", "rng"} <= set(st):
            raise ValueError("not a checkpoint of this trainer")
    except Exception as e:  # noqa: BLE001  (empty, truncated or foreign files alike)
        raise runpaths.RunFileError(
            f"{path}: not a readable checkpoint ({type(e).__name__}: {e}); delete "
            f"it to restart the run from step 0, or restore it from a copy") from e
    owner, mine = st.get("run_id"), _run_id(tr)     # older checkpoints record no run id
    if owner is not None and mine is not None and owner != mine:
        raise runpaths.RunFileError(
            f"{path}: the checkpoint of run {owner} (step {st['step']}), not of this run "
            f"{mine}: it was copied or moved here. Delete it to train this run from step 0, or "
            f"move it back to the run directory {owner}")
    try:            # an older checkpoint (no run id) of another architecture or strategy
        tr.model.load_state_dict(st["model"])
        tr.ema.load_state_dict(st["ema"])
        tr.flat.load_optimizer_state(tr.opt, st["opt"])
        tr.strategy.load_state_dict(st["strategy"])
    except (KeyError, ValueError, RuntimeError, TypeError) as e:
        raise runpaths.RunFileError(
            f"{path}: does not fit this run's model, optimizer or strategy ({type(e).__name__}: "
            f"{str(e)[:200]}): another run's checkpoint? Delete it to train this run from step "
            f"0, or move it back") from e
    for cb in tr.callbacks:       # an older checkpoint has none: they start afresh, as then
        state = st.get("callbacks", {}).get(type(cb).__name__)
        if state is not None and hasattr(cb, "load_state_dict"):
            cb.load_state_dict(state)
    tr.step, tr.wall_s_train = st["step"], st["wall_s_train"]
    if tr.rank == 0:              # the saved tally is all ranks' (the others start empty)
        tr.tally.load_state_dict(st["acc"])
    if "cost" in st:
        tr.cost = dict(st["cost"])
        tr.t_counts = st["t_counts"].long().to(tr.device).clone()
    else:    # a checkpoint older than the counters: the strategy's passes are unknown (NaN)
        B = tr.tr.batch_size
        tr.cost = {"fwd_train": tr.step * B, "bwd_train": tr.step * B,
                   "fwd_strategy": math.nan, "bwd_strategy": math.nan}
        print(f"warning: {path} predates the cost counters: this run's strategy "
              f"passes are unknown (it has no place on the compute axis) and its drawn-t "
              f"histogram counts from step {tr.step}", file=sys.stderr, flush=True)
    torch.set_rng_state(st["rng"]["torch"].cpu())
    np.random.set_state(st["rng"]["numpy"])
    random.setstate(st["rng"]["python"])
    if "cuda" in st["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in st["rng"]["cuda"]])
    tr._ckpt_step = tr.step
    return True


def kept_steps(cfg) -> set[int]:
    """The steps whose weights ``train.keep`` keeps: none, the evaluated steps after training
    started (``at_evals``: ``Eval.steps`` but 0, the initial model), or the listed steps."""
    keep, total = cfg.train.keep, cfg.train.iterations
    if keep == "none":
        return set()
    if keep == "at_evals":
        return {s for s in cfg.eval.evaluated_steps(total) if s > 0}
    return {int(s) for s in keep if s <= total}


def snapshot(tr) -> None:
    """Keep the evaluated weights of this step (train.keep) for a later re-evaluation."""
    if tr.rank != 0:
        return
    use_ema = tr.cfg.eval.use_ema
    weights = tr.ema if use_ema else tr.model
    runfiles.write_snapshot(tr.run_dir, tr.step, weights.state_dict(), {
        "step": tr.step, "nimg": tr.step * tr.tr.batch_size,
        "weights": "ema" if use_ema else "model",
        "wall_s_train": tr.wall_s_train, "cost": dict(tr.cost)})


def check_logs(run_dir: Path) -> None:
    """Read the tables ``truncate_logs`` rewrites on a resume (metrics.jsonl strictly but for a
    half-written last line, evals.csv strictly as the report reads it, timesteps/*.csv as their
    writers do), so that a corrupt one is refused — RunFileError naming the file (and line) —
    before the attempt writes anything (no FAILED, no meta.json entry)."""
    runtables.metric_rows(run_dir, done=False)
    try:                                    # conflicting rows, inf, nan: refused as the report
        runtables.read_evals(run_dir)
    except runpaths.RunFileError as e:
        raise runpaths.RunFileError(f"{e}; or delete the run directory to train the run again "
                                    f"from step 0") from e
    for table in runtables.timestep_tables().values():
        path = table.path(run_dir)
        try:                      # pandas' ParserError and EmptyDataError are ValueErrors
            if path.exists() and pd.to_numeric(pd.read_csv(path)["step"]).isna().any():
                raise ValueError("a row without a step")
        except (ValueError, KeyError, UnicodeDecodeError) as e:
            raise runpaths.RunFileError(
                f"{path}: not a readable CSV ({type(e).__name__}: {e}); repair or delete it "
                f"(its rows are lost), or delete the run directory to train the run again "
                f"from step 0") from e


def truncate_logs(tr) -> None:
    """Drop the rows of metrics.jsonl, evals.csv and timesteps/*.csv written after the
    checkpoint we resume from (a hard kill leaves them)."""
    if tr.rank == 0:
        runtables.truncate_metrics(tr.run_dir, tr.step)
        runtables.truncate_evals(tr.run_dir, tr.step)
        runtables.truncate_timesteps(tr.run_dir, tr.step)
