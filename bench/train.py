"""Train one run into the results layout.

    python -m bench.train CONFIG.yaml [--set key=value ...] [--results-dir DIR]

The run directory is ``DIR/<run_id>`` (run_id = hash of the resolved config) and holds config.yaml,
meta.json, metrics.jsonl, ckpt/ and, when finished, DONE. Rerunning the same command resumes from
the checkpoint; on SIGTERM the run checkpoints and exits with status 143.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

from bench import config as C
from bench.trainer import Interrupted, Trainer, atomic_write_text

REPO = Path(__file__).resolve().parent.parent


def git_state() -> dict:
    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    try:
        return {"git_sha": git("rev-parse", "HEAD") or None,
                "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return {"git_sha": None, "git_dirty": None}


def meta(trainer: Trainer) -> dict:
    import numpy
    import torch

    return {**git_state(), "python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "device": str(trainer.device),
            "device_name": (torch.cuda.get_device_name(trainer.device)
                            if trainer.device.type == "cuda" else platform.processor() or "cpu"),
            "world_size": trainer.world_size, "host": socket.gethostname(),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID"), "started": time.time()}


def prepare_run_dir(cfg: dict, run_dir: Path, trainer: Trainer) -> None:
    """Write config.yaml and meta.json (rank 0). A different config in ``run_dir`` is an error."""
    cfg_path = run_dir / "config.yaml"
    if cfg_path.exists():
        old = yaml.safe_load(cfg_path.read_text())
        if C.canonical(old) != C.canonical(cfg):
            raise C.ConfigError(f"{run_dir} holds a run with a different config; "
                                f"use another --results-dir")
    if trainer.rank != 0:
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    if not cfg_path.exists():
        atomic_write_text(cfg_path, yaml.safe_dump(cfg, sort_keys=False))
    meta_path = run_dir / "meta.json"
    m = meta(trainer)
    if meta_path.exists():
        first = json.loads(meta_path.read_text())
        first.setdefault("resumes", []).append(m)
        m = first
    atomic_write_text(meta_path, json.dumps(m, indent=1))


def run(cfg: dict, run_dir: str | Path, *, progress: bool = True, rank: int = 0,
        world_size: int = 1, reduce=None, trainer_hook=None) -> dict:
    """Train ``cfg`` into ``run_dir`` (resuming if possible); returns the final log row.

    ``trainer_hook(trainer)`` runs before training (a launcher uses it to wire preemption).
    """
    run_dir = Path(run_dir)
    done = run_dir / "DONE"
    if done.exists():
        return json.loads(done.read_text() or "{}")
    trainer = Trainer(cfg, run_dir, rank=rank, world_size=world_size, reduce=reduce,
                      progress=progress, callbacks=make_callbacks(cfg))
    prepare_run_dir(cfg, run_dir, trainer)
    if trainer_hook is not None:
        trainer_hook(trainer)
    final = trainer.run()
    if rank == 0:
        atomic_write_text(done, json.dumps(final))
    return final


def make_callbacks(cfg: dict) -> list:
    """Evaluation and diagnostics run as trainer callbacks (timed apart from training)."""
    try:
        from bench import evaluation
    except ImportError:
        return []
    return evaluation.callbacks(cfg)


def load_config(path: str, sets: list[str]) -> dict:
    return C.resolve(C.deep_update(C.load_yaml(path), C.parse_set(sets)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", help="run config YAML")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config value, e.g. --set strategy.name=p2 (repeatable)")
    ap.add_argument("--results-dir", default="results/single", help="parent of the run directory")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    try:
        cfg = load_config(args.config, args.set)
        run_dir = Path(args.results_dir) / C.run_id(cfg)
        holder: dict = {}

        def on_term(signum, frame):
            if "trainer" in holder:
                holder["trainer"].stop_requested = True

        def hook(trainer):                  # the data and model are built, run_dir written
            holder["trainer"] = trainer
            print(f"run dir: {run_dir}", flush=True)

        signal.signal(signal.SIGTERM, on_term)
        final = run(cfg, run_dir, progress=not args.no_progress, trainer_hook=hook)
    except Interrupted as e:
        print(f"interrupted: {e}; rerun the same command to resume", file=sys.stderr)
        return 143
    except (C.ConfigError, ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"run_dir": str(run_dir), **{k: v for k, v in final.items()
                                                   if k != "loss_bins"}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
