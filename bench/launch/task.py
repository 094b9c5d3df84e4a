"""The job's task: ``RunTask`` trains one run config into its run directory (resuming from its
checkpoint), in a worker thread so that submitit's preemption/timeout handler (which runs in the
main thread) can ask the trainer to stop at the end of its current step, wait for the checkpoint,
and hand submitit a fresh ``DelayedSubmission`` of itself to requeue. With several tasks per job
(``tasks_per_node > 1``) each task is one rank (``bench.core.dist``); the stop request is agreed
on by all ranks at the end of every step, so they stop together and rank 0 saves.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import submitit
import torch

from bench import experiment
from bench.core import dist
from bench.rundir import runstate
from bench.train.trainer import Callback, Interrupted

STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2}

class _StopSync(Callback):
    """Trainer callback: sets ``trainer.stop_requested`` once a stop was asked for on any rank;
    logs the step the run starts from (after the trainer loaded its checkpoint)."""

    def __init__(self, event: threading.Event, world_size: int):
        self.event, self.world_size = event, world_size
        self.start_step = 0

    def on_start(self, trainer) -> None:
        self.start_step = trainer.step
        if trainer.rank == 0:
            how = "resuming from checkpoint" if trainer.step else "starting"
            print(f"[bench.launch] {trainer.run_dir.name}: {how} at step {trainer.step} of "
                  f"{trainer.tr.iterations} (world size {trainer.world_size})", flush=True)

    def on_step_end(self, trainer) -> None:
        flag = self.event.is_set() or trainer.stop_requested
        if self.world_size > 1:      # the ranks agree once per log tick (a collective)
            if trainer.step % trainer.tr.log_every and trainer.step != trainer.tr.iterations:
                return
            flag = dist.all_reduce_max_flag(flag, trainer.device)
        if flag:
            trainer.stop_requested = True


class RunTask:
    """Train one run; a submitit checkpointable callable (``checkpoint`` returns a fresh
    ``DelayedSubmission`` of the same run, which resumes from the checkpoint it just wrote)."""

    def __init__(self, config: dict, run_dir: str | Path, stop_timeout_s: float = 60.0,
                 num_threads: int | None = None, job_log: bool = True):
        self.config = config
        self.run_dir = str(run_dir)
        self.stop_timeout_s = float(stop_timeout_s)
        self.num_threads = num_threads      # torch intra-op threads (= the job's CPUs per task)
        # A job with its own log (SLURM, submitit's LocalExecutor) gets the trainer's plain line
        # per log tick and every evaluation; runs sharing the launcher's console do not.
        self.job_log = job_log
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None
        self._sync: _StopSync | None = None

    def __getstate__(self) -> dict:
        return {"config": self.config, "run_dir": self.run_dir,
                "stop_timeout_s": self.stop_timeout_s, "num_threads": self.num_threads,
                "job_log": self.job_log}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update({"job_log": True, **state})
        self._stop, self._done, self._thread, self._sync = None, None, None, None

    def __call__(self) -> dict:
        env = dist.from_submitit()
        self._stop, self._done = threading.Event(), threading.Event()
        box: dict = {}
        self._thread = threading.Thread(target=self._work, args=(env, box), daemon=True,
                                        name=f"train-{Path(self.run_dir).name}")
        self._thread.start()
        try:
            # Short waits, so that signal handlers run in this thread. On an Event, not with
            # Thread.join: a KeyboardInterrupt that interrupts join() can leave is_alive()
            # False while the thread still runs (CPython), and the stop would not be awaited.
            while not self._done.wait(0.2):
                pass
        except KeyboardInterrupt:
            self._request_stop()
            raise
        if "error" in box:
            if isinstance(box["error"], Interrupted) and env.rank != 0:
                # Rank 0 is checkpointing and requeuing the job, which ends this process.
                time.sleep(self.stop_timeout_s + 60)
            raise box["error"]
        return box["result"]

    def _work(self, env: dist.DistEnv, box: dict) -> None:
        # Signals are for the main thread only: delivered to this thread or to the torch threads
        # it starts (which inherit its mask), they abort the process at exit ("terminate called
        # without an active exception") after a Ctrl-C.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            if self.num_threads:
                # More threads than CPUs makes OpenMP spin and slows small models many-fold.
                torch.set_num_threads(self.num_threads)
            run_dir = Path(self.run_dir)
            resumed = not runstate.is_done(run_dir) and runstate.has_checkpoint(run_dir)
            dist.init(env)                  # the run lock: bench.train.run takes it (rank 0)
            try:
                final = experiment.run(
                    self.config, self.run_dir, progress=False, log_lines=self.job_log,
                    rank=env.rank,
                    world_size=env.world_size,
                    reduce=dist.all_reduce_sum if env.distributed else None,
                    trainer_hook=self._hook(env))
            except BaseException:
                dist.teardown(sync=False)
                raise
            dist.teardown()
            box["result"] = {"run_id": Path(self.run_dir).name, "resumed": resumed,
                             "start_step": self._sync.start_step if self._sync else None,
                             "final": {k: v for k, v in final.items() if k != "loss_bins"}}
        except BaseException as e:  # noqa: BLE001  (handed to the main thread, re-raised there)
            box["error"] = e
        finally:
            self._done.set()

    def _hook(self, env: dist.DistEnv) -> Callable:
        def hook(trainer) -> None:
            self._sync = _StopSync(self._stop, env.world_size)
            trainer.callbacks.append(self._sync)
        return hook

    def _request_stop(self) -> None:
        if self._stop is not None:
            self._stop.set()
        if self._done is not None:
            self._done.wait(self.stop_timeout_s)

    def checkpoint(self, *args, **kwargs):
        """Called by submitit on preemption or timeout (rank 0): stop the trainer at the end of
        its step, wait for its checkpoint, and requeue a fresh task for the same run."""
        self._request_stop()
        return submitit.helpers.DelayedSubmission(
            RunTask(self.config, self.run_dir, self.stop_timeout_s, self.num_threads))


