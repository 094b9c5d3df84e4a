"""Cost in network evaluations: per-example passes through the diffusion network, by purpose.

A benchmark of training speed needs a cost that a shared machine cannot disturb. Every run
counts, per example, the forward and backward passes through the diffusion network ε_θ:

    fwd_train, bwd_train        the trainer's own step (B forwards and B backwards per iteration)
    fwd_strategy, bwd_strategy  what a strategy evaluates around the step (StepContext.model)
    fwd_eval                    what one evaluation row cost (sampling, the NLL bound)

A forward of a batch of n examples counts n; a backward pass through the output of such a
forward counts n each time a gradient flows through it (two ``autograd.grad`` calls on one
forward count 2n: the compute is two full backward passes). Other networks (a strategy's policy
network, EDM2's weighting MLP, the FID feature extractor) are not counted here: their time is in
``python -m bench.perf``'s measured ms/it. docs/cost.md lists the count of every strategy.

The one cost unit: **forward-equivalents = fwd + bwd_factor·bwd** (``bwd_factor`` 2: a backward
pass costs about two forwards), ``forward_equivalents``.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

TRAIN_COUNTERS = ("fwd_train", "bwd_train", "fwd_strategy", "bwd_strategy")
EVAL_COUNTER = "fwd_eval"
BWD_FACTOR = 2.0


def forward_equivalents(fwd: float, bwd: float, bwd_factor: float = BWD_FACTOR) -> float:
    """The cost unit: fwd + bwd_factor·bwd."""
    return fwd + bwd_factor * bwd


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
