"""The names of the results layout: every file and folder of a run directory and of a sweep
folder, the path of each, the walk that finds run directories below a root, and
``RunFileError`` (the error every reader of the layout raises).

Which module reads and writes which file: ``runfiles`` (config.yaml, meta.json, packages-*.txt,
DONE, ckpt/step_*.safetensors, jobs.jsonl, sweep.yaml), ``runstate`` (FAILED, .lock, the run
state), ``runtables`` (metrics.jsonl, evals.csv, timesteps/*.csv).
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.config.fields import ConfigError

CONFIG, META, METRICS, EVALS = "config.yaml", "meta.json", "metrics.jsonl", "evals.csv"
DONE, FAILED, LOCK, JOBS, SWEEP = "DONE", "FAILED", ".lock", "jobs.jsonl", "sweep.yaml"
SUBMITIT_DIR = ".submitit"                         # under the sweep folder: submitit's job logs
CKPT_DIR, CKPT = "ckpt", "last.pt"
TIMESTEPS_DIR = "timesteps"
TENSORBOARD_DIR, WANDB_DIR = "tensorboard", "wandb"
TIMESTEP_FILES = {"diagnostics": "diagnostics.csv", "p_t": "p_t.csv", "t_hist": "t_hist.csv",
                  "adaptation": "adaptation.csv", "t_drawn": "t_drawn.csv"}


class RunFileError(ValueError):
    """A file of the results layout that cannot be read; the message names file and line/row."""


# ---------------------------------------------------------------------------- paths
def config_path(run_dir: Path) -> Path:
    return Path(run_dir) / CONFIG


def ckpt_path(run_dir: Path) -> Path:
    return Path(run_dir) / CKPT_DIR / CKPT


def snapshot_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CKPT_DIR / f"step_{int(step):08d}.safetensors"


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


def tensorboard_dir(run_dir: Path) -> Path:
    return Path(run_dir) / TENSORBOARD_DIR


def wandb_dir(run_dir: Path) -> Path:
    return Path(run_dir) / WANDB_DIR


# ---------------------------------------------------------------------------- the tree
def is_run_dir(filenames) -> bool:
    return CONFIG in filenames


def check_folder(path: Path, flag: str) -> None:
    """Before any work: ``path`` (a results, sweep or run folder) can be a folder — the nearest
    part of it that exists is one; else ConfigError naming the file in the way and ``flag``."""
    path = Path(path)
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                raise ConfigError(f"{flag}: {part} is a file, not a folder (needed for {path}); "
                                  f"choose another {flag} or move the file")
            return


def find_run_dirs(root: Path) -> tuple[list[Path], list[Path]]:
    """(run directories, sweep.yaml files) below ``root``; a run directory inside another one is a
    RunFileError (the report would have to choose one of the two)."""
    runs, sweeps = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if is_run_dir(filenames):
            runs.append(Path(dirpath))
            inner = next((p.parent for p in Path(dirpath).glob(f"*/**/{CONFIG}")), None)
            if inner is not None:
                raise RunFileError(f"{inner}: a run directory inside the run directory "
                                   f"{dirpath}; move it out (e.g. beside it) so each run is read")
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
