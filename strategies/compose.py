"""Composition: any sampler with any pure loss weighting — e.g. the Kim et al. Table 3 row
"Min-SNR + Ours" = ``{name: compose, sampler: {name: adaptive_beta}, weighting: {name: min_snr,
gamma: 5}}`` (Kim et al. 2025, Sec. 6, Table 3).

The two halves stay explicit:

* **sampling density** and **importance** — from ``sampler`` (any strategy config): ``sample``'s
  t and importance, ``probabilities``, both hooks and ``state_dict`` are the sampler's;
* **loss weight** — from ``weighting``: ``Draw.loss_weight = weighting.loss_weights()[t]``,
  replacing whatever weight the sampler carries (e.g. SpeeD's 1 − abar).

Two transforms of the sampler's draw, both off by default:

* ``shift`` (flow only): the SD3/Flux shift t' = s·t/(1 + (s − 1)·t) of every drawn t — a number
  s > 0, or ``auto`` with ``seq_len``, the image's token count, for Flux's resolution-dependent
  s = e^μ (``strategies._shift``). The importance stays the sampler's at the unshifted cell;
  the loss weight is the weighting's at the shifted one.
* ``stratified``: the sampler's inverse-CDF draw on stratified uniforms, (u₀ + b/B) mod 1 — VDM's
  antithetic time (Kingma et al. 2021, google-research/vdm ``model_vdm.py``) for any sampler
  whose draw is an inverse CDF (``Strategy.inverse_cdf``; adaptive_beta's per-example Beta
  included). Same marginal, a batch spread evenly over the density.

``weighting`` must be a *pure weighting*: its own sampling density is uniform, it has no hooks
(``before_update``/``after_update`` are the base no-ops) and no state. Otherwise it would be a
second sampler or a learned weighting whose updates nothing would drive, so the composition is
rejected ("incompatible composition", with the reason).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from strategies._checks import boolean, integer, number
from strategies._shift import flux_shift, shift_cells, shifted_probabilities
from strategies.base import Draw, StepContext, Strategy
from strategies.params import build, late, make_params
from strategies.registry import get, names, register


def _check_config(key: str, cfg: Any) -> None:
    if not isinstance(cfg, dict) or not isinstance(cfg.get("name"), str):
        raise ValueError(f"compose: {key} must be a strategy config, a mapping with a 'name' "
                         f"(e.g. {{name: min_snr, gamma: 5}}), got {cfg!r}")
    cls = get(cfg["name"])                 # unknown name: ValueError listing the valid ones
    make_params(cls, {k: v for k, v in cfg.items() if k != "name"})   # unknown/bad params


@register
class Compose(Strategy):
    name = "compose"
    paper = "Kim et al. 2025, Table 3 (a sampler with a loss weighting, e.g. Min-SNR + Ours)"

    @dataclass(frozen=True)
    class Params:
        sampler: dict = field(default_factory=lambda: {"name": "uniform"})    # any strategy
        weighting: dict = field(default_factory=lambda: {"name": "uniform"})  # a pure weighting
        # Added later (left out of run ids at their default: no transform):
        shift: Any = late(None)            # flow: the SD3/Flux shift s > 0, or "auto" (seq_len)
        seq_len: Any = late(None)          # shift auto: the image's sequence length (tokens)
        stratified: bool = late(False)     # the sampler's draw on stratified uniforms

        def __post_init__(self):
            _check_config("sampler", self.sampler)
            _check_config("weighting", self.weighting)
            boolean("compose", "stratified", self.stratified)
            if self.shift == "auto":
                integer("compose", "seq_len (shift: auto's image sequence length)", self.seq_len,
                        low=1)
            else:
                if self.shift is not None:
                    number("compose", "shift (a number s > 0, or auto)", self.shift, low=0,
                           low_open=True)
                if self.seq_len is not None:
                    raise ValueError("compose: seq_len is read only with shift: auto (Flux's "
                                     f"resolution-dependent shift); got shift={self.shift!r}")

    def __init__(self, process, params=None):
        super().__init__(process, params)
        p = self.params
        self.sampler = build(p.sampler["name"], process,
                             {k: v for k, v in p.sampler.items() if k != "name"})
        self.weighting = build(p.weighting["name"], process,
                               {k: v for k, v in p.weighting.items() if k != "name"})
        _check_pure_weighting(self.weighting)
        self.s = flux_shift(p.seq_len) if p.shift == "auto" else p.shift
        if self.s is not None and process.name != "flow":
            raise ValueError(f"compose: shift is the SD3/Flux shift of the flow's t; process "
                             f"{process.name} has none (leave shift unset there)")
        if p.stratified:
            if not self.sampler.inverse_cdf:
                valid = ", ".join(n for n in names() if get(n).inverse_cdf)
                raise ValueError(f"compose: stratified needs a sampler whose draw is an inverse "
                                 f"CDF; {self.sampler.name!r} draws otherwise. Valid: {valid}")
            self.sampler.stratified = True

    @property
    def learned(self) -> bool:
        return self.sampler.learned

    @property
    def updates_every_step(self) -> bool:
        return self.sampler.updates_every_step

    def sample(self, x0: Tensor, generator: torch.Generator) -> Draw:
        d = self.sampler.sample(x0, generator)
        t = d.t if self.s is None else shift_cells(d.t, self.s, generator, self.T)
        lw = self._weights(t.device)[t].to(d.importance.device, torch.float32)
        return Draw(t=t, importance=d.importance, loss_weight=lw, aux=d.aux)

    def _weights(self, device: torch.device) -> Tensor:
        """The (pure, fixed) weighting's table on ``device``, made once per device."""
        cache = self.__dict__.setdefault("_tables", {})
        if device not in cache:
            cache[device] = self.weighting.loss_weights().to(device)
        return cache[device]

    def probabilities(self) -> Tensor | None:
        p = self.sampler.probabilities()
        return p if p is None or self.s is None else shifted_probabilities(p, self.s)

    def loss_weights(self) -> Tensor:
        return self.weighting.loss_weights()

    def importance_weights(self) -> Tensor:
        return self.sampler.importance_weights()

    def planned_passes(self, batch_size: int, iterations: int) -> tuple[int, int]:
        return self.sampler.planned_passes(batch_size, iterations)

    def before_update(self, ctx: StepContext) -> None:
        self.sampler.before_update(ctx)

    def after_update(self, ctx: StepContext) -> None:
        self.sampler.after_update(ctx)

    def state_dict(self) -> dict[str, Any]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state)


def _check_pure_weighting(w: Strategy) -> None:
    name = w.name
    p = w.probabilities()
    uniform = torch.full((w.T,), 1.0 / w.T, dtype=torch.float64)
    if p is None or not torch.allclose(p.double(), uniform, rtol=1e-9, atol=1e-12):
        raise ValueError(f"incompatible composition: weighting {name!r} has a non-uniform "
                         f"sampling density, so it is a sampler, not a pure loss weighting; put "
                         f"it in 'sampler' or pick a weighting such as p2 or min_snr")
    for hook in ("before_update", "after_update"):
        if getattr(type(w), hook) is not getattr(Strategy, hook):
            raise ValueError(f"incompatible composition: weighting {name!r} has a {hook} hook "
                             f"(it learns or adapts), so it is not a pure loss weighting; use it "
                             f"as the sampler or pick a weighting such as p2 or min_snr")
    if w.state_dict():
        raise ValueError(f"incompatible composition: weighting {name!r} carries state, so it is "
                         f"not a pure loss weighting; pick a weighting such as p2 or min_snr")
