"""Process-group plumbing for multi-process (DDP-style) runs: where the ranks are, init/teardown,
and the cross-rank sum the trainer injects into strategies.

The trainer stays free of launcher details: it receives ``rank``, ``world_size`` and a ``reduce``
callable (a SUM across ranks). This module finds the ranks (``from_submitit`` inside a submitit
job, or explicit values in tests), initialises ``torch.distributed`` (NCCL on GPUs, gloo on CPU)
and provides ``all_reduce_sum`` (gradients are averaged by torch's DistributedDataParallel in the
trainer).
"""

from __future__ import annotations

import datetime
import socket
import time
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = 29500

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def from_submitit() -> DistEnv:
    """The ranks of the current submitit job (SLURM or local executor); one rank outside a job.

    Uses ``submitit.helpers.TorchDistributedEnvironment`` for the rendezvous address (the first
    node of the allocation) and a port derived from the job id, identical on every task.
    """
    import submitit

    try:
        job = submitit.JobEnvironment()
        if job.num_tasks <= 1:
            return DistEnv()
        env = submitit.helpers.TorchDistributedEnvironment()
    except RuntimeError:           # not inside a submitit job
        return DistEnv()
    return DistEnv(rank=env.rank, world_size=env.world_size, local_rank=env.local_rank,
                   master_addr=env.master_addr, master_port=env.master_port)


def free_port() -> int:
    """A free TCP port on the loopback interface (for single-machine tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init(env: DistEnv, timeout_s: float = 300.0) -> str:
    """Initialise the default process group for ``env``; returns the backend ("nccl" or "gloo").

    On CUDA each rank uses GPU ``local_rank`` (modulo the visible count, in case the scheduler
    already binds one GPU per task); ``train.device: cuda``/``auto`` then means that GPU. Must be
    called in the thread that trains (the CUDA current device is per thread).
    """
    import torch.distributed as dist

    if not env.distributed:
        return ""
    backend = "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(env.local_rank % torch.cuda.device_count())
        backend = "nccl"
    if not dist.is_initialized():
        dist.init_process_group(backend, init_method=f"tcp://{env.master_addr}:{env.master_port}",
                                rank=env.rank, world_size=env.world_size,
                                timeout=datetime.timedelta(seconds=timeout_s))
    return backend


STORE_GRACE_S = 0.5     # rank 0 tears down last: its peers first leave the store it hosts


def teardown(sync: bool = True) -> None:
    """Destroy the process group; with ``sync`` once every rank got here (a rank that tears down
    while a peer still talks to it can abort the peer: "terminate called without an active
    exception"). After an error on this rank alone, pass ``sync=False``: the peers may never
    arrive."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if sync:
            dist.barrier()
            if dist.get_rank() == 0:    # rank 0 hosts the store the others still talk to
                time.sleep(STORE_GRACE_S)
        dist.destroy_process_group()


def all_reduce_sum(x: Tensor) -> Tensor:
    """The element-wise sum of ``x`` over all ranks, as a new tensor (the input is untouched)."""
    import torch.distributed as dist

    y = x.detach().clone()
    dist.all_reduce(y, op=dist.ReduceOp.SUM)
    return y


def all_reduce_max_flag(flag: bool, device: torch.device | str = "cpu") -> bool:
    """True on every rank iff ``flag`` is True on at least one rank."""
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def sum_reduce(world_size: int):
    """The trainer's default ``reduce``: identity on one process, else ``all_reduce_sum``."""
    if world_size == 1:
        return lambda x: x
    return all_reduce_sum
