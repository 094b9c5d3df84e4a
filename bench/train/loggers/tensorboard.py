"""TensorBoard event files under ``RUN/tensorboard/`` (torch.utils.tensorboard's writer;
``tensorboard --logdir results/`` shows every run). Every attempt purges the events after the step
it starts from (a resume: its checkpoint's step, whose own events stay; a fresh start: a dead
attempt's events)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.rundir import runpaths
from bench.train.loggers.base import register


@register("tensorboard")
class TensorBoard:
    requires, pip = "tensorboard", "tensorboard"

    def __init__(self, run_dir: Path, cfg: dict, start_step: int):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(runpaths.tensorboard_dir(run_dir)),
                                    purge_step=start_step + 1)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for k, v in values.items():
            self.writer.add_scalar(k, v, step)

    def histogram(self, step: int, name: str, edges: list, counts: list) -> None:
        counts = np.asarray(counts, dtype=float)
        if counts.sum() <= 0:
            return
        mids = (np.asarray(edges[:-1], float) + np.asarray(edges[1:], float)) / 2
        n = counts.sum()
        self.writer.add_histogram_raw(
            name, min=float(edges[0]), max=float(edges[-1]), num=float(n),
            sum=float((mids * counts).sum()), sum_squares=float((mids**2 * counts).sum()),
            bucket_limits=[float(e) for e in edges[1:]], bucket_counts=counts.tolist(),
            global_step=step)

    def close(self) -> None:
        self.writer.close()
