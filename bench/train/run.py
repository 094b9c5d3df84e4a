"""One run into its run directory (bench.rundir): config.yaml and meta.json, the trainer with the
callbacks it is handed, DONE at the end. Rerunning resumes from the checkpoint."""

from __future__ import annotations

import datetime
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy
import torch

from bench.rundir import runfiles, runpaths, runstate
from bench.config.identity import run_id
from bench.train import checkpoint
from bench.train.trainer import Diverged, Interrupted, Trainer

REPO = Path(__file__).resolve().parents[2]


def git_state() -> dict:
    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    try:
        return {"git_sha": git("rev-parse", "HEAD") or None,
                "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return {"git_sha": None, "git_dirty": None}


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else platform's), e.g. "AMD EPYC 7B13"."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def installed_packages() -> str:
    """``name==version`` of every installed distribution, sorted (a pip freeze without pip)."""
    from importlib import metadata

    names = {(d.metadata["Name"] or "?", d.version) for d in metadata.distributions()}
    return "".join(f"{n}=={v}\n" for n, v in sorted(names, key=lambda x: x[0].lower()))


def meta(trainer: Trainer, run_dir: Path) -> dict:
    """What one attempt ran on: code, command (this process's argv: in a SLURM or submitit job,
    submitit's worker; the launcher's command is in jobs.jsonl), machine, versions, the package
    list (a file in the run directory named by its hash)."""
    cpu = cpu_model()
    gpu = torch.cuda.get_device_name(trainer.device) if trainer.device.type == "cuda" else None
    return {**git_state(), "python": platform.python_version(), "torch": torch.__version__,
            "cuda": torch.version.cuda, "cudnn": (torch.backends.cudnn.version()
                                                 if torch.backends.cudnn.is_available() else None),
            "numpy": numpy.__version__, "device": str(trainer.device),
            "device_name": gpu or cpu, "cpu": cpu, "cpu_count": os.cpu_count(), "gpu": gpu,
            "torch_threads": torch.get_num_threads(),
            "world_size": trainer.world_size, "host": socket.gethostname(),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
            "command": [sys.executable, *sys.argv],
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "packages": runfiles.write_packages(run_dir, installed_packages())}


def prepare_run_dir(cfg: dict, run_dir: Path, trainer: Trainer) -> None:
    """Write config.yaml and meta.json (rank 0)."""
    if trainer.rank != 0:
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    if not runpaths.config_path(run_dir).exists():
        runfiles.write_config(run_dir, cfg)
    runfiles.update_meta(run_dir, meta(trainer, run_dir))


def record_failure(run_dir: Path, reason: str, kind: str, step: int | None) -> None:
    """FAILED with ``reason``, when it can be written (a full disk may refuse it too: then a
    warning naming FAILED, and the exception that failed the run goes on unchanged)."""
    try:
        runstate.mark_failed(run_dir, reason, kind, step)
    except OSError as e:
        print(f"warning: the failure is not recorded in {run_dir / runpaths.FAILED} ({e})",
              file=sys.stderr, flush=True)


def run(cfg: Mapping, run_dir: str | Path, *, callbacks: list = (), progress: bool = True,
        log_lines: bool = True, rank: int = 0, world_size: int = 1, reduce=None,
        trainer_hook=None) -> dict:
    """Train the resolved config ``cfg`` into ``run_dir`` (resuming if possible) with
    ``callbacks`` (bench.train.trainer.Callback); returns the final log row.

    Everything that can refuse the run is checked before anything is written (the config, the
    checkpoint, the tables a resume rewrites); ``trainer_hook(trainer)`` then runs (a launcher
    uses it to wire preemption; ``bench.train`` counts an error after it as a failed run, not
    bad input). From there on an exception other than a requested stop writes FAILED when it can.
    """
    run_dir = Path(run_dir)
    if runpaths.config_path(run_dir).exists():      # edited, or another run's: refused
        runfiles.check_config_identity(run_dir, runfiles.read_config(run_dir), run_id(cfg))
    if runstate.is_done(run_dir):
        return runfiles.read_done(run_dir, strict=True)
    cfg = dict(cfg)
    trainer = Trainer(cfg, run_dir, rank=rank, world_size=world_size, reduce=reduce,
                      progress=progress, log_lines=log_lines, callbacks=list(callbacks))
    with runstate.run_lock(run_dir, take=rank == 0):     # built (the config is good): claim it
        resumed = trainer.load_checkpoint()            # a bad checkpoint: refused, nothing written
        checkpoint.check_logs(run_dir)                 # a corrupt log: refused, nothing written
        if trainer_hook is not None:
            trainer_hook(trainer)
        try:                                           # the work starts: writes from here on
            prepare_run_dir(cfg, run_dir, trainer)
            if rank == 0:
                runstate.clear_failed(run_dir)
            final = trainer.run(resumed)
            if rank == 0:
                runfiles.write_done(run_dir, final)
        except Interrupted:
            raise
        except Diverged as e:
            if rank == 0:       # not retried by a sweep rerun unless asked (--retry-failed)
                record_failure(run_dir, str(e), "diverged", e.step)
            raise
        except Exception as e:
            if rank == 0:       # the run dir says why; the next attempt clears it
                record_failure(run_dir, f"{type(e).__name__}: {e}", "error", trainer.step)
            raise
    return final
