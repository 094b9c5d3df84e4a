"""The small files of the results layout, each read and written whole: config.yaml (the run's
hyperparameters), meta.json (one record per attempt), packages-<hash>.txt, DONE (the final log
row), ckpt/step_<N>.safetensors (kept weights), jobs.jsonl (the jobs a launch submitted) and a
sweep folder's sweep.yaml.

Readers are strict where the file is the truth (config.yaml, DONE with ``strict``): a corrupt
file raises ``RunFileError`` naming it. Writers are atomic (temporary file, rename), except the
append-only jobs.jsonl, whose reader tolerates an unreadable file (it only informs messages).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from bench.config.files import yaml_load
from bench.config.identity import run_id
from bench.core.io import atomic_write, atomic_write_text
from bench.rundir.runpaths import (CKPT_DIR, DONE, JOBS, META, RunFileError, config_path,
                                   done_path, snapshot_path, sweep_file)


def finite_json(x: Any) -> Any:
    """``x`` with every non-finite float replaced by None (JSON has no NaN or inf)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: finite_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite_json(v) for v in x]
    return x


# ---------------------------------------------------------------------------- config, meta
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


RUN_ID = re.compile(r"[0-9a-f]{10}")      # a folder named like a run id (bench.train, sweeps)


def check_config_identity(run_dir: Path, cfg: dict, expected: str | None = None) -> None:
    """The run's config.yaml (``cfg``, as read) hashes to the run's id: the folder's name where it
    is a run id, and ``expected`` (the id of the run asked for) when given. RunFileError naming
    the file and the fix: a config edited after the run was made would label its results with
    values they were not trained with."""
    path, folder = config_path(run_dir), Path(run_dir).name
    try:
        rid = run_id(cfg)
    except (ValueError, TypeError, KeyError) as e:     # e.g. a plug-in strategy not installed
        raise RunFileError(f"{path}: no run id can be computed ({e})") from e
    if RUN_ID.fullmatch(folder) and rid != folder:
        raise RunFileError(
            f"{path}: hashes to run id {rid}, but its run directory is {folder}: the file was "
            f"edited after the run was made (or the folder renamed). Restore the original file; "
            f"to train the edited config, run it as its own run. An older results tree: "
            f"python -m bench.tools.migrate RESULTS_DIR")
    if expected is not None and rid != expected:
        raise RunFileError(f"{run_dir} holds another run (run id {rid}; this config's is "
                           f"{expected}); use another --results-dir")


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


def write_packages(run_dir: Path, text: str) -> str:
    """Store an installed-package list as ``packages-<sha256[:12]>.txt`` (once per distinct
    environment) and return that file name, which meta.json records."""
    name = f"packages-{hashlib.sha256(text.encode()).hexdigest()[:12]}.txt"
    path = Path(run_dir) / name
    if not path.exists():
        atomic_write_text(path, text)
    return name


# ---------------------------------------------------------------------------- DONE
def write_done(run_dir: Path, final: dict) -> None:
    atomic_write_text(done_path(run_dir), json.dumps(finite_json(final), allow_nan=False))


def read_done(run_dir: Path, strict: bool = False) -> dict:
    """The final log row DONE holds ({} if empty or unreadable; ``strict``: RunFileError — an
    empty file too: a DONE always holds a JSON object, ``{}`` at the least)."""
    path = done_path(run_dir)
    try:
        text = path.read_text()
        row = json.loads(text if strict else text or "{}")
        if not isinstance(row, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError, UnicodeDecodeError) as e:
        if strict:
            raise RunFileError(f"{path}: unreadable ({e}); the run finished but its final row is "
                               f"lost: delete {DONE} to let the run write it again") from e
        return {}
    return row


# ---------------------------------------------------------------------------- kept weights
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


# ---------------------------------------------------------------------------- sweep.yaml
def write_sweep(sweep_dir: Path, spec: dict) -> None:
    """sweep.yaml, rewritten only when it changed; replacing an earlier version says so (its runs
    stay in the folder and the report counts them; only the new version's runs are expected)."""
    path, text = sweep_file(sweep_dir), yaml.safe_dump(spec, sort_keys=False)
    old = path.read_text() if path.exists() else None
    if old == text:
        return
    if old is not None:
        print(f"note: {path} replaced: the sweep changed since it was last launched into this "
              f"folder. Runs of the earlier version stay there and the report counts them; "
              f"launch an edited sweep under a new 'name' to keep the two apart",
              file=sys.stderr, flush=True)
    atomic_write_text(path, text)
