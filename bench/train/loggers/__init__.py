"""Experiment trackers the trainer writes to besides its own files (metrics.jsonl, evals.csv and
timesteps/*.csv are always written: bench.rundir). ``train.loggers: [tensorboard, wandb]``.

A logger is one module of this package (imported below) holding a class registered with
``@register(name)`` (bench.train.loggers.base):

    class MyLogger:
        def __init__(self, run_dir: Path, cfg: dict, start_step: int): ...   # rank 0 only
        def scalars(self, step: int, values: dict[str, float]) -> None: ...
        def histogram(self, step: int, name: str, edges: list, counts: list) -> None: ...
        def close(self) -> None: ...

and a ``requires`` attribute naming the module it imports (checked before a run starts, so a
missing package is an error before any work). ``start_step`` is the step the run resumes from:
a logger drops what an earlier attempt logged after it (the trainer's own files do the same).

Scalars are named ``train/loss``, ``train/loss_t300-399`` (a loss bin's t-range: runlog.bin_ranges),
``train/grad_norm``, ``train/lr``,
``cost/fwd_train`` ..., ``eval/<metric>`` and ``adapt/<column>``; histograms ``t_drawn`` (the t
drawn since the previous log tick).
"""

from bench.train.loggers.base import build, check, get, names, register

from bench.train.loggers import tensorboard  # noqa: F401  (one import line per logger registers it)
from bench.train.loggers import wandb  # noqa: F401

__all__ = ["build", "check", "get", "names", "register"]
