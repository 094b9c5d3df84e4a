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


class Tally:
    """The training losses of one log interval, kept on the training device so that a step
    never waits for them: their sum (and per loss bin of the process's grid), the gradient
    norms' sum, and the step and example counts. Read (one synchronisation) when the interval's
    row is written. Sums are float64; the loss and gradient-norm sums add each step's value in
    step order, as the float sums of earlier versions did (the same numbers); a bin's sum adds
    its examples one by one (``index_add_``), which may round the last bit differently from
    summing them per step first."""

    def __init__(self, k: int, device: torch.device | str = "cpu"):
        self.k = k
        self.loss = torch.zeros((), dtype=torch.float64, device=device)
        self.grad_norm = torch.zeros((), dtype=torch.float64, device=device)
        self.bin_sum = torch.zeros(k, dtype=torch.float64, device=device)
        self.bin_n = torch.zeros(k, dtype=torch.long, device=device)
        self.n = 0
        self.steps = 0

    def add(self, losses: Tensor, bins: Tensor, grad_norm: Tensor) -> None:
        """One step: its per-example losses (all ranks), their loss bins (int64, [0, k)) and its
        gradient norm (a 0-dim tensor)."""
        losses = losses.detach().double()
        self.loss += losses.sum()
        self.bin_sum.index_add_(0, bins, losses)
        self.bin_n.index_add_(0, bins, torch.ones_like(bins))
        self.grad_norm += grad_norm.detach().double()
        self.n += losses.numel()
        self.steps += 1

    def sum_over_ranks(self, reduce, rank: int) -> None:
        """Fold the ranks' tallies into rank 0's (``reduce``: a SUM over ranks), the others
        emptied, so the ranks' sum stays the tally of the global batch. Rank 0 keeps the step
        count and the gradient norms (the same on every rank)."""
        packed = reduce(torch.cat([self.loss[None], self.loss.new_tensor([self.n]),
                                   self.bin_sum, self.bin_n.double()]))
        if rank != 0:
            packed.zero_()
        self.loss, self.n, self.bin_sum = packed[0], int(packed[1]), packed[2:2 + self.k]
        self.bin_n = packed[2 + self.k:].round().long()

    def state_dict(self) -> dict:
        """The checkpoint's ``acc`` (plain numbers, as earlier versions wrote it)."""
        return {"loss": float(self.loss), "n": self.n, "grad_norm": float(self.grad_norm),
                "steps": self.steps, "bin_sum": self.bin_sum.tolist(),
                "bin_n": self.bin_n.tolist()}

    def load_state_dict(self, acc: dict) -> None:
        dev = self.loss.device
        self.loss = torch.tensor(float(acc["loss"]), dtype=torch.float64, device=dev)
        self.grad_norm = torch.tensor(float(acc["grad_norm"]), dtype=torch.float64, device=dev)
        self.bin_sum = torch.tensor(acc["bin_sum"], dtype=torch.float64, device=dev)
        self.bin_n = torch.tensor(acc["bin_n"], dtype=torch.long, device=dev)
        self.n, self.steps = int(acc["n"]), int(acc["steps"])

    def row(self, step: int, batch_size: int, lr: float, wall_s_train: float,
            cost: dict) -> dict:
        """The metrics.jsonl row of this interval."""
        acc = self.state_dict()
        return {
            "step": step, "nimg": step * batch_size,
            "loss": acc["loss"] / max(acc["n"], 1),
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

    def tick(self) -> None:
        """After every step: the bar moves (it shows the loss of the last row written)."""
        if self.bar is not None:
            self.bar.update(1)

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
        """A metrics.jsonl row was written: the plain log line (or the bar's loss) and the
        trackers."""
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{row['loss']:.4f}", refresh=False)
        elif self.log_lines:
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

