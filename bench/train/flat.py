"""A module's parameters (and their gradients) as views of one flat buffer (``Flat``).

The trainer's per-step tensor work that touches every parameter — Adam, the gradient clip, the
EMA update, zeroing the gradients — then runs as one kernel on one buffer instead of one per
parameter tensor. Each parameter keeps its shape and strides (a channels-last weight stays
channels-last): ``p.data`` and ``p.grad`` become strided views into ``flat`` / ``flat.grad`` at
the parameter's offset. Elementwise work on the buffer gives, element for element, what the
per-tensor work gives; the gradient norm is still taken per tensor and then over the tensors'
norms, as ``torch.nn.utils.clip_grad_norm_`` does, so its rounding is unchanged.

Backward accumulates into the existing ``p.grad`` views (autograd adds in place into a defined
gradient), so the gradients must be zeroed (``zero_grad``), never set to None. Every parameter
takes part (a parameter the loss does not reach gets a zero gradient, where the optimizer would
otherwise skip it: with Adam and no weight decay its value does not change).

The optimizer holds the one flat parameter; ``optimizer_state`` / ``load_optimizer_state``
convert its state to and from the per-parameter ``state_dict`` format that torch's optimizer
writes for the module's parameters, so checkpoints keep their format in both directions.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn


def _dense(p: Tensor) -> bool:
    """Whether ``p`` covers exactly ``p.numel()`` consecutive elements (any order of dims)."""
    expected = 1
    for stride, size in sorted((st, sz) for sz, st in zip(p.shape, p.stride()) if sz != 1):
        if stride != expected:
            return False
        expected *= size
    return True


class Flat:
    """``params`` (one dtype and device, each non-overlapping and dense) as views of ``flat``."""

    def __init__(self, params: list[nn.Parameter], grads: bool = True):
        if not params:
            raise ValueError("no parameters to flatten")
        kinds = {(p.dtype, p.device) for p in params}
        if len(kinds) != 1 or not all(_dense(p) for p in params):
            raise ValueError(f"parameters of one dtype and device, each dense, are needed for a "
                             f"flat buffer; got {sorted(map(str, kinds))}")
        self.params = params
        self.offsets, n = [], 0
        for p in params:
            self.offsets.append(n)
            n += p.numel()
        data = torch.empty(n, dtype=params[0].dtype, device=params[0].device)
        self.flat = nn.Parameter(data, requires_grad=params[0].requires_grad)
        with torch.no_grad():
            for p, v in zip(params, self.views(data)):
                v.copy_(p)
                p.data = v
        if grads:
            self.flat.grad = torch.zeros_like(data)
            for p, g in zip(params, self.views(self.flat.grad)):
                p.grad = g

    def views(self, buffer: Tensor) -> list[Tensor]:
        """``buffer`` (like ``flat``) seen as one tensor per parameter (its shape and strides)."""
        return [buffer.as_strided(p.shape, p.stride(), o)
                for p, o in zip(self.params, self.offsets)]

    @property
    def grads(self) -> list[Tensor]:
        return [p.grad for p in self.params]

    def zero_grad(self) -> None:
        self.flat.grad.zero_()

    # ---------------------------------------------------------------- optimizer state
    def optimizer_state(self, opt: torch.optim.Optimizer) -> dict:
        """``opt``'s state_dict (it holds ``flat`` alone) as torch writes it for the module's
        parameters, one entry per parameter (copies)."""
        sd = opt.state_dict()
        (group,) = sd["param_groups"]
        state = sd["state"].get(0)
        per = {}
        if state is not None:
            for i in range(len(self.params)):
                per[i] = {k: (v.clone() if k == "step" else self._view(v, i).clone())
                          if isinstance(v, Tensor) else copy.deepcopy(v) for k, v in state.items()}
        return {"state": per,
                "param_groups": [{**group, "params": list(range(len(self.params)))}]}

    def load_optimizer_state(self, opt: torch.optim.Optimizer, sd: dict) -> None:
        """Load a per-parameter state_dict (``optimizer_state``'s format, or one torch wrote for
        the module's parameters) into ``opt``, which holds ``flat``."""
        (group,) = sd["param_groups"]
        n = len(self.params)
        if len(group["params"]) != n:
            raise ValueError(f"optimizer state for {len(group['params'])} parameters, this model "
                             f"has {n}")
        states = [sd["state"].get(pid) for pid in group["params"]]
        flat_state = {}
        if any(s is not None for s in states):
            if any(s is None for s in states):
                raise ValueError("optimizer state for some parameters only")
            for k, v in states[0].items():
                if k == "step" or not isinstance(v, Tensor):
                    flat_state[k] = v
                    continue
                buf = torch.zeros_like(self.flat, dtype=v.dtype)
                for i, s in enumerate(states):
                    if tuple(s[k].shape) != tuple(self.params[i].shape):
                        raise ValueError(f"optimizer state {k!r} of parameter {i} has shape "
                                         f"{tuple(s[k].shape)}, the parameter "
                                         f"{tuple(self.params[i].shape)}")
                    self._view(buf, i).copy_(s[k])
                flat_state[k] = buf
        opt.load_state_dict({"state": {0: flat_state} if flat_state else {},
                             "param_groups": [{**group, "params": [0]}]})

    def _view(self, buffer: Tensor, i: int) -> Tensor:
        p = self.params[i]
        return buffer.as_strided(p.shape, p.stride(), self.offsets[i])
