"""TensorBoard event files under ``RUN/tensorboard/<run label>/`` (torch.utils.tensorboard's
writer; ``tensorboard --logdir results/`` shows every run, named ``<sweep>/<run id>/tensorboard/
<strategy label> · seed N · <setting>``, ``bench.labels.run_label``). A fresh run also writes its
hparams (strategy, variant, seed, process, setting, sweep, run id: TensorBoard's HPARAMS tab) and
a text ``about/tags`` saying what the tags mean. Every attempt purges the events after the step it
starts from (a resume: its checkpoint's step, whose own events stay; a fresh start: a dead
attempt's events)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.labels import run_label, setting_label, strategy_label
from bench.rundir import runpaths
from bench.train.loggers.base import register

ABOUT = """\
- `train/loss`, `train/grad_norm`, `train/lr`: the logged interval's means (metrics.jsonl).
- `train/loss_t<a>-<b>`: the training loss of the examples drawn in that time range (DDPM's
  indices a…b; on flow t ∈ [a, b)).
- `adapt/*` (learned strategies): how far p(t) moved — `tv_uniform`/`tv_initial`: total variation
  from uniform / from the initial p(t); `q1`…`q4`: p's mass on each quarter of the time grid.
- `cost/*`: network passes counted so far, by purpose; `eval/*`: the evaluation metrics.
- `t_drawn`: the histogram of the t drawn since the previous log row."""


def label_dir(cfg: dict) -> str:
    """The run's label as one folder name (no path separators)."""
    return run_label(cfg).replace("/", "∕")[:200]


def hparams(cfg: dict, run_dir: Path) -> dict:
    """What the HPARAMS tab shows of a run."""
    strategy = cfg["strategy"]
    return {"strategy": strategy.get("name", "?"), "label": strategy_label(strategy),
            "variant": str(strategy.get("variant", "")), "seed": int(cfg.get("seed", 0)),
            "process": (cfg.get("process") or {}).get("name", "ddpm"),
            "setting": setting_label(cfg), "sweep": Path(run_dir).resolve().parent.name,
            "run_id": Path(run_dir).name}


@register("tensorboard")
class TensorBoard:
    requires, pip = "tensorboard", "tensorboard"

    def __init__(self, run_dir: Path, cfg: dict, start_step: int):
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        self.writer = SummaryWriter(log_dir=str(runpaths.tensorboard_dir(run_dir)
                                                / label_dir(cfg)), purge_step=start_step + 1)
        if start_step == 0:
            for summary in hparams_summary(hparams(cfg, run_dir), {"train/loss": 0.0}):
                self.writer.file_writer.add_summary(summary)
            self.writer.add_text("about/tags", ABOUT, 0)

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
