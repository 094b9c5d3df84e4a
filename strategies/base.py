"""The Strategy contract: a distribution over timesteps and the per-example loss weight with it.

The trainer minimises ``mean(draw.weight * per_example_eps_mse)`` and calls every hook of every
strategy (no isinstance, no special cases):

    draw = strategy.sample(x0, generator)        # timesteps + importance × loss weight
    strategy.before_update(ctx)                  # model θ_k, before the optimizer step
    optimizer.step()
    strategy.after_update(ctx)                   # model θ_{k+1}, after it

"Sampling density" and "loss weight" stay separate: ``Draw.importance`` is the correction for a
non-uniform density (1 unless a strategy asks for unbiasedness, e.g. 1/(T·p_t);
``importance_weights()`` tabulates it), and ``Draw.loss_weight`` is the per-timestep weighting of
the ε-MSE (P2, Min-SNR, ...; ``loss_weights()``).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor

from bench.core.checks import check_keys
from bench.core.diffusion import Diffusion, mean_flat


@dataclass(frozen=True)
class Draw:
    t: Tensor                 # int64 [B], 0 <= t < T
    importance: Tensor        # float [B], correction for the sampling density
    loss_weight: Tensor       # float [B], the weighting of the ε-MSE at t
    aux: dict = dataclasses.field(default_factory=dict)  # per-example tensors [B, ...] a strategy
                                                          # keeps for its hooks (e.g. u ~ Beta)

    @property
    def weight(self) -> Tensor:
        return self.importance * self.loss_weight

    def select(self, idx, device=None) -> "Draw":
        """The rows ``idx`` (a slice or index tensor) of every field, optionally moved to ``device``."""
        def pick(x: Tensor) -> Tensor:
            return x[idx].to(device) if device is not None else x[idx]
        return Draw(t=pick(self.t), importance=pick(self.importance),
                    loss_weight=pick(self.loss_weight), aux={k: pick(v) for k, v in self.aux.items()})


@dataclass
class StepContext:
    """What a strategy may see and evaluate around one optimizer step.

    ``eps_mse`` / ``vb_terms`` evaluate the *current* model (θ_k in ``before_update``, θ_{k+1} in
    ``after_update``) without gradients at timesteps of the strategy's choice. ``reduce`` sums a
    tensor across ranks (identity on one process); ``rank``/``world_size`` let a strategy split work.
    ``scratch`` is a per-step dict a strategy uses to carry values from before_update to after_update.

    ``model`` counts every per-example forward and backward pass made through it
    (``bench.core.cost.Counted``): a strategy evaluates the network only through ``model``,
    ``eps_mse`` or ``vb_terms`` and never counts by hand. A learned strategy that updated its
    distribution at this step sets ``adapted`` to a dict of its own diagnostics of that update
    (``{}`` when it has none): the trainer then records an adaptation row
    (``timesteps/adaptation.csv``).
    """

    step: int
    x0: Tensor
    draw: Draw
    losses: Tensor                          # per-example ε-MSE of this step, detached
    model: torch.nn.Module
    diffusion: Diffusion
    generator: torch.Generator              # the strategy's own stream for this step
    reduce: Callable[[Tensor], Tensor] = lambda x: x
    rank: int = 0
    world_size: int = 1
    scratch: dict = dataclasses.field(default_factory=dict)
    adapted: dict | None = None

    def _forward(self, x0: Tensor, t: Tensor, noise: Tensor | None, train_mode: bool):
        if noise is None:
            noise = torch.randn(x0.shape, generator=self.generator, device="cpu").to(x0.device)
        x_t = self.diffusion.q_sample(x0, t, noise)
        was_training = self.model.training
        self.model.train(train_mode)
        try:
            with torch.no_grad():
                eps = self.model(x_t, t)
        finally:
            self.model.train(was_training)
        return x_t, noise, eps.float()

    def eps_mse(self, x0: Tensor, t: Tensor, noise: Tensor | None = None,
                train_mode: bool = False) -> Tensor:
        """Per-example mean((ε − ε_θ(x_t, t))²) of the current model."""
        _, noise, eps = self._forward(x0, t, noise, train_mode)
        return mean_flat((noise - eps) ** 2)

    def vb_terms(self, x0: Tensor, t: Tensor, noise: Tensor | None = None,
                 train_mode: bool = False, decoder_at_zero: bool = True) -> Tensor:
        """Per-example L_t in bits/dim of the current model (``Diffusion.vb_terms_bpd``)."""
        x_t, _, eps = self._forward(x0, t, noise, train_mode)
        return self.diffusion.vb_terms_bpd(eps, x0, x_t, t, decoder_at_zero=decoder_at_zero)


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

    def __init__(self, diffusion: Diffusion, params: "Strategy.Params | None" = None):
        self.diffusion = diffusion
        self.T = diffusion.T
        self.params = params if params is not None else self.Params()

    # --- the contract -----------------------------------------------------------------
    def sample(self, x0: Tensor, generator: torch.Generator) -> Draw:
        raise NotImplementedError

    def probabilities(self) -> Tensor | None:
        """p(t) over [0, T) of the batch marginal in the current state; None if not tabulable."""
        return None

    def loss_weights(self) -> Tensor:
        """The per-timestep factor on the ε-MSE, float64 [T] (ones where there is none)."""
        return torch.ones(self.T, dtype=torch.float64)

    def importance_weights(self) -> Tensor:
        """``Draw.importance`` of a draw at each t in the current state, float64 [T] (ones where
        there is no correction, e.g. 1/(T·p_t) where there is)."""
        return torch.ones(self.T, dtype=torch.float64)

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
    def draw(self, t: Tensor, importance: Tensor | None = None) -> Draw:
        """A Draw for indices t with this strategy's loss weights (and importance 1 by default)."""
        t = t.long()
        lw = self.loss_weights()[t].float()
        imp = torch.ones_like(lw) if importance is None else importance.float()
        return Draw(t=t, importance=imp, loss_weight=lw)


_REGISTRY: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator. Raises on a duplicate or empty name (timm overwrites silently; we don't)."""
    if not cls.name:
        raise ValueError(f"{cls.__qualname__} has no name")
    if cls.name in _REGISTRY:
        raise ValueError(f"strategy {cls.name!r} is already registered by "
                         f"{_REGISTRY[cls.name].__module__}")
    _REGISTRY[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def names() -> list[str]:
    return sorted(_REGISTRY)


ENTRY_POINTS = "timestep_bench.strategies"


def load_entry_points(group: str = ENTRY_POINTS) -> None:
    """Import every module an installed package declares under ``group`` (each registers its
    strategies). One that fails is skipped with a warning naming it and its package (a broken
    plug-in must not break the suite's other commands; asking for its strategy then says
    "unknown strategy")."""
    import warnings
    from importlib.metadata import entry_points

    for ep in entry_points(group=group):
        try:
            ep.load()
        except Exception as e:
            dist = getattr(ep, "dist", None)
            warnings.warn(f"strategy entry point {ep.name} = {ep.value!r} (package "
                          f"{dist.name if dist else '?'}) failed to load and is skipped: "
                          f"{type(e).__name__}: {e}", stacklevel=2)


def registered() -> list[str]:
    """The names in registration order (strategies/__init__.py's imports, then later
    registrations): the report's fixed colour order."""
    return list(_REGISTRY)


def get(name: str) -> type[Strategy]:
    if name not in _REGISTRY:
        raise ValueError(f"unknown strategy {name!r}; valid: {', '.join(names())}")
    return _REGISTRY[name]


def defaults(name: str) -> dict[str, Any]:
    """The default parameters of strategy ``name`` (required ones, without a default, left out)."""
    out = {}
    for f in dataclasses.fields(get(name).Params):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def late(default: Any) -> Any:
    """A parameter added after runs existed: at its default it is left out of the run identity
    (``identity``), so existing run ids stay valid. Its default must keep the old behaviour."""
    return dataclasses.field(default=default, metadata={"late": True})


def make_params(cls: type[Strategy], params: dict[str, Any] | None) -> Strategy.Params:
    """Build ``cls.Params`` from a dict (after ``cls.preset``); unknown keys are errors that
    list the valid ones."""
    params = dict(params or {})
    check_keys(params, sorted(f.name for f in dataclasses.fields(cls.Params)), "parameter(s)",
               where=f"strategy {cls.name!r}")
    return cls.Params(**cls.preset(params))


def identity(spec: dict[str, Any]) -> dict[str, Any]:
    """A strategy spec as it identifies a run: every default spelled out after the strategy's
    preset, minus the ``late`` parameters that are at their default and minus ``variant`` (only a
    name for the values it filled in), so a preset and its values written out are one run."""
    cls = get(spec["name"])
    params = cls.preset({k: v for k, v in spec.items() if k != "name"})
    full = {**copy.deepcopy(defaults(spec["name"])), **params}
    drop = {f.name for f in dataclasses.fields(cls.Params)
            if f.metadata.get("late") and f.name in full and full[f.name] == f.default}
    if cls.PRESETS:
        drop.add("variant")
    return {"name": spec["name"], **{k: v for k, v in full.items() if k not in drop}}


def label_defaults(spec: dict[str, Any]) -> dict[str, Any]:
    """What a label compares a spec with: the defaults, with the values of the preset the spec's
    ``variant`` names (so a label shows what differs from the preset, and the variant)."""
    cls = get(spec["name"])
    base = defaults(spec["name"])
    if not cls.PRESETS:
        return base
    variant = spec.get("variant", base.get("variant"))
    return {**base, **cls.PRESETS.get(variant, {})} if isinstance(variant, str) else base


def build(name: str, diffusion: Diffusion, params: dict[str, Any] | None = None) -> Strategy:
    cls = get(name)
    return cls(diffusion, make_params(cls, params))
