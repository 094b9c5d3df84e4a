"""The per-timestep stochastic-gradient variance estimator: tr Cov(∇_θ ℓ_t) per bin of the time
grid (``bin_gradient_variance``) and for one batch (``gradient_variance``), with the two
estimators ``two_half`` and ``per_sample`` (docs/official_code.md#gradient-variance). The
``grad_variance`` strategy samples by it and the Fig. 2 diagnostics measure with it; the loss is
the process's (``Process.loss``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bench.core.process import Process

ESTIMATORS = ("two_half", "per_sample")


def timestep_bins(T: int, K: int) -> Tensor:
    """Edges [K+1] (int64) of K contiguous bins of [0, T), sizes differing by at most 1."""
    if not 1 <= K <= T:
        raise ValueError(f"bins must be in [1, T={T}], got {K}")
    return torch.linspace(0, T, K + 1, dtype=torch.float64).round().long()


def _param_subset(model: nn.Module, last: int) -> list[tuple[str, nn.Parameter]]:
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return named if last <= 0 else named[-last:]


def bin_gradient_variance(model: nn.Module, process: Process, x0: Tensor, bin_edges: Tensor,
                          *, per_bin: int = 32, estimator: str = "two_half",
                          param_subset: int = 0, generator: torch.Generator | None = None,
                          train_mode: bool = False) -> Tensor:
    """tr Cov(∇_θ ℓ_t) per timestep bin, float64 [K] (see the module docstring).

    model        the network, ``model(x_t, process.model_time(t))``; evaluated at its current
                 weights, ``.grad`` untouched
    x0           pool of clean examples; each bin draws ``per_bin`` rows (without replacement when
                 the pool is large enough), t uniform in the bin and fresh noise, all from
                 ``generator`` (CPU)
    bin_edges    int64 [K+1], e.g. ``timestep_bins(T, K)``
    estimator    "two_half": (B/4)‖g_A − g_B‖²; "per_sample": (1/(B−1))Σ‖g_b − ḡ‖² via torch.func
    param_subset the last N parameter tensors of ``model.named_parameters()`` (0 = all)
    train_mode   evaluate with dropout on (False: eval mode, deterministic given the generator)
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {', '.join(ESTIMATORS)}, got {estimator!r}")
    if per_bin < 2 or (estimator == "two_half" and per_bin % 2):
        raise ValueError(f"per_bin must be >= 2 (and even for two_half), got {per_bin}")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    dev, n = x0.device, x0.shape[0]
    out = torch.zeros(len(bin_edges) - 1, dtype=torch.float64)
    was_training = model.training
    model.train(train_mode)
    try:
        for k in range(len(bin_edges) - 1):
            lo, hi = int(bin_edges[k]), int(bin_edges[k + 1])
            idx = (torch.randperm(n, generator=gen)[:per_bin] if per_bin <= n
                   else torch.randint(0, n, (per_bin,), generator=gen))
            t = torch.randint(lo, hi, (per_bin,), generator=gen)
            noise = torch.randn((per_bin, *x0.shape[1:]), generator=gen).to(dev)
            xb, t = x0[idx.to(dev)], t.to(dev)
            x_t = process.noised(xb, t, noise)
            out[k] = gradient_variance(model, x_t, process.model_time(t),
                                       process.target(xb, noise), estimator=estimator,
                                       param_subset=param_subset, train_mode=train_mode)
    finally:
        model.train(was_training)
    return out


def gradient_variance(model: nn.Module, x_t: Tensor, t: Tensor, target: Tensor, *,
                      estimator: str = "two_half", param_subset: int = 0,
                      train_mode: bool = False) -> float:
    """tr Cov of the per-example gradients of ℓ_b = ``Process.loss`` (mean((target_b −
    model(x_t, t)_b)²); ``t`` is the time the model embeds) over the
    given examples (one bin's batch): "two_half" = (B/4)‖g_A − g_B‖² with A the first B/2 rows,
    "per_sample" = (1/(B−1))Σ_b‖g_b − ḡ‖². Parameters: the last ``param_subset`` tensors (0 = all).
    The model's train/eval mode is the caller's; ``train_mode`` only tells vmap about dropout."""
    named = _param_subset(model, param_subset)
    if estimator == "two_half":
        return _two_half(model, named, x_t, t, target)
    if estimator == "per_sample":
        return _per_sample(model, named, x_t, t, target, train_mode)
    raise ValueError(f"estimator must be one of {', '.join(ESTIMATORS)}, got {estimator!r}")


def _two_half(model, named, x_t: Tensor, t: Tensor, target: Tensor) -> float:
    params = [p for _, p in named]
    with torch.enable_grad():
        losses = Process.loss(model(x_t, t), target)
        h = losses.shape[0] // 2
        g_a = torch.autograd.grad(losses[:h].mean(), params, retain_graph=True, allow_unused=True)
        g_b = torch.autograd.grad(losses[h:].mean(), params, allow_unused=True)
    sq = sum(float(((a - b).double() ** 2).sum()) for a, b in zip(g_a, g_b)
             if a is not None and b is not None)
    return losses.shape[0] / 4.0 * sq


def _per_sample(model, named, x_t: Tensor, t: Tensor, target: Tensor, train_mode: bool) -> float:
    from torch.func import functional_call, grad, vmap

    trainable = {n: p.detach() for n, p in named}
    frozen = {n: p.detach() for n, p in model.named_parameters() if n not in trainable}
    frozen.update(dict(model.named_buffers()))

    def loss_one(pdict, xt, tt, eps):
        out = functional_call(model, {**frozen, **pdict}, (xt[None], tt[None]))
        return Process.loss(out, eps[None])[0]

    with torch.enable_grad():
        g = vmap(grad(loss_one), in_dims=(None, 0, 0, 0),
                 randomness="different" if train_mode else "error")(trainable, x_t, t, target)
    total = 0.0
    for v in g.values():
        v = v.double().reshape(v.shape[0], -1)
        total += float(((v - v.mean(0, keepdim=True)) ** 2).sum())
    return total / (x_t.shape[0] - 1)
