"""Counting the per-example passes through the diffusion network (``Counted``): the cost unit's
counters of ``bench.core.cost``, measured where the network is called."""

from __future__ import annotations

import math

from torch import Tensor, nn


def examples(x: Tensor) -> int:
    """Per-example slices in ``x`` [n, ...], also under torch.func transforms (vmap hides its
    batch dimension: the count is of the underlying tensor)."""
    try:
        from torch._C import _functorch as ft
        base = x
        while ft.is_functorch_wrapped_tensor(base):
            base = ft.get_unwrapped(base)
    except (ImportError, AttributeError):        # no functorch internals: the logical batch
        base = x
    per = math.prod(x.shape[1:]) if x.dim() else 1
    return base.numel() // max(per, 1)


class Counted(nn.Module):
    """``model`` that counts the per-example forward (``fwd``) and backward (``bwd``) passes
    made through it. Its train/eval mode is the inner model's."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.inner = model
        self.fwd = 0
        self.bwd = 0

    @property
    def training(self) -> bool:            # the wrapped model's mode, whoever set it
        inner = self.__dict__.get("_modules", {}).get("inner")
        return True if inner is None else inner.training

    @training.setter
    def training(self, value: bool) -> None:
        pass                                   # nn.Module.train() sets the inner model's flag

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        n = examples(x)
        self.fwd += n
        out = self.inner(x, t)
        if out.requires_grad:
            out.register_hook(lambda g: self._backward(n))
        return out

    def _backward(self, n: int) -> None:
        self.bwd += n

    def counts(self) -> tuple[int, int]:
        return self.fwd, self.bwd
