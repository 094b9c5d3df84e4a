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
pass costs about two forwards), ``forward_equivalents``. The counting wrapper itself is
``bench.core.counted.Counted``; this module stays free of torch (it is pure arithmetic on
counts).
"""

from __future__ import annotations

TRAIN_COUNTERS = ("fwd_train", "bwd_train", "fwd_strategy", "bwd_strategy")
EVAL_COUNTER = "fwd_eval"
EVAL_BWD = "bwd_eval"          # backward passes of an evaluation (flow's ODE likelihood: probes)
BWD_FACTOR = 2.0


def forward_equivalents(fwd: float, bwd: float, bwd_factor: float = BWD_FACTOR) -> float:
    """The cost unit: fwd + bwd_factor·bwd."""
    return fwd + bwd_factor * bwd
