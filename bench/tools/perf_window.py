"""The measuring pieces of ``bench.perf`` (and ``scripts/gpu_perf_check.py``): a timed window of
N consecutive steps with one synchronisation at its end, the amortisation of periodic work over
such windows, the host synchronisations per step (``bench.core.syncs.SyncWatch``), and the FLOPs
of a training step (``torch.utils.flop_counter``) with the model FLOPs utilisation (MFU) they give.

A window of N steps ends with one ``torch.cuda.synchronize()`` (nothing on the CPU), so work the
host queues ahead overlaps the device inside the window, as in a real run; N = 1 is the per-step
mode, where every step is waited for. The host is idle-synchronised before the clock starts (the
previous window ended with a synchronisation, so that wait is empty and it is not timed).
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.core.syncs import SyncWatch

# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity), by a substring of
# torch.cuda.get_device_name(); the first match wins, so the specific names come first.
PEAK_BF16_TFLOPS = (("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H200", 989.4),
                    ("H100", 989.4), ("A100", 312.0))


def peak_tflops(device_name: str) -> float | None:
    """The dense bf16 peak of a GPU named ``device_name`` (None: not in the table)."""
    for key, peak in PEAK_BF16_TFLOPS:
        if key in device_name:
            return peak
    return None


def default_peak(device: torch.device) -> float | None:
    """The table's bf16 peak of the current CUDA device; None on the CPU or an unknown GPU."""
    return peak_tflops(torch.cuda.get_device_name(device)) if device.type == "cuda" else None


def sync(cuda: bool) -> None:
    if cuda:
        torch.cuda.synchronize()


def timed_window(step: Callable[[], None], n: int, cuda: bool) -> float:
    """Seconds for ``n`` consecutive calls of ``step``, one synchronisation at the end."""
    sync(cuda)                         # empty: the previous window ended with one (not timed)
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    sync(cuda)
    return time.perf_counter() - t0


def amortise(times: list[float], periodic: list[int], n: int, period: int | None) -> dict:
    """Per-step seconds of windows of ``n`` steps (``times``), ``periodic[i]`` of the steps of
    window i doing the strategy's periodic work, that work spread over ``period`` steps.

    ``median``: the median per-step time of the windows without periodic work; each periodic
    step's extra cost is its window's time minus n·median; ``periodic``: median + the mean
    extra (the time of a periodic step); ``amortised``: median + mean extra / period. With
    n = 1 these are median(ordinary steps), mean(periodic steps) and median + (mean(periodic) −
    median) / period. When every window holds periodic work the window mean stands for all
    three (exact when the run's period is the amortisation period). ``mean``: all steps."""
    mean = sum(times) / (n * len(times))
    plain = [t / n for t, k in zip(times, periodic) if not k]
    k_all = sum(periodic)
    if not plain:
        return {"median": mean, "periodic": mean if k_all else None, "amortised": mean,
                "n_periodic": k_all, "mean": mean}
    med = statistics.median(plain)
    if not k_all:
        return {"median": med, "periodic": None, "amortised": med, "n_periodic": 0, "mean": mean}
    extra = sum(t - n * med for t, k in zip(times, periodic) if k) / k_all
    return {"median": med, "periodic": med + extra, "amortised": med + extra / (period or 1),
            "n_periodic": k_all, "mean": mean}


def syncs_per_step(step: Callable[[], None], k: int) -> float | None:
    """Host synchronisations per step over ``k`` steps under ``SyncWatch`` (None: k = 0)."""
    if k <= 0:
        return None
    with SyncWatch() as w:
        for _ in range(k):
            step()
    return w.total / k


def count_flops(fn: Callable[[], None]) -> int:
    """FLOPs torch counts (matmuls, convolutions, attention) in one call of ``fn``: forward and
    backward of a training step; elementwise work and the optimizer count nothing."""
    with FlopCounterMode(display=False) as fc:
        fn()
    return int(fc.get_total_flops())


def mfu(flops: int | None, seconds: float, peak: float | None) -> float | None:
    """Achieved FLOP/s over the peak (``peak`` in TFLOP/s); None without either."""
    if not flops or not peak or seconds <= 0:
        return None
    return flops / seconds / (peak * 1e12)
