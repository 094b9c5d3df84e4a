"""The run log of one training run: the tally of training losses between log ticks (overall and
per loss bin of the process's time grid), the metrics.jsonl rows made from it, the job log (a
progress bar on a terminal, else one plain line per log tick), and the experiment trackers
(train.loggers). The trainer owns one ``RunLog``; evaluation callbacks print and track through
the trainer's ``say`` / ``note_eval`` / ``log_scalars``, which land here."""

from __future__ import annotations

import math
import sys
import time

import torch
from torch import Tensor

from bench.core.cost import TRAIN_COUNTERS
from bench.core.process import TimeGrid
from bench.labels import duration_text
from bench.train import loggers


def fresh_tally(k: int) -> dict:
    """An empty tally of ``k`` loss bins."""
    return {"loss": 0.0, "n": 0, "grad_norm": 0.0, "steps": 0,
            "bin_sum": [0.0] * k, "bin_n": [0] * k}


def add_to_tally(acc: dict, losses: Tensor, bins: Tensor, grad_norm: float) -> None:
    """Add one step's per-example losses (all ranks, CPU float64), their loss bins and its
    gradient norm to ``acc``."""
    acc["loss"] += float(losses.sum())
    acc["n"] += losses.numel()
    acc["grad_norm"] += grad_norm
    acc["steps"] += 1
    for b in range(len(acc["bin_sum"])):
        m = bins == b
        acc["bin_sum"][b] += float(losses[m].sum())
        acc["bin_n"][b] += int(m.sum())


def running_loss(acc: dict) -> float:
    return acc["loss"] / max(acc["n"], 1)


def tally_row(acc: dict, step: int, batch_size: int, lr: float, wall_s_train: float,
              cost: dict) -> dict:
    """The metrics.jsonl row of a tally."""
    return {
        "step": step, "nimg": step * batch_size,
        "loss": running_loss(acc),
        "loss_bins": [s / n if n else None for s, n in zip(acc["bin_sum"], acc["bin_n"])],
        "grad_norm": acc["grad_norm"] / max(acc["steps"], 1),
        "lr": lr, "wall_s_train": round(wall_s_train, 4),
        **cost,
    }


def bin_ranges(grid: TimeGrid, k: int) -> list[str]:
    """The time range of each of the ``k`` training-loss bins of ``grid`` (the trackers' tag
    names): DDPM's indices ``t000-099``, a continuous grid's ``t0.1-0.2``."""
    cells = torch.arange(grid.size)
    b = grid.bins(cells, k)
    out = []
    for i in range(k):
        inside = cells[b == i]
        if not len(inside):
            out.append(f"bin{i}_empty")
        elif grid.discrete:
            w = len(str(grid.size - 1))
            out.append(f"t{int(inside[0]):0{w}d}-{int(inside[-1]):0{w}d}")
        else:
            out.append(f"t{int(inside[0]) / grid.size:g}-{(int(inside[-1]) + 1) / grid.size:g}")
    return out


class RunLog:
    """The console (rank 0: a tqdm bar on a terminal, plain lines otherwise) and the trackers of
    one run."""

    def __init__(self, name: str, total: int, rank: int, progress: bool, log_lines: bool,
                 grid: TimeGrid, loss_bins: int):
        self.name, self.total, self.rank = name, total, rank
        # A progress bar only on a terminal (rank 0): in captured logs (SLURM, a redirect) its
        # control codes are noise, and a plain line every log_every says the same (``say``).
        self.progress = progress and rank == 0 and sys.stderr.isatty()
        self.log_lines = log_lines
        self.grid_size = grid.size
        self.bin_tags = [f"train/loss_{r}" for r in bin_ranges(grid, loss_bins)]
        self.bar = None
        self.trackers: list = []
        self.last_eval = ""
        self.t_logged: Tensor | None = None
        self.t_start, self.step_start = 0.0, 0

    # --- lifetime -----------------------------------------------------------------------
    def open(self, step: int, names: list[str], run_dir, cfg: dict, t_counts: Tensor) -> None:
        """Start the bar and the trackers (rank 0) at ``step``."""
        if self.progress:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, initial=step, desc=self.name, unit="it",
                            dynamic_ncols=True, mininterval=1.0)
        if self.rank == 0 and names:
            self.trackers = loggers.build(names, run_dir, cfg, step)
            self.t_logged = t_counts.clone()
        self.t_start, self.step_start = time.perf_counter(), step

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.bar = None
        for lg in self.trackers:
            lg.close()
        self.trackers = []

    # --- the job log ----------------------------------------------------------------------
    def say(self, text: str) -> None:
        """One line for the job log (rank 0): above the progress bar when there is one."""
        if self.rank != 0:
            return
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def tick(self, acc: dict) -> None:
        """After every step: the bar moves and shows the running loss of this interval."""
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{running_loss(acc):.4f}", refresh=False)

    def line(self, row: dict, step: int) -> str:
        """``[name] step 400/1000 (40%) · loss 0.2238 · 37.5 it/s · ETA 16 s · eval ...``."""
        total = self.total
        rate = (step - self.step_start) / max(time.perf_counter() - self.t_start, 1e-9)
        eta = (total - step) / rate if rate > 0 else math.inf
        parts = [f"[{self.name}] step {step}/{total} ({100 * step // total}%)",
                 f"loss {row['loss']:.4g}", f"{rate:.3g} it/s", f"ETA {duration_text(eta)}"]
        if self.last_eval:
            parts.append(f"eval {self.last_eval}")
        return " · ".join(parts)

    def row_written(self, row: dict, step: int, t_counts: Tensor) -> None:
        """A metrics.jsonl row was written: the plain log line and the trackers."""
        if self.bar is None and self.log_lines:
            self.say(self.line(row, step))
        self.track(row, t_counts)

    def note_eval(self, rows: list[dict], step: int) -> None:
        """Print an evaluation's results and keep them for the plain log line."""
        text = ", ".join(f"{r['metric']}={r['value']:.4g}" for r in rows)
        self.last_eval = f"{text} @ {step}"
        self.scalars(step, {f"eval/{r['metric']}": r["value"] for r in rows})
        if self.log_lines or self.bar is not None:
            self.say(f"[{self.name}] eval at step {step}: {text}")

    # --- trackers ---------------------------------------------------------------------------
    def scalars(self, step: int, values: dict) -> None:
        """Send the finite numbers of ``values`` to the trackers."""
        if not self.trackers:
            return
        clean = {k: float(v) for k, v in values.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
        for lg in self.trackers:
            lg.scalars(step, clean)

    def track(self, row: dict, t_counts: Tensor) -> None:
        """A metrics.jsonl row to the trackers, with the histogram of the t drawn since the
        previous row."""
        if not self.trackers:
            return
        bins = {tag: v for tag, v in zip(self.bin_tags, row["loss_bins"]) if v is not None}
        self.scalars(row["step"], {"train/loss": row["loss"], "train/grad_norm": row["grad_norm"],
                                   "train/lr": row["lr"], **bins,
                                   **{f"cost/{k}": row[k] for k in TRAIN_COUNTERS}})
        drawn = (t_counts - self.t_logged).tolist()
        self.t_logged = t_counts.clone()
        for lg in self.trackers:
            lg.histogram(row["step"], "t_drawn", list(range(self.grid_size + 1)), drawn)

