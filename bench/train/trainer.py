"""One trainer for every strategy: setup, the data order, one training step, and the loop as
EDM2-style phases (step → tally → callbacks → snapshot → checkpoint → stop?). Checkpoint I/O is
``bench.train.checkpoint``; the tally, rows, job log and trackers are ``bench.train.runlog``.

Each iteration: draw the global batch → strategy.sample → the process's per-example loss
(ε-MSE for DDPM) → loss = mean(weight × loss) → before_update → backward, clip, optimizer step,
EMA → after_update → log / callbacks / checkpoint. Randomness comes only from generators derived
from (seed, purpose, step), plus the global torch RNG for dropout, whose state is checkpointed;
so resume = rerun the same command, and a resumed run ends bit-identical (CPU) to an
uninterrupted one.

With ``world_size > 1`` every rank draws the same global batch, timesteps and noise, and trains on
its slice through torch's ``DistributedDataParallel`` (bucketed all-reduces of the gradient that
overlap the backward), so N ranks equal one process with the same global batch (up to
floating-point reduction order). Strategies evaluate the plain (counted) module. The logged tally
and the strategies' pass counts are combined across ranks only where something is written (log
rows, checkpoints, evaluations), not at every step.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

import strategies
from bench.rundir import runfiles, runpaths, runtables
from bench.config.sections import Config
from bench.core import dist
from bench.core.cost import TRAIN_COUNTERS
from bench.core.counted import Counted
from bench.core.io import pick_device, upload
from bench.core.rng import derive_seed, generator
from bench.train import checkpoint, loggers
from bench.train.components import build_components
from bench.train.divergence import Diverged, FiniteWatch  # noqa: F401  (Diverged: re-export)
from bench.train.flat import Flat
from bench.train.runlog import RunLog, Tally


class Interrupted(Exception):
    """Raised after a checkpoint was written because a stop was requested (SIGTERM, preemption)."""


class Callback:
    """The trainer's callback protocol: a callback implements any of these hooks (all no-ops
    here), each called with the trainer. ``on_draw`` sees every global batch's ``Draw`` (e.g. to
    count the timesteps a strategy draws); ``on_adapt`` follows a step at which a learned strategy
    updated its distribution (``ctx.adapted`` holds the strategy's record of it, ``trainer.step``
    is already the new step); the others run at the start (after a resume), after every
    optimizer step (logging done, before the checkpoint) and at the end. A callback that carries
    values from one step to a later one also implements ``state_dict()`` / ``load_state_dict()``:
    its state goes into every checkpoint (by class name), so a resumed run writes what an
    uninterrupted one does. A callback that writes at some steps says which by ``due(step)``
    (and ``due_adapt(trainer)`` for ``on_adapt``): the trainer makes sure the run has not
    diverged before those steps' hooks run."""

    def on_start(self, trainer: "Trainer") -> None: ...

    def on_draw(self, trainer: "Trainer", draw: strategies.Draw) -> None: ...

    def on_adapt(self, trainer: "Trainer", ctx: strategies.StepContext) -> None: ...

    def on_step_end(self, trainer: "Trainer") -> None: ...

    def on_end(self, trainer: "Trainer") -> None: ...


class Trainer:
    def __init__(self, cfg: Mapping | Config, run_dir: str | Path, *, rank: int = 0,
                 world_size: int = 1, reduce: Callable[[Tensor], Tensor] | None = None,
                 progress: bool = True, log_lines: bool = True, callbacks: list | None = None):
        self.cfg = Config.of(cfg)
        self.raw_cfg = copy.deepcopy(dict(cfg)) if isinstance(cfg, Mapping) else {}
        self.tr = self.cfg.train
        self.run_dir = Path(run_dir)
        self.rank, self.world_size = rank, world_size
        self.reduce = reduce or dist.sum_reduce(world_size)
        loggers.check(self.tr.loggers)          # a missing tracker package: before any work
        self.keep = checkpoint.kept_steps(self.cfg)
        self.callbacks = list(callbacks or [])
        self.stop_requested = False
        self.seed = self.cfg.seed
        self.device = pick_device(self.tr.device)
        B = self.tr.batch_size
        if B % world_size:
            raise ValueError(f"train.batch_size={B} is not divisible by world_size={world_size}")
        # Model init (and dropout) use the global RNG: seed it from the run seed, identically on
        # every rank; its state goes into every checkpoint.
        torch.manual_seed(derive_seed(self.seed, "global"))
        np.random.seed(derive_seed(self.seed, "numpy") % 2**32)
        random.seed(derive_seed(self.seed, "python"))
        self.data, model, self.process, self.strategy = build_components(self.cfg, self.device)
        self.log = RunLog(self.cfg.name, self.tr.iterations, rank, progress, log_lines,
                          self.process.grid, self.tr.loss_bins)
        if len(self.data.train) < B:
            raise ValueError(f"train.batch_size={B} exceeds the {len(self.data.train)} training "
                             f"examples of {self.data.name!r}")
        if self.tr.channels_last and self.data.is_image:
            model = model.to(memory_format=torch.channels_last)
        self.model = model                       # the plain module
        self.net = model                         # what the training forward runs (DDP may wrap)
        self.strategy_net = Counted(model)       # what strategies evaluate (counted passes)
        self.ema = self._copy_for_ema(model)
        # Parameters, gradients and EMA weights as views of flat buffers (bench.train.flat): the
        # optimizer, clip, EMA and zeroing run once on a buffer, element for element as before.
        self.flat = Flat(list(model.parameters()))
        self.ema_flat = Flat(list(self.ema.parameters()), grads=False)
        self._grads = self.flat.grads
        self._buffers = list(zip(self.ema.buffers(), model.buffers()))
        opt_cls = torch.optim.AdamW if self.tr.optimizer == "adamw" else torch.optim.Adam
        # GPU-path options (docs/perf.md); all off by default, so CPU runs are unchanged.
        cuda = self.device.type == "cuda"
        fused = {"fused": True} if cuda and self.tr.fused_optimizer else {"foreach": True}
        self.opt = opt_cls([self.flat.flat], lr=self.tr.lr, betas=tuple(self.tr.betas),
                           weight_decay=self.tr.weight_decay, **fused)
        if cuda and self.tr.tf32:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        if cuda:
            torch.backends.cudnn.benchmark = self.tr.cudnn_benchmark
        if world_size > 1:     # after Flat: DDP writes the averaged gradients into its views
            from torch.nn.parallel import DistributedDataParallel
            self.net = DistributedDataParallel(
                model, device_ids=[self.device.index] if cuda else None, broadcast_buffers=False)
        if self.tr.compile:                      # the training forward only; strategies: eager
            mode = "default" if self.tr.compile is True else self.tr.compile
            self.net = torch.compile(self.net, mode=mode)
        self.step = 0
        self._ckpt_step = 0                      # the step of the checkpoint on disk
        self.wall_s_train = 0.0
        # Cumulative per-example passes through the network by purpose (bench.core.cost), over
        # all ranks, and the histogram of every t drawn (what the model trained on).
        self.cost = dict.fromkeys(TRAIN_COUNTERS, 0)
        self._pending = [0, 0]     # this rank's strategy passes not yet summed over ranks
        self.t_counts = torch.zeros(self.process.grid.size, dtype=torch.long, device=self.device)
        self.tally = Tally(self.tr.loss_bins, self.device)
        self.finite = FiniteWatch(self.device)
        self._perm_epoch, self._perm = -1, None
        self._gens: dict[str, torch.Generator] = {}

    # ------------------------------------------------------------------ small pieces
    @staticmethod
    def _copy_for_ema(model: torch.nn.Module) -> torch.nn.Module:
        ema = copy.deepcopy(model).eval()
        for p in ema.parameters():
            p.requires_grad_(False)
        return ema

    def _gen(self, purpose: str, *keys) -> torch.Generator:
        """The (seed, purpose, *keys) stream (``bench.core.rng.generator``), one Generator
        object per purpose reseeded each time."""
        g = self._gens.get(purpose)
        if g is None:
            g = self._gens[purpose] = torch.Generator()
        return g.manual_seed(derive_seed(self.seed, purpose, *keys))

    def lr_at(self, step: int) -> float:
        w = self.tr.warmup
        return self.tr.lr * (min((step + 1) / w, 1.0) if w > 0 else 1.0)

    def batch(self, step: int) -> Tensor:
        """The global batch of ``step``: epoch permutations from (seed, epoch), drop_last."""
        B, n = self.tr.batch_size, len(self.data.train)
        per_epoch = n // B
        epoch, pos = divmod(step, per_epoch)
        if epoch != self._perm_epoch:
            self._perm = torch.randperm(n, generator=generator(self.seed, "data", epoch))
            self._perm_epoch = epoch
        x0 = self.data.train.get(self._perm[pos * B:(pos + 1) * B],
                                 generator=self._gen("latent", step))
        if self.data.hflip:
            flip = torch.rand(B, generator=self._gen("flip", step)) < 0.5
            x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
        return x0

    def _update_ema(self) -> None:
        n = self.step - 1  # updates before this one: 0 at the first step
        decay = min(self.tr.ema_decay, (1 + n) / (10 + n))
        with torch.no_grad():
            self.ema_flat.flat.lerp_(self.flat.flat, 1.0 - decay)
            for e, b in self._buffers:
                e.copy_(b)

    def _clip(self) -> Tensor:
        """The gradient norm (a 0-dim tensor; per-tensor norms, then their norm, as
        ``clip_grad_norm_``), the gradients scaled to ``train.grad_clip`` when it is > 0."""
        clip, grads = self.tr.grad_clip, self._grads
        if clip <= 0:
            return torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))
        norm = torch.nn.utils.get_total_norm(grads, 2.0)
        self.flat.flat.grad.mul_(torch.clamp(clip / (norm + 1e-6), max=1.0))
        return norm

    # ------------------------------------------------------------------ one iteration
    def train_step(self) -> dict:
        step, B, W = self.step, self.tr.batch_size, self.world_size
        x0_host = self.batch(step)
        x0_global = upload(x0_host, self.device)
        draw = self.strategy.sample(x0_global, self._gen("t", step))
        cells = upload(self.process.grid.cell(draw.t.detach()), self.device)
        self.t_counts.index_add_(0, cells, torch.ones_like(cells))
        self._emit("on_draw", draw)
        noise = torch.randn(x0_host.shape, generator=self._gen("noise", step))
        sl = slice(self.rank * (B // W), (self.rank + 1) * (B // W))
        x0, noise = x0_global[sl], upload(noise[sl], self.device)
        local = draw.select(sl, self.device)
        t = local.t                                   # the drawn grid cells
        pr = self.process
        t_train = pr.train_times(draw.t, self._gen("cell_time", step))[sl]
        x_t = pr.noised(x0, t_train, noise)
        if self.tr.channels_last and x_t.dim() == 4:
            x_t = x_t.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.tr.bf16):
            pred = self.net(x_t, pr.model_time(t_train))
        losses = pr.loss(pred, pr.target(x0, noise))
        loss = (local.weight * losses).mean()
        ctx = strategies.StepContext(
            step=step, x0=x0, draw=local, losses=losses.detach(), model=self.strategy_net,
            process=pr, generator=self._gen("strategy", self.rank, step),
            reduce=self.reduce, rank=self.rank, world_size=W)
        counted0 = self.strategy_net.counts()
        self.strategy.before_update(ctx)
        self.flat.zero_grad()
        loss.backward()
        grad_norm = self._clip()
        self.finite.note(step, loss.detach(), grad_norm)
        for group in self.opt.param_groups:
            group["lr"] = self.lr_at(step)
        self.opt.step()
        self.step += 1
        self._update_ema()
        self.strategy.after_update(ctx)
        self._count(B, counted0)
        return {"losses": losses.detach(), "t": t, "grad_norm": grad_norm, "ctx": ctx}

    def _count(self, B: int, before: tuple[int, int]) -> None:
        """Add this step's passes: the training step's B forwards and B backwards (the global
        batch) and the strategy's (this rank's, summed over ranks by ``_sync``)."""
        self.cost["fwd_train"] += B
        self.cost["bwd_train"] += B
        fwd, bwd = (a - b for a, b in zip(self.strategy_net.counts(), before))
        self._pending[0] += fwd
        self._pending[1] += bwd
        if self.world_size == 1:
            self._sync()

    def _sync(self) -> None:
        """Fold the ranks' strategy passes into ``cost`` (one all-reduce with several ranks)."""
        fwd, bwd = self._pending
        if self.world_size > 1:
            fwd, bwd = (int(v) for v in self.reduce(torch.tensor(
                [fwd, bwd], dtype=torch.float64, device=self.device)).round().tolist())
        self.cost["fwd_strategy"] += fwd
        self.cost["bwd_strategy"] += bwd
        self._pending = [0, 0]

    def check_diverged(self) -> None:
        """Raise ``Diverged`` if a step so far had a non-finite loss or gradient norm."""
        ckpt = self.ckpt_path
        self.finite.check(self.step, f"the last good checkpoint is {ckpt} (step "
                          f"{self._ckpt_step})" if ckpt.exists() else
                          "no checkpoint was written yet")

    def _accumulate(self, out: dict) -> None:
        """The step into the tally of this log interval (this rank's examples; the loss bins of
        the process's grid)."""
        self.tally.add(out["losses"], self.process.grid.bins(out["t"], self.tr.loss_bins),
                       out["grad_norm"])

    def _log_row(self) -> dict:
        if self.world_size > 1:
            self.tally.sum_over_ranks(self.reduce, self.rank)
        row = self.tally.row(self.step, self.tr.batch_size, self.lr_at(self.step - 1),
                             self.wall_s_train, self.cost)
        self.tally = Tally(self.tr.loss_bins, self.device)
        return row

    # ------------------------------------------------------------------ checkpoints
    @property
    def ckpt_path(self) -> Path:
        return runpaths.ckpt_path(self.run_dir)

    def save_checkpoint(self) -> None:
        if self.world_size > 1:     # rank 0 saves the tally of all ranks
            self.tally.sum_over_ranks(self.reduce, self.rank)
        checkpoint.save(self)

    def load_checkpoint(self) -> bool:
        return checkpoint.load(self)

    def _emit(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, hook, None)
            if fn is not None:
                fn(self, *args)

    # ------------------------------------------------------------------ job log and trackers
    def say(self, text: str) -> None:
        """One line for the job log (rank 0): above the progress bar when there is one."""
        self.log.say(text)

    def log_scalars(self, step: int, values: dict) -> None:
        """Send the finite numbers of ``values`` to the configured trackers (train.loggers)."""
        self.log.scalars(step, values)

    def note_eval(self, rows: list[dict]) -> None:
        """Print an evaluation's results (bench.evaluation calls it) and keep them for the plain
        log line."""
        self.log.note_eval(rows, self.step)

    # ------------------------------------------------------------------ the loop
    def run(self, resumed: bool | None = None) -> dict:
        """Train to the budget, resuming from the checkpoint if present (``resumed``: the caller
        already called ``load_checkpoint`` and says what it returned); returns the last log row.
        On a terminal a progress bar shows the running loss; otherwise one plain line per log
        tick goes to stderr (step/budget, loss, it/s, ETA, the latest evaluation)."""
        if resumed is None:
            resumed = self.load_checkpoint()
        checkpoint.truncate_logs(self)
        total, last = self.tr.iterations, {}
        cfg = {}
        if self.rank == 0 and self.tr.loggers:
            cfg = (runfiles.read_config(self.run_dir) if runpaths.config_path(self.run_dir).exists()
                   else self.raw_cfg)
        self.log.open(self.step, self.tr.loggers, self.run_dir, cfg, self.t_counts)
        if resumed:
            self.say(f"resumed from step {self.step}")
        self._emit("on_start")
        try:
            while self.step < total:
                last = self._phases(total) or last
            self._emit("on_end")
        finally:
            self.log.close()
        return last or self.last_logged()

    def _records(self, total: int) -> bool:
        """Whether this step writes a log row, checkpoint, snapshot or callback output: the same
        answer on every rank (the ranks' pass counts are summed there, a collective)."""
        s = self.step
        return (s % self.tr.log_every == 0 or s % self.tr.ckpt_every == 0 or s == total
                or s in self.keep or any(cb.due(s) for cb in self.callbacks if hasattr(cb, "due")))

    def _phases(self, total: int) -> dict | None:
        """One iteration: step → tally → callbacks → snapshot → checkpoint → stop?; the
        metrics.jsonl row when this step wrote one."""
        t0 = time.perf_counter()
        try:
            out = self.train_step()
            self._accumulate(out)
        except Exception:        # e.g. a strategy fed non-finite values: say it diverged
            self.check_diverged()
            raise
        self.wall_s_train += time.perf_counter() - t0
        adapted = out["ctx"].adapted is not None
        records = self._records(total)
        if records or adapted and any(cb.due_adapt(self) for cb in self.callbacks
                                      if hasattr(cb, "due_adapt")):
            self.check_diverged()       # before anything of a diverged run is written
        if records:
            self._sync()
        if adapted:                               # outside the training clock
            self._emit("on_adapt", out["ctx"])
        self.log.tick()
        row = None
        if self.step % self.tr.log_every == 0 or self.step == total:
            row = self._log_row()
            if self.rank == 0:
                runtables.append_metrics(self.run_dir, row)
                self.log.row_written(row, self.step, self.t_counts)
        self._emit("on_step_end")
        if self.step in self.keep:
            checkpoint.snapshot(self)
        if self.step % self.tr.ckpt_every == 0 or self.step == total:
            self.save_checkpoint()
        if self.stop_requested and self.step < total:     # agreed by all ranks at this step
            self.check_diverged()
            self._sync()
            self.save_checkpoint()
            raise Interrupted(f"stopped at step {self.step}; checkpoint written")
        return row

    def last_logged(self) -> dict:
        return runtables.last_metrics(self.run_dir)
