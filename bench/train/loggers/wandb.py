"""Weights & Biases (``train.loggers: [wandb]``), imported only when configured. Offline mode
(files under ``RUN/wandb/``, ``wandb sync`` later) unless ``WANDB_MODE`` says otherwise or an API
key is set. The W&B run id is ``<sweep folder>-<run id>``, so a resumed run continues the same W&B
run and one config in two results folders makes two. W&B refuses steps that do not increase, so
after a resume from step s the points an earlier attempt logged after s stay as they were (the
run's own files and TensorBoard drop them). ``WANDB_PROJECT`` names the project (default
timestep-bench)."""

from __future__ import annotations

import os
from pathlib import Path

from bench.labels import run_label
from bench.rundir import runpaths
from bench.train.loggers.base import register


@register("wandb")
class WandB:
    requires, pip = "wandb", "wandb"

    def __init__(self, run_dir: Path, cfg: dict, start_step: int):
        import wandb

        mode = os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY")
                                                else "offline")
        directory = runpaths.wandb_dir(run_dir)
        directory.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "timestep-bench"),
                              name=run_label(cfg),
                              id=f"{Path(run_dir).resolve().parent.name}-{Path(run_dir).name}",
                              resume="allow",
                              dir=str(directory), config=cfg, mode=mode)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        self.run.log(dict(values), step=step)

    def histogram(self, step: int, name: str, edges: list, counts: list) -> None:
        import wandb

        self.run.log({name: wandb.Histogram(np_histogram=(list(counts), list(edges)))},
                     step=step)

    def close(self) -> None:
        self.run.finish()
