"""The results layout — the one owner of every file name, schema, reader, writer and run state.

::

    results/<sweep>/sweep.yaml        the sweep a launch ran (the report finds missing runs)
    results/<sweep>/<run_id>/
      config.yaml    the resolved run config — the only source of hyperparameters
      meta.json      per attempt (the first, + resumes): git sha + dirty flag, the command line,
                     ISO-8601 UTC start, Python/torch/CUDA/cuDNN/numpy versions, device, CPU and
                     GPU model, threads, host, SLURM job id, the package list's file name
      packages-<hash>.txt  the installed packages (name==version) of an attempt, one file per
                     distinct environment
      metrics.jsonl  one JSON row per log tick (METRIC_COLUMNS)
      evals.csv      one row per evaluation × metric (EVAL_COLUMNS)
      timesteps/     diagnostics.csv, p_t.csv, t_hist.csv, and for learned strategies
                     adaptation.csv, t_drawn.csv (TIMESTEP_COLUMNS)
      ckpt/last.pt   model + EMA + optimizer + strategy + RNG state (atomic)
      ckpt/step_<N>.safetensors  the evaluated weights at step N (train.keep), with the step's
                     nimg, training wall-clock and cost counters as metadata
      jobs.jsonl     one row per job a launch submitted for the run
      tensorboard/   TensorBoard event files (train.loggers: [tensorboard])
      wandb/         Weights & Biases offline files (train.loggers: [wandb])
      FAILED         why the last attempt failed (removed when the run starts again)
      DONE           the final log row; its presence is the truth that the run finished
      .lock          held while a process trains the run

Readers are strict: a corrupt file raises ``RunFileError`` naming the file and the line or row.
Writers are atomic (write a temporary file, rename), except the append-only metrics.jsonl and
jobs.jsonl, whose readers tolerate one half-written last line of a run that is not done.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from bench.config import yaml_load
from bench.core.cost import EVAL_COUNTER, TRAIN_COUNTERS
from bench.core.io import LockBusy, atomic_write, atomic_write_text, file_lock

CONFIG, META, METRICS, EVALS = "config.yaml", "meta.json", "metrics.jsonl", "evals.csv"
DONE, FAILED, LOCK, JOBS, SWEEP = "DONE", "FAILED", ".lock", "jobs.jsonl", "sweep.yaml"
SUBMITIT_DIR = ".submitit"                         # under the sweep folder: submitit's job logs
CKPT_DIR, CKPT = "ckpt", "last.pt"
TIMESTEPS_DIR = "timesteps"

# Cumulative per-example network passes by purpose (bench.core.cost) at that step.
COST_COLUMNS = list(TRAIN_COUNTERS)
METRIC_COLUMNS = ["step", "nimg", "loss", "grad_norm", "lr", "wall_s_train", "loss_bins",
                  *COST_COLUMNS]
EVAL_COLUMNS = ["step", "nimg", "metric", "value", "n_samples", "sampler", "wall_s_train",
                "wall_s_eval", EVAL_COUNTER, *COST_COLUMNS]
# A new row with this key replaces the old one (re-evaluating is idempotent; another sample count
# is another row).
EVAL_KEY = ["step", "metric", "sampler", "n_samples"]
TIMESTEP_FILES = {"diagnostics": "diagnostics.csv", "p_t": "p_t.csv", "t_hist": "t_hist.csv",
                  "adaptation": "adaptation.csv", "t_drawn": "t_drawn.csv"}
TIMESTEP_COLUMNS = {
    "diagnostics": ["step", "nimg", "t_bin", "t_lo", "t_hi", "weighting", "loss", "grad_var",
                    "n_loss", "n_grad", "estimator", "wall_s_eval"],
    "p_t": ["step", "t", "p"],
    "t_hist": ["step", "step_from", "t_bin", "t_lo", "t_hi", "count"],
    # strategy-independent columns (bench.evaluation.adaptation), then adaptive_beta's own
    "adaptation": ["step", "event", "tv_uniform", "tv_initial", "entropy", "q1", "q2", "q3", "q4",
                   "eff_tv_initial", "drawn_tv", "drawn_tv_initial",
                   "s_set", "reward_mean", "reward_std", "reward_t_corr", "alpha_mean",
                   "alpha_min", "alpha_max", "beta_mean", "beta_min", "beta_max"],
    "t_drawn": ["step", "t_bin", "t_lo", "t_hi", "count"],
}
TIMESTEP_REQUIRED = {                              # what a reader needs (older files: a subset)
    "diagnostics": ["step", "t_lo", "t_hi", "weighting", "loss", "grad_var"],
    "p_t": ["step", "t", "p"],
    "t_hist": ["step", "step_from", "t_lo", "t_hi", "count"],
    "adaptation": ["step", "event", "tv_uniform", "eff_tv_initial", "drawn_tv"],
    "t_drawn": ["step", "t_lo", "t_hi", "count"],
}
TIMESTEP_TEXT = ("weighting", "estimator", "event", "s_set")    # the non-numeric columns
# Run states, from what is on disk.
NEW, RUNNING, CHECKPOINTED, DONE_STATE, FAILED_STATE = ("new", "running", "checkpointed", "done",
                                                        "failed")


class RunFileError(ValueError):
    """A file of the results layout that cannot be read; the message names file and line/row."""


class RunBusy(RuntimeError):
    """Another process is training this run directory."""


# ---------------------------------------------------------------------------- paths
def config_path(run_dir: Path) -> Path:
    return Path(run_dir) / CONFIG


def ckpt_path(run_dir: Path) -> Path:
    return Path(run_dir) / CKPT_DIR / CKPT


def snapshot_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CKPT_DIR / f"step_{int(step):08d}.safetensors"


def snapshot_steps(run_dir: Path) -> list[int]:
    """The steps of the kept weights (train.keep) of a run, ascending."""
    d = Path(run_dir) / CKPT_DIR
    return sorted(int(p.stem.split("_")[1]) for p in d.glob("step_*.safetensors")) if d.is_dir() \
        else []


def write_snapshot(run_dir: Path, step: int, weights: dict, meta: dict) -> None:
    """The weights (name → tensor) of ``step`` as safetensors, ``meta`` (JSON-able) alongside."""
    from safetensors.torch import save_file

    path = snapshot_path(run_dir, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in weights.items()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp),
                                             metadata={"meta": json.dumps(meta)}))


def read_snapshot(run_dir: Path, step: int) -> tuple[dict, dict]:
    """(weights, meta) of a kept step; FileNotFoundError naming the kept steps."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = snapshot_path(run_dir, step)
    if not path.exists():
        kept = snapshot_steps(run_dir)
        raise FileNotFoundError(f"{path} does not exist; kept steps of this run: "
                                f"{', '.join(map(str, kept)) or 'none (train.keep: none)'}")
    with safe_open(str(path), "pt") as f:
        meta = json.loads((f.metadata() or {}).get("meta", "{}"))
    return load_file(str(path)), meta


def done_path(run_dir: Path) -> Path:
    return Path(run_dir) / DONE


def evals_path(run_dir: Path) -> Path:
    return Path(run_dir) / EVALS


def metrics_path(run_dir: Path) -> Path:
    return Path(run_dir) / METRICS


def timesteps_path(run_dir: Path, kind: str) -> Path:
    return Path(run_dir) / TIMESTEPS_DIR / TIMESTEP_FILES[kind]


def sweep_file(sweep_dir: Path) -> Path:
    return Path(sweep_dir) / SWEEP


def is_run_dir(filenames) -> bool:
    return CONFIG in filenames


# ---------------------------------------------------------------------------- run state
def is_done(run_dir: Path) -> bool:
    return done_path(run_dir).exists()


def has_checkpoint(run_dir: Path) -> bool:
    return ckpt_path(run_dir).exists()


def lock_holder(run_dir: Path) -> str:
    """Who holds the run lock ('' when nobody: no training process is alive). The probe takes
    the lock for an instant; ``run_lock`` retries for a second, so a start is never refused
    because of it."""
    path = Path(run_dir) / LOCK
    if not path.exists():
        return ""
    try:
        with file_lock(path, blocking=False):
            return ""
    except LockBusy as e:
        return str(e)


def state(run_dir: Path) -> str:
    """new | running | checkpointed | done | failed, from what is on disk (DONE wins; a live
    lock holder means running; a FAILED note the last attempt's failure; else a checkpoint)."""
    run_dir = Path(run_dir)
    if is_done(run_dir):
        return DONE_STATE
    if lock_holder(run_dir):
        return RUNNING
    if (run_dir / FAILED).exists():
        return FAILED_STATE
    return CHECKPOINTED if has_checkpoint(run_dir) else NEW


def failure_record(run_dir: Path) -> dict:
    """FAILED as {"reason", "kind" ("diverged" | "error"), "step"} ({} if the run has none)."""
    path = Path(run_dir) / FAILED
    if not path.exists():
        return {}
    try:
        rec = json.loads(path.read_text())
    except ValueError:
        rec = None
    if not isinstance(rec, dict):                 # hand-written or truncated: keep its text
        rec = {"reason": path.read_text(errors="replace").strip() or "unknown", "kind": "error"}
    return rec


def failure(run_dir: Path) -> str:
    """The reason the last attempt failed ('' if none recorded)."""
    return str(failure_record(run_dir).get("reason", ""))


def diverged(run_dir: Path) -> bool:
    return failure_record(run_dir).get("kind") == "diverged"


def mark_failed(run_dir: Path, reason: str, kind: str = "error", step: int | None = None) -> None:
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(run_dir) / FAILED, json.dumps(
        {"reason": reason.strip(), "kind": kind, "step": step}, indent=1) + "\n")


def clear_failed(run_dir: Path) -> None:
    (Path(run_dir) / FAILED).unlink(missing_ok=True)


LOCK_TRIES = 5                  # x 0.2 s: outlasts another process's state probe
RELEASED = "; released"         # appended to the holder when a run lets go of its lock


@contextmanager
def run_lock(run_dir: Path, take: bool = True) -> Iterator[None]:
    """Exclusive while training ``run_dir`` (released by the OS if the process dies): two
    launches never train one run at once. Raises ``RunBusy`` naming the holder."""
    if not take:
        yield
        return
    job = os.environ.get("SLURM_JOB_ID")
    holder = (f"pid {os.getpid()} on {socket.gethostname()}"
              + (f" (SLURM job {job})" if job else "")
              + f" since {time.strftime('%Y-%m-%d %H:%M:%S')}")
    path = Path(run_dir) / LOCK
    before = path.read_text(errors="replace").strip() if path.exists() else ""
    with ExitStack() as stack:
        for attempt in range(LOCK_TRIES):
            try:
                f = stack.enter_context(file_lock(path, blocking=False, holder=holder))
                break
            except LockBusy as e:
                if attempt == LOCK_TRIES - 1:
                    raise RunBusy(f"{run_dir} is being trained by {e}; not starting it "
                                  f"twice") from e
                time.sleep(0.2)
        if f is None:
            print(f"[bench.launch] warning: cannot lock {run_dir} (no flock on this "
                  f"filesystem); training unlocked", flush=True)
        elif before and RELEASED not in before:
            print(f"[bench.launch] warning: {run_dir}: taking over the lock of {before}, which "
                  f"ended without releasing it (the process died)", flush=True)
        try:
            yield
        finally:
            if f is not None:
                f.write(RELEASED)
                f.flush()


# ---------------------------------------------------------------------------- config, meta, DONE
def read_config(run_dir: Path) -> dict:
    """config.yaml as written (no defaults added); RunFileError if it is not a YAML mapping."""
    path = config_path(run_dir)
    try:
        cfg = yaml_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise RunFileError(f"{path}: not valid YAML ({e})") from e
    if not isinstance(cfg, dict):
        raise RunFileError(f"{path}: a run config must be a mapping, got {type(cfg).__name__}")
    return cfg


def write_config(run_dir: Path, cfg: dict) -> None:
    atomic_write_text(config_path(run_dir), yaml.safe_dump(cfg, sort_keys=False))


def update_meta(run_dir: Path, meta: dict) -> None:
    """The first attempt's meta.json; later attempts are appended under ``resumes``."""
    path = Path(run_dir) / META
    if path.exists():
        first = json.loads(path.read_text())
        first.setdefault("resumes", []).append(meta)
        meta = first
    atomic_write_text(path, json.dumps(meta, indent=1))


def tensorboard_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "tensorboard"


def wandb_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "wandb"


def write_packages(run_dir: Path, text: str) -> str:
    """Store an installed-package list as ``packages-<sha256[:12]>.txt`` (once per distinct
    environment) and return that file name, which meta.json records."""
    import hashlib

    name = f"packages-{hashlib.sha256(text.encode()).hexdigest()[:12]}.txt"
    path = Path(run_dir) / name
    if not path.exists():
        atomic_write_text(path, text)
    return name


def write_done(run_dir: Path, final: dict) -> None:
    atomic_write_text(done_path(run_dir), json.dumps(finite_json(final), allow_nan=False))


def read_done(run_dir: Path, strict: bool = False) -> dict:
    """The final log row DONE holds ({} if empty or unreadable; ``strict``: RunFileError)."""
    path = done_path(run_dir)
    try:
        row = json.loads(path.read_text() or "{}")
        if not isinstance(row, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError, UnicodeDecodeError) as e:
        if strict:
            raise RunFileError(f"{path}: unreadable ({e}); the run finished but its final row is "
                               f"lost: delete {DONE} to let the run write it again") from e
        return {}
    return row


def write_sweep(sweep_dir: Path, spec: dict) -> None:
    """sweep.yaml, rewritten only when it changed."""
    path, text = sweep_file(sweep_dir), yaml.safe_dump(spec, sort_keys=False)
    if not path.exists() or path.read_text() != text:
        atomic_write_text(path, text)


# ---------------------------------------------------------------------------- metrics.jsonl
def finite_json(x: Any) -> Any:
    """``x`` with every non-finite float replaced by None (JSON has no NaN or inf)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: finite_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite_json(v) for v in x]
    return x


def append_metrics(run_dir: Path, row: dict) -> None:
    with open(metrics_path(run_dir), "a") as f:
        f.write(json.dumps(finite_json(row), allow_nan=False) + "\n")


def metric_rows(run_dir: Path, done: bool = True) -> tuple[list[dict], str]:
    """The rows of metrics.jsonl and a note. A crash mid-write leaves a half-written last line:
    it is skipped with a note; any other unreadable line is a RunFileError naming the file and
    line. ``done``: the run finished (the note then says the line is lost, not pending)."""
    path = metrics_path(run_dir)
    if not path.exists():
        return [], ""
    try:
        lines = path.read_text().split("\n")
    except UnicodeDecodeError as e:
        raise RunFileError(f"{path}: not a text file ({e})") from e
    note, rows = "", []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or not isinstance(row.get("step"), int):
                raise ValueError("a row must be a JSON object with an integer 'step'")
        except ValueError as e:
            if i == len(lines):                 # no newline after it: written when it stopped
                note = (f"last line of {path.name} is incomplete "
                        f"({'a crash mid-write' if done else 'being written?'}); skipped")
                continue
            raise RunFileError(f"{path}, line {i}: corrupt metrics row ({e})") from e
        rows.append(row)
    return rows, note


def read_metrics(run_dir: Path, done: bool = True) -> tuple[pd.DataFrame, str]:
    """metrics.jsonl as a DataFrame (METRIC_COLUMNS, sorted by step) and a note."""
    rows, note = metric_rows(run_dir, done)
    df = pd.DataFrame(rows, columns=METRIC_COLUMNS)
    for c in ("loss", "grad_norm", "lr", "wall_s_train", "nimg", *COST_COLUMNS):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    return df.sort_values("step", kind="stable").reset_index(drop=True), note


def last_metrics(run_dir: Path) -> dict:
    """The last log row ({} when there is none yet)."""
    rows, _ = metric_rows(run_dir, done=False)
    return rows[-1] if rows else {}


def last_step(run_dir: Path) -> int:
    """The step of the last log row; 0 when none (or unreadable: this only informs messages)."""
    try:
        return int(last_metrics(run_dir).get("step", 0))
    except (RunFileError, OSError, ValueError):
        return 0


def truncate_metrics(run_dir: Path, step: int) -> None:
    """Drop log rows after ``step`` (the checkpoint a run resumes from; a hard kill leaves them,
    and perhaps one half-written last line, which goes too)."""
    rows, note = metric_rows(run_dir, done=False)
    if note:
        print(f"warning: {metrics_path(run_dir)}: {note.split(' (')[0]}; dropped", flush=True)
    if rows or metrics_path(run_dir).exists():
        atomic_write_text(metrics_path(run_dir),
                          "".join(json.dumps(r) + "\n" for r in rows if r["step"] <= step))


# ---------------------------------------------------------------------------- CSV files
def _read_csv(path: Path, required: list[str], numeric: list[str],
              nonempty: tuple[str, ...] = ("step",), text: tuple[str, ...] = ()) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, dtype={c: str for c in text})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise RunFileError(f"{path}: not a readable CSV ({e})") from e
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise RunFileError(f"{path}: missing column(s) {', '.join(missing)} "
                           f"(has: {', '.join(map(str, df.columns))})")
    for c in nonempty:
        empty = df[c].isna().to_numpy()
        if empty.any():
            i = int(np.flatnonzero(empty)[0])
            raise RunFileError(f"{path}, row {i + 2}: no value in column {c!r} (a short or "
                               f"truncated row)")
    for c in numeric:
        if c not in df.columns:
            continue
        num = pd.to_numeric(df[c], errors="coerce")
        bad = num.isna() & df[c].notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise RunFileError(f"{path}, row {i + 2}: column {c!r} is not a number "
                               f"({df[c].iloc[i]!r})")
        df[c] = num
    if "step" in df.columns and (df["step"].isna().any() or (df["step"] % 1 != 0).any()):
        raise RunFileError(f"{path}: column 'step' must hold whole numbers")
    return df


def _write_csv(path: Path, df: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))


def read_evals(run_dir: Path) -> pd.DataFrame:
    """evals.csv (EVAL_COLUMNS; optional columns absent in older files are filled empty)."""
    path = evals_path(run_dir)
    if not path.exists():
        return pd.DataFrame(columns=EVAL_COLUMNS)
    df = _read_csv(path, ["step", "metric", "value"],
                   ["step", "nimg", "value", "n_samples", "wall_s_train", "wall_s_eval",
                    EVAL_COUNTER, *COST_COLUMNS],
                   nonempty=("step", "metric", "value"))
    for c in EVAL_COLUMNS:
        if c not in df.columns:
            df[c] = "" if c == "sampler" else np.nan
    df["metric"] = df["metric"].astype(str)
    df["sampler"] = df["sampler"].fillna("").astype(str)
    df["step"] = df["step"].astype(int)
    return df[EVAL_COLUMNS]


def append_evals(run_dir: Path, rows: list[dict]) -> None:
    """Append rows, replacing existing rows with the same (step, metric, sampler)."""
    if not rows:
        return
    new = _schema_frame(pd.DataFrame(rows), EVAL_COLUMNS, EVAL_COLUMNS, EVALS)
    path = evals_path(run_dir)
    old = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=EVAL_COLUMNS)
    if len(old):
        clash = old[EVAL_KEY].astype(str).agg("|".join, axis=1).isin(
            set(new[EVAL_KEY].astype(str).agg("|".join, axis=1)))
        new = pd.concat([old[~clash], new], ignore_index=True)
    _write_csv(path, new.sort_values("step", kind="stable"))


def has_evals_at(run_dir: Path, step: int) -> bool:
    """Whether evals.csv has a row of ``step`` (read as the writers read it, not strictly)."""
    path = evals_path(run_dir)
    df = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=EVAL_COLUMNS)
    return bool(len(df) and (df["step"] == step).any())


def truncate_evals(run_dir: Path, step: int) -> None:
    path = evals_path(run_dir)
    if not path.exists():
        return
    df = pd.read_csv(path)
    if len(df) and (df["step"] > step).any():
        _write_csv(path, df[df["step"] <= step])


def read_timesteps(run_dir: Path) -> dict[str, pd.DataFrame]:
    """timesteps/<kind>.csv for every TIMESTEP_FILES kind; empty frames (TIMESTEP_COLUMNS) where
    absent."""
    out = {}
    for kind in TIMESTEP_FILES:
        path, req = timesteps_path(run_dir, kind), TIMESTEP_REQUIRED[kind]
        if path.exists():
            cols = [c for c in TIMESTEP_COLUMNS[kind] if c not in TIMESTEP_TEXT]
            out[kind] = _read_csv(path, req, cols, text=TIMESTEP_TEXT)
        else:
            out[kind] = pd.DataFrame(columns=TIMESTEP_COLUMNS[kind])
    return out


def _schema_frame(df: pd.DataFrame, columns: list[str], required: list[str],
                  what: str) -> pd.DataFrame:
    """``df`` in the schema's column order; an unknown or missing required column is an error
    (a writer bug, never silently dropped); optional columns it lacks are left empty."""
    unknown = [c for c in df.columns if c not in columns]
    missing = [c for c in required if c not in df.columns]
    if unknown or missing:
        raise ValueError(f"{what}: " + "; ".join(
            x for x in (f"unknown column(s) {', '.join(map(str, unknown))}" if unknown else "",
                        f"missing column(s) {', '.join(missing)}" if missing else "") if x)
            + f" (schema: {', '.join(columns)})")
    return df.reindex(columns=columns)


def append_timesteps(run_dir: Path, kind: str, df: pd.DataFrame) -> None:
    """Append rows to timesteps/<kind>.csv, replacing earlier rows of the same step (idempotent)."""
    if kind not in TIMESTEP_FILES:
        raise ValueError(f"unknown timesteps file {kind!r}; valid: {', '.join(TIMESTEP_FILES)}")
    path = timesteps_path(run_dir, kind)
    df = _schema_frame(df, TIMESTEP_COLUMNS[kind], TIMESTEP_REQUIRED[kind],
                       f"timesteps/{TIMESTEP_FILES[kind]}")
    if path.exists():
        old = pd.read_csv(path)
        old = old[~old["step"].isin(set(df["step"]))]
        df = pd.concat([old, df], ignore_index=True) if len(old) else df
    _write_csv(path, df.sort_values("step", kind="stable"))


def has_timesteps_at(run_dir: Path, kind: str, step: int) -> bool:
    path = timesteps_path(run_dir, kind)
    return path.exists() and bool((pd.read_csv(path)["step"] == step).any())


def truncate_timesteps(run_dir: Path, step: int) -> None:
    """Drop rows written after ``step`` (the checkpoint a run resumes from)."""
    for kind in TIMESTEP_FILES:
        path = timesteps_path(run_dir, kind)
        if path.exists():
            df = pd.read_csv(path)
            if (df["step"] > step).any():
                _write_csv(path, df[df["step"] <= step])


# ---------------------------------------------------------------------------- jobs.jsonl
def record_job(run_dir: Path, record: dict[str, Any]) -> None:
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    with open(Path(run_dir) / JOBS, "a") as f:
        f.write(json.dumps({**record, "submitted": time.time()}) + "\n")


def last_job(run_dir: Path) -> dict | None:
    path = Path(run_dir) / JOBS
    try:
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
        return json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------- the tree
def find_run_dirs(root: Path) -> tuple[list[Path], list[Path]]:
    """(run directories, sweep.yaml files) below ``root``; run directories are not descended."""
    runs, sweeps = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if is_run_dir(filenames):
            runs.append(Path(dirpath))
            dirnames[:] = []
            continue
        orphan = [f for f in (METRICS, EVALS, DONE) if f in filenames]
        if orphan:
            raise RunFileError(f"{dirpath}: holds {', '.join(orphan)} but no {CONFIG}, so its "
                               f"hyperparameters are unknown; restore {CONFIG} or move the "
                               f"folder out of the results tree")
        if SWEEP in filenames:
            sweeps.append(Path(dirpath) / SWEEP)
    return runs, sweeps


def newest_write(run_dir: Path) -> Path | None:
    """The most recently written of metrics.jsonl and evals.csv (a stopped run's age)."""
    files = [p for p in (metrics_path(run_dir), evals_path(run_dir)) if p.exists()]
    return max(files, key=lambda p: p.stat().st_mtime) if files else None
