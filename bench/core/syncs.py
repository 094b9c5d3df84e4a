"""Host synchronisations made by tensor code, counted where they happen (``SyncWatch``).

A GPU training step runs ahead of the host as long as the host never waits for a result: no
scalar read (``float(t)``, ``t.item()``, ``bool(t)``: ``aten._local_scalar_dense``), no op whose
output shape depends on the data (``nonzero``, ``bincount``, ``unique``, ``masked_select``,
boolean-mask indexing, ``repeat_interleave`` with tensor repeats), and no copy from the device to
pageable host memory. ``SyncWatch`` is a ``TorchDispatchMode`` that sees every aten op run under it
and records each of these, so a test can hold a steady-state training step to zero on the CPU, and
``bench.perf`` / ``scripts/gpu_perf_check.py`` can print the count per step.

On the CPU a ``.cpu()`` or ``.tolist()`` of a CPU tensor dispatches nothing and is not seen; on
CUDA the device→host copy is (and ``torch.cuda.set_sync_debug_mode("error")`` catches the rest).
A scalar read made by ``torch.optim`` itself is not counted: torch's optimizers keep their
``step`` counter on the host (unless ``capturable``), so reading it never waits for the device.
"""

from __future__ import annotations

from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten

# ops whose output shape (or value on the host) depends on the data
_DATA_DEPENDENT = {
    aten._local_scalar_dense.default: "scalar read (float/int/bool/item)",
    aten.nonzero.default: "nonzero",
    aten.bincount.default: "bincount",
    aten.masked_select.default: "masked_select",
    aten._unique2.default: "unique",
    aten.unique_dim.default: "unique",
    aten.unique_consecutive.default: "unique",
    aten.repeat_interleave.Tensor: "repeat_interleave (tensor repeats)",
}


def _is_bool_index(args) -> bool:
    indices = args[1] if len(args) > 1 else ()
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices or ())


def _is_device_to_host(func, args, kwargs) -> bool:
    if func not in (aten._to_copy.default, aten.copy_.default):
        return False
    if func is aten.copy_.default:
        dst, src = args[0], args[1]
        return src.device.type != "cpu" and dst.device.type == "cpu"
    src, dev = args[0], kwargs.get("device")
    return src.device.type != "cpu" and dev is not None and torch.device(dev).type == "cpu"


def _in_optimizer() -> bool:
    """Whether the op was called from torch.optim (its host-side step counters)."""
    import sys
    f = sys._getframe(2)
    while f is not None:
        if "/torch/optim/" in f.f_code.co_filename.replace("\\", "/"):
            return True
        f = f.f_back
    return False


class SyncWatch(TorchDispatchMode):
    """Records every host-synchronising op run under it: ``counts`` (kind → number) and
    ``total``. ``stacks=True`` also keeps a short Python stack of each (for error messages)."""

    def __init__(self, stacks: bool = False):
        super().__init__()
        self.counts: Counter = Counter()
        self.where: list[str] = []
        self.stacks = stacks

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def _note(self, kind: str) -> None:
        self.counts[kind] += 1
        if self.stacks:
            import traceback
            frames = [f for f in traceback.extract_stack()[:-3]
                      if "/torch/" not in f.filename][-3:]
            self.where.append(f"{kind} at " + " <- ".join(
                f"{f.filename.rsplit('/', 2)[-2]}/{f.filename.rsplit('/', 1)[-1]}:{f.lineno}"
                for f in reversed(frames)))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        kind = _DATA_DEPENDENT.get(func)
        if func is aten._local_scalar_dense.default and _in_optimizer():
            kind = None
        if kind is None and func in (aten.index.Tensor, aten.index_put_.default,
                                     aten.index_put.default) and _is_bool_index(args):
            kind = "boolean-mask indexing"
        if kind is None and _is_device_to_host(func, args, kwargs):
            kind = "device-to-host copy"
        if kind is not None:
            self._note(kind)
        return func(*args, **kwargs)
