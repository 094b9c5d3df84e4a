"""The Strategy contract: a distribution over timesteps and the per-example loss weight with it
(``Draw``, ``StepContext``, ``Strategy``; the registry is ``strategies.registry``, parameters and
run identity ``strategies.params``).

The trainer minimises ``mean(draw.weight * per_example_loss)`` (the process's training loss:
the ε-MSE for DDPM) and calls every hook of every strategy (no isinstance, no special cases):

    draw = strategy.sample(x0, generator)        # timesteps + importance × loss weight
    strategy.before_update(ctx)                  # model θ_k, before the optimizer step
    optimizer.step()
    strategy.after_update(ctx)                   # model θ_{k+1}, after it

"Sampling density" and "loss weight" stay separate: ``Draw.importance`` is the correction for a
non-uniform density (1 unless a strategy asks for unbiasedness, e.g. 1/(T·p_t);
``importance_weights()`` tabulates it), and ``Draw.loss_weight`` is the per-timestep weighting of
the training loss (P2, Min-SNR, ...; ``loss_weights()``).

A strategy sees the diffusion process only through ``bench.core.process.Process`` (its time grid,
SNR table, ...), given at construction and in every ``StepContext``; time-indexed tables
(``probabilities``, ``loss_weights``, ``importance_weights``) have one entry per grid cell.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor

from bench.core.io import upload
from bench.core.process import Process


@dataclass(frozen=True)
class Draw:
    t: Tensor                 # [B] the process's time (DDPM: int64 index, 0 <= t < T)
    importance: Tensor        # float [B], correction for the sampling density
    loss_weight: Tensor       # float [B], the weighting of the training loss at t
    aux: dict = dataclasses.field(default_factory=dict)  # per-example tensors [B, ...] a strategy
                                                          # keeps for its hooks (e.g. u ~ Beta)

    @property
    def weight(self) -> Tensor:
        return self.importance * self.loss_weight

    def select(self, idx, device=None) -> "Draw":
        """The rows ``idx`` (a slice or index tensor) of every field, optionally moved to ``device``."""
        def pick(x: Tensor) -> Tensor:
            return x[idx] if device is None else upload(x[idx], torch.device(device))
        return Draw(t=pick(self.t), importance=pick(self.importance),
                    loss_weight=pick(self.loss_weight), aux={k: pick(v) for k, v in self.aux.items()})


@dataclass
class StepContext:
    """What a strategy may see and evaluate around one optimizer step.

    ``losses_at`` / ``likelihood_at`` evaluate the *current* model (θ_k in ``before_update``, θ_{k+1} in
    ``after_update``) without gradients at timesteps of the strategy's choice. ``reduce`` sums a
    tensor across ranks (identity on one process); ``rank``/``world_size`` let a strategy split work.
    ``scratch`` is a per-step dict a strategy uses to carry values from before_update to after_update.

    ``model`` counts every per-example forward and backward pass made through it
    (``bench.core.counted.Counted``): a strategy evaluates the network only through ``model``,
    ``losses_at`` or ``likelihood_at`` and never counts by hand. A learned strategy that updated its
    distribution at this step sets ``adapted`` to a dict of its own diagnostics of that update
    (``{}`` when it has none): the trainer then records an adaptation row
    (``timesteps/adaptation.csv``).
    """

    step: int
    x0: Tensor
    draw: Draw
    losses: Tensor                          # per-example training loss of this step, detached
    model: torch.nn.Module
    process: Process
    generator: torch.Generator              # the strategy's own stream for this step
    reduce: Callable[[Tensor], Tensor] = lambda x: x
    rank: int = 0
    world_size: int = 1
    scratch: dict = dataclasses.field(default_factory=dict)
    adapted: dict | None = None

    def _forward(self, x0: Tensor, t: Tensor, noise: Tensor | None, train_mode: bool):
        if noise is None:
            noise = torch.randn(x0.shape, generator=self.generator, device="cpu").to(x0.device)
        x_t = self.process.noised(x0, t, noise)
        was_training = self.model.training
        self.model.train(train_mode)
        try:
            with torch.no_grad():
                pred = self.model(x_t, self.process.model_time(t))
        finally:
            self.model.train(was_training)
        return x_t, noise, pred.float()

    def losses_at(self, x0: Tensor, t: Tensor, noise: Tensor | None = None,
                  train_mode: bool = False) -> Tensor:
        """Per-example training loss of the current model at times t (the process's loss)."""
        _, noise, pred = self._forward(x0, t, noise, train_mode)
        return self.process.loss(pred, self.process.target(x0, noise))

    def likelihood_at(self, x0: Tensor, t: Tensor, noise: Tensor | None = None,
                      train_mode: bool = False, **options) -> Tensor:
        """Per-example likelihood terms of the current model at times t, bits/dim
        (``Process.likelihood_terms``; ``options`` such as DDPM's ``decoder``)."""
        x_t, _, pred = self._forward(x0, t, noise, train_mode)
        return self.process.likelihood_terms(pred, x0, x_t, t, **options)


class Strategy:
    """Base class. Subclasses set ``name``, ``paper`` and ``Params`` (a frozen dataclass validated in
    ``__post_init__``), and override ``sample`` and, where they have them, the hooks."""

    name: str = ""
    paper: str = ""
    learned: bool = False        # p(t) changes with training (adaptation diagnostics are kept)
    updates_every_step: bool = False   # learned, updating at every step (fewer adaptation rows)
    PRESETS: dict[str, dict[str, Any]] = {}   # named value sets, chosen by a ``variant`` param

    @dataclass(frozen=True)
    class Params:
        pass

    adaptation_columns: tuple[str, ...] = ()   # extra columns of its timesteps/adaptation.csv rows
    adaptation_text: tuple[str, ...] = ()      # those of them that hold text (read back as str)
    # process name -> why this strategy does not run on it (refused at construction, so before
    # any work); every other process of bench.core.processes is supported
    unsupported: dict[str, str] = {}
    # its draw is an inverse CDF of ``uniforms`` (so ``compose``'s ``stratified`` option applies);
    # ``stratified`` is set by that option
    inverse_cdf: bool = False
    stratified: bool = False

    def __init__(self, process: Process, params: "Strategy.Params | None" = None):
        if process.name in self.unsupported:
            raise ValueError(f"{self.name} does not run on process {process.name}: "
                             f"{self.unsupported[process.name]}")
        self.process = process
        self.T = process.grid.size              # time-indexed tables have one entry per cell
        self.params = params if params is not None else self.Params()

    # --- the contract -----------------------------------------------------------------
    def sample(self, x0: Tensor, generator: torch.Generator) -> Draw:
        raise NotImplementedError

    def probabilities(self) -> Tensor | None:
        """p(t) over the grid cells of the batch marginal in the current state; None if not tabulable."""
        return None

    def loss_weights(self) -> Tensor:
        """The per-timestep factor on the training loss, float64 [T] (ones where there is none)."""
        return torch.ones(self.T, dtype=torch.float64)

    def importance_weights(self) -> Tensor:
        """``Draw.importance`` of a draw at each t in the current state, float64 [T] (ones where
        there is no correction, e.g. 1/(T·p_t) where there is)."""
        return torch.ones(self.T, dtype=torch.float64)

    def planned_passes(self, batch_size: int, iterations: int) -> tuple[int, int]:
        """(forwards, backwards) per example that this strategy's own evaluations will count
        over ``iterations`` steps at global batch ``batch_size`` (``StepContext.model``), from its
        formula (docs/cost.md): what the sweep plan shows before a run. (0, 0) for none."""
        return 0, 0

    def before_update(self, ctx: StepContext) -> None:
        pass

    def after_update(self, ctx: StepContext) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}

    @classmethod
    def preset(cls, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` with the values of the preset its ``variant`` names (``PRESETS``) filled in
        for the parameters it does not give; unchanged for a strategy without presets."""
        if not cls.PRESETS:
            return params
        variant = params.get("variant", {f.name: f.default for f in
                                         dataclasses.fields(cls.Params)}.get("variant"))
        if not isinstance(variant, str) or variant not in cls.PRESETS:
            raise ValueError(f"{cls.name}: variant must be one of {', '.join(cls.PRESETS)}, got "
                             f"{variant!r}")
        return {**cls.PRESETS[variant], **params}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    # --- helpers for subclasses -----------------------------------------------------------
    def uniforms(self, n: int, generator: torch.Generator) -> Tensor:
        """n variates U[0, 1) (float64, on the generator's device) for an inverse-CDF draw;
        ``stratified``: one u₀ and (u₀ + b/n) mod 1 for b = 0 … n − 1 — each still U[0, 1), the
        batch spread evenly (VDM's antithetic time, Kingma et al. 2021)."""
        dev = generator.device
        if not self.stratified:
            return torch.rand(n, generator=generator, dtype=torch.float64, device=dev)
        u0 = torch.rand(1, generator=generator, dtype=torch.float64, device=dev)
        return (u0 + torch.arange(n, dtype=torch.float64, device=dev) / n) % 1.0

    def draw(self, t: Tensor, importance: Tensor | None = None) -> Draw:
        """A Draw for indices t with this strategy's loss weights (and importance 1 by default)."""
        t = t.long()
        lw = self.loss_weights()[t].float()
        imp = torch.ones_like(lw) if importance is None else importance.float()
        return Draw(t=t, importance=imp, loss_weight=lw)


class CountsSteps:
    """Mixin for a strategy that changes with the iteration count: ``steps``, the optimizer
    steps taken so far, is its state (checkpointed, so a resumed run switches at the same step).
    Put it before the Strategy base: ``class S(CountsSteps, Strategy)``."""

    steps: int = 0

    def after_update(self, ctx: StepContext) -> None:
        self.steps += 1

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])
